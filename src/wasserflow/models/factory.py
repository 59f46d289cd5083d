"""Build models from JSON-serialisable configs (the checkpoint stores the config, not code).

A config is a plain dict, e.g. ``{"kind": "mlp", "shape": [2], "width": 64, "depth": 3,
"activation": "selu", "time_embedding": "linear", "embed_dim": 64}``. :func:`model_config`
fills the defaults and validates; :func:`build_model` builds the module and attaches the full
config as ``model.config``, so ``build_model(json.loads(json.dumps(model.config)), seed=s)``
rebuilds the same architecture (and, with the same seed, the same initial parameters).

Kinds:
* ``"mlp"``: :class:`VectorFieldMLP`, v(x, t) with the shape of x (default time embedding
  "sinusoidal");
* ``"energy"``: :class:`PotentialField` around a :class:`PotentialMLP` E(x), field -grad E
  (default time embedding "none", i.e. time-independent as in Energy Matching).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .embedding import ACTIVATIONS
from .energy import PotentialField
from .mlp import TIME_EMBEDDINGS, PotentialMLP, VectorFieldMLP

MODEL_KINDS: tuple[str, ...] = ("mlp", "energy")
_DEFAULT_TIME = {"mlp": "sinusoidal", "energy": "none"}
_KEYS = {"kind", "shape", "dim", "width", "depth", "activation", "time_embedding", "embed_dim"}


def _positive_int(cfg: Mapping[str, Any], key: str, default: int) -> int:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"model config {key!r} must be a positive int, got {v!r}")
    return v


def model_config(config: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """The complete, validated config (a new dict with plain JSON types).

    Keys: kind ("mlp" | "energy", default "mlp"); shape (list of ints, the non-batch data shape)
    or dim (int, read as shape [dim]); width (256); depth (3, hidden layers); activation
    ("silu"); time_embedding ("sinusoidal" for mlp, "none" for energy; or "linear");
    embed_dim (64, width of the sinusoidal embedding).
    """
    cfg = dict(config or {}, **overrides)
    unknown = set(cfg) - _KEYS
    if unknown:
        raise ValueError(f"unknown model config keys {sorted(unknown)}: allowed {sorted(_KEYS)}")
    kind = cfg.get("kind", "mlp")
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}: choose one of {MODEL_KINDS}")
    if "shape" in cfg:
        shape = cfg["shape"]
        if isinstance(shape, int):
            shape = [shape]
        shape = list(shape)
        if "dim" in cfg and cfg["dim"] != _prod(shape):
            raise ValueError(f"model config has shape {shape} and dim {cfg['dim']}: give one")
    elif "dim" in cfg:
        shape = [cfg["dim"]]
    else:
        raise ValueError("model config needs 'shape' (e.g. [2] or [1, 8, 8]) or 'dim'")
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"model config 'shape' must be a list of positive ints, got {shape!r}")
    activation = str(cfg.get("activation", "silu")).lower()
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: choose one of {sorted(ACTIVATIONS)}")
    time_embedding = cfg.get("time_embedding", _DEFAULT_TIME[kind])
    if time_embedding not in TIME_EMBEDDINGS:
        raise ValueError(f"unknown time_embedding {time_embedding!r}: one of {TIME_EMBEDDINGS}")
    embed_dim = _positive_int(cfg, "embed_dim", 64)
    if embed_dim % 2:
        raise ValueError(f"embed_dim must be even, got {embed_dim}")
    return {
        "kind": kind,
        "shape": shape,
        "width": _positive_int(cfg, "width", 256),
        "depth": _positive_int(cfg, "depth", 3),
        "activation": activation,
        "time_embedding": time_embedding,
        "embed_dim": embed_dim,
    }


def _prod(shape: list[int]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _build(cfg: dict[str, Any]) -> nn.Module:
    kwargs = {k: cfg[k] for k in ("width", "depth", "activation", "time_embedding", "embed_dim")}
    shape = tuple(cfg["shape"])
    if cfg["kind"] == "mlp":
        return VectorFieldMLP(shape, **kwargs)
    return PotentialField(PotentialMLP(shape, **kwargs))


def build_model(config: Mapping[str, Any], *, seed: int | None = None) -> nn.Module:
    """Build the model described by ``config`` (see :func:`model_config`), on the CPU.

    With ``seed`` the parameters are initialised from ``torch.default_generator`` seeded with
    it inside ``torch.random.fork_rng``, so the caller's global RNG state is left unchanged;
    without, PyTorch's default initialisation draws from the global RNG as usual.
    The returned module carries ``model.config`` (the full config dict).
    """
    cfg = model_config(config)
    if seed is None:
        model = _build(cfg)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(seed))
            model = _build(cfg)
    model.config = cfg
    return model
