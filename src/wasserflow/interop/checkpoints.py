"""State dicts of models trained elsewhere, read without unpickling arbitrary objects.

``.safetensors`` files are read with safetensors; anything else with
``torch.load(weights_only=True)``, which rebuilds tensors, numbers, strings and containers
only: a file that needs any other Python object (a pickled module, an argparse namespace, a
custom class) is refused with one line saying why and how to save it instead. Checkpoints such
as TorchCFM's ``{"net_model": ..., "ema_model": ..., "optim": ..., "step": ...}`` hold several
state dicts: ``key`` picks one (default: the first of :data:`STATE_KEYS` present, the EMA
weights first). A ``module.`` prefix left by ``DataParallel`` is removed.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from ..errors import InputError

STATE_KEYS = ("ema_model", "net_model", "model", "state_dict")
"""Keys tried, in order, when a checkpoint holds several entries and no ``key`` is given."""


def _refused(path: Path, err: Exception) -> InputError | None:
    """The one-line refusal of a file that needs a Python object other than tensors
    (None when ``err`` is not about that)."""
    m = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
    if m is None:
        return None
    return InputError(
        f"{path} needs unpickling arbitrary Python objects (it holds a {m.group(1)}), which "
        "wasserflow refuses: save only the weights (torch.save(net.state_dict(), PATH) or "
        "safetensors)"
    )


def _read(path: Path) -> Mapping:
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise InputError(f"{path} is not a readable safetensors file ({e})") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        refusal = _refused(path, e)
        if refusal is not None:
            raise refusal from e
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        why = next((line for line in lines if "Unsupported" in line or "invalid" in line), None)
        why = why or (lines[0] if lines else type(e).__name__)
        raise InputError(f"{path} is not a torch checkpoint ({why[:120]})") from e
    if not isinstance(obj, Mapping):
        raise InputError(
            f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of tensors)"
        )
    return obj


def _is_state(obj) -> bool:
    return (
        isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())
    )


def load_state_dict(
    checkpoint: str | Path | Mapping[str, Tensor], key: str | None = None
) -> dict[str, Tensor]:
    """The state dict of ``checkpoint`` (a file or a mapping), entry ``key`` if given (module
    doc). Flat safetensors files take ``key`` as a prefix (``key.`` is removed)."""
    where = "the checkpoint" if isinstance(checkpoint, Mapping) else str(checkpoint)
    obj = checkpoint if isinstance(checkpoint, Mapping) else _read(Path(checkpoint))
    if key is not None:
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
        elif _is_state(obj) and any(k.startswith(key + ".") for k in obj):
            obj = {k[len(key) + 1 :]: v for k, v in obj.items() if k.startswith(key + ".")}
        else:
            raise InputError(
                f"{where} has no state dict {key!r}: its entries are "
                f"{', '.join(sorted(map(str, obj))[:12])}"
            )
    elif not _is_state(obj):
        found = next((k for k in STATE_KEYS if isinstance(obj.get(k), Mapping)), None)
        if found is None:
            raise InputError(
                f"{where} holds no state dict: its entries are "
                f"{', '.join(sorted(map(str, obj))[:12])}; name one with key="
            )
        obj = obj[found]
    if not _is_state(obj):
        raise InputError(f"{where}: the chosen entry is not a state dict (a mapping of tensors)")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state
