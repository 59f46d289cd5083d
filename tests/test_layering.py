"""DESIGN.md section 4: imports flow one way.

    geometry <- paths, data, models <- objectives, samplers <- engine, metrics <- experiments, cli

A package may import itself and packages of strictly lower layers; same-layer imports are allowed
only where listed in SAME_LAYER_OK. geometry imports no other wasserflow package.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "wasserflow"
LAYER = {
    "geometry": 0,
    "paths": 1,
    "data": 1,
    "models": 1,
    "objectives": 2,
    "samplers": 2,
    "engine": 3,
    "metrics": 3,
    "experiments": 4,
    "cli": 4,
}
SAME_LAYER_OK = {
    ("objectives", "samplers"),  # Energy Matching may draw its negatives with a sampler
    ("cli", "experiments"),  # the command line is the front of the experiments
}


def wasserflow_imports(path: Path, root: Path = SRC) -> set[str]:
    """The top-level wasserflow packages a module imports (absolute or relative)."""
    rel = path.relative_to(root).with_suffix("").parts
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "wasserflow" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "wasserflow":
                    continue
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(a.name for a in node.names)
            else:
                base = list(rel[:-1])
                base = base[: len(base) - (node.level - 1)]
                target = base + ((node.module or "").split(".") if node.module else [])
                if target:
                    found.add(target[0])
                else:
                    found.update(a.name for a in node.names)
    return {p for p in found if p in LAYER}


MODULES = sorted(p for p in SRC.rglob("*.py") if len(p.relative_to(SRC).parts) > 1)


def test_every_package_has_a_layer():
    packages = {p.relative_to(SRC).parts[0] for p in MODULES}
    assert packages <= set(LAYER), f"add {packages - set(LAYER)} to LAYER (and to DESIGN.md)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_down(path):
    own = path.relative_to(SRC).parts[0]
    for dep in wasserflow_imports(path) - {own}:
        ok = LAYER[dep] < LAYER[own] or (own, dep) in SAME_LAYER_OK
        assert ok, (
            f"{path.relative_to(SRC)} ({own}, layer {LAYER[own]}) imports {dep} (layer {LAYER[dep]})"
        )


def test_checker_catches_upward_imports(tmp_path):
    probe = tmp_path / "geometry" / "probe.py"
    probe.parent.mkdir()
    probe.write_text(
        "from ..paths import schedules\nimport wasserflow.engine\nfrom . import exact\n"
    )
    assert wasserflow_imports(probe, root=tmp_path) == {"paths", "engine", "geometry"}
