"""Checkpoints without pickle: one safetensors file, tensors plus JSON metadata, written atomically.

A training checkpoint holds the model weights (``model.*``), the EMA weights (``ema.*``), the
Adam state (``optim.<param index>.<name>``), the random generator's state (``rng``) and, in the
metadata, the step and the optimiser's hyper-parameters. ``load_weights`` returns only the
weights a sampler needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as serialize

from .._atomic import write_bytes


def save(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict) -> None:
    """Write tensors and JSON-serialisable metadata atomically (temporary file, then rename).

    The file is serialised in memory and written through :func:`~wasserflow._atomic.write_bytes`
    (our one temporary file, ``.<name>.*``, which a resumed run sweeps): safetensors'
    ``save_file`` writes through a temporary file of its own (``.tmpXXXXXX``, safetensors
    0.8), which a process killed mid-write would leave in the run folder."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_bytes(path, serialize(tensors, metadata={"wasserflow": json.dumps(metadata)}))


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint: (tensors, metadata). A damaged or foreign file raises ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}: train first or check the run folder")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a readable safetensors checkpoint ({e})") from e
    if "wasserflow" not in meta:
        raise ValueError(f"{path} is a safetensors file but not a wasserflow checkpoint")
    return tensors, json.loads(meta["wasserflow"])


def split(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix.`` with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimiser's state_dict into tensors (per-parameter state) and JSON (groups)."""
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[f"optim.{idx}.{name}"] = t
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict
) -> None:
    state: dict[int, dict] = {}
    for k, v in split(tensors, "optim").items():
        idx, name = k.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups["param_groups"]})
