"""The dict front of the model registry (``build_model({"kind": "mlp", "shape": [2], ...})``).

A config is a plain dict, e.g. ``{"kind": "mlp", "shape": [2], "width": 64, "depth": 3,
"activation": "selu", "time_embedding": "linear", "embed_dim": 64}``. :func:`model_config`
fills the defaults (those of :class:`~wasserflow.models.mlp.MLPConfig`) and validates;
:func:`build_model` builds the module and attaches the full config as ``model.config``, so
``build_model(json.loads(json.dumps(model.config)), seed=s)`` rebuilds the same architecture
(and, with the same seed, the same initial parameters).

Kinds: ``"mlp"`` (the ``mlp`` backbone as a vector field) and ``"energy"`` (a
:class:`PotentialField` around the ``mlp`` backbone's scalar head, field -grad E; default time
embedding "none", i.e. time-independent as in Energy Matching). Runs use the registry directly
(:mod:`wasserflow.models.registry`, any backbone).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from .energy import PotentialField
from .mlp import MLPConfig
from .registry import build_backbone, check_shape, get_backbone

MODEL_KINDS: tuple[str, ...] = ("mlp", "energy")
_OPTIONS = tuple(f.name for f in dataclasses.fields(MLPConfig))
_KEYS = {"kind", "shape", "dim", *_OPTIONS}


def model_config(config: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """The complete, validated config (a new dict with plain JSON types).

    Keys: kind ("mlp" | "energy", default "mlp"); shape (list of ints, the non-batch data shape)
    or dim (int, read as shape [dim]); the options of :class:`MLPConfig`.
    """
    cfg = dict(config or {}, **overrides)
    unknown = set(cfg) - _KEYS
    if unknown:
        raise ValueError(f"unknown model config keys {sorted(unknown)}: allowed {sorted(_KEYS)}")
    kind = cfg.pop("kind", "mlp")
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}: choose one of {MODEL_KINDS}")
    if "shape" in cfg:
        shape = list(check_shape(cfg.pop("shape")))
        if "dim" in cfg and cfg["dim"] != math.prod(shape):
            raise ValueError(f"model config has shape {shape} and dim {cfg['dim']}: give one")
    elif "dim" in cfg:
        shape = list(check_shape(cfg["dim"]))
    else:
        raise ValueError("model config needs 'shape' (e.g. [2] or [1, 8, 8]) or 'dim'")
    cfg.pop("dim", None)
    opts = get_backbone("mlp").options(cfg)
    time = opts.time_embedding or ("none" if kind == "energy" else "sinusoidal")
    opts = dataclasses.replace(opts, activation=str(opts.activation).lower(), time_embedding=time)
    return {"kind": kind, "shape": shape, **dataclasses.asdict(opts)}


def build_model(config: Mapping[str, Any], *, seed: int | None = None) -> nn.Module:
    """Build the model described by ``config`` (see :func:`model_config`), on the CPU.

    With ``seed`` the parameters are initialised inside ``torch.random.fork_rng`` (the caller's
    global RNG state is left unchanged); without, PyTorch's default initialisation draws from
    the global RNG as usual. The returned module carries ``model.config`` (the full config).
    """
    cfg = model_config(config)
    opts = {k: cfg[k] for k in _OPTIONS}
    energy = cfg["kind"] == "energy"
    net = build_backbone("mlp", cfg["shape"], opts, scalar=energy, seed=seed)
    model = PotentialField(net) if energy else net
    model.config = cfg
    return model
