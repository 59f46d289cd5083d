#!/usr/bin/env bash
# Set up (or reuse) the project's virtual environment in .venv.
#   bash scripts/setup.sh          runtime: the package with its plot and data extras
#   bash scripts/setup.sh --dev    also the test tools and the peers the tests compare against
# Idempotent: a second run with unchanged requirements returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="plot,data"
dev=0
if [ "${1:-}" = "--dev" ]; then extras="plot,data,dev,bench"; dev=1; fi
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$python" -m venv .venv; fi
stamp=".venv/.wasserflow-setup-$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)-$extras"
if [ -f "$stamp" ]; then exit 0; fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -e ".[$extras]"
if [ "$dev" = 1 ]; then
  # TorchCFM (the flow-matching reference) and torch-fidelity (the FID InceptionV3 reference)
  # without their dependencies: see pyproject.toml.
  "${pip[@]}" --no-deps "torchcfm==1.0.7" "torchdyn==1.0.6" "torch-fidelity==0.4.0"
fi

touch "$stamp"
