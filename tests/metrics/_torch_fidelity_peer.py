"""Make torch-fidelity's torchvision-free modules importable where torchvision is missing.

``torch_fidelity/__init__.py`` imports its CLIP and DINOv2 extractors, which import
torchvision (not installable here beside the pinned torch). The modules the metric tests use,
``torch_fidelity.feature_extractor_inceptionv3`` (with ``helpers`` and
``interpolate_compat_tensorflow``) and, through it, torchmetrics' ``image.fid``, do not. Where
the plain import fails on torchvision, a bare package object whose ``__path__`` is the
installed folder is registered as ``torch_fidelity``, so its submodules import without its
``__init__``. torch-fidelity itself is installed by ``scripts/setup.sh --dev`` with --no-deps.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def torch_fidelity_module(name: str) -> types.ModuleType:
    """``torch_fidelity.<name>``, imported with or without torchvision."""
    if "torch_fidelity" not in sys.modules:
        try:
            import torch_fidelity  # noqa: F401  (the normal case, with torchvision)
        except ModuleNotFoundError as err:
            if err.name != "torchvision":
                raise
            for key in [k for k in sys.modules if k.split(".")[0] == "torch_fidelity"]:
                del sys.modules[key]
            spec = importlib.util.find_spec("torch_fidelity")
            pkg = types.ModuleType("torch_fidelity")
            pkg.__path__ = list(spec.submodule_search_locations)
            pkg.__package__ = "torch_fidelity"
            sys.modules["torch_fidelity"] = pkg
    return importlib.import_module(f"torch_fidelity.{name}")


def torchmetrics_compute_fid():
    """torchmetrics' FID formula ``_compute_fid(mu1, sigma1, mu2, sigma2)`` (eigenvalues of
    sigma1 @ sigma2); its module imports torch-fidelity's extractor when that is installed."""
    torch_fidelity_module("feature_extractor_inceptionv3")
    from torchmetrics.image.fid import _compute_fid

    return _compute_fid
