"""One time per sample: ``broadcast_time(t, x)``, shared by paths, models and samplers.

A time t on the library clock (docs/design.md section 2) reaches a path, a network or a
field either as one number for the whole batch or as one number per sample. This module turns
both into the (n,) tensor those functions compute with. Imports nothing from wasserflow, so
every layer may use it. Checking that t lies in [0, 1] is the clock's business
(:func:`wasserflow.paths.clock.checked_time`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def broadcast_time(t: Tensor | float, x: Tensor, name: str = "t") -> Tensor:
    """t as a (n,) tensor on x's device, n = x.shape[0], one time per row of x.

    A scalar (a number or a 0-d tensor) is repeated n times (a new contiguous tensor); a tensor
    (or a sequence) of n entries ((n,), (n, 1), ...) is flattened. The dtype is x's, or float64 when x is not a
    floating tensor; Python numbers go straight to that dtype (no float32 rounding on the way).
    Any other size raises a ``ValueError`` naming ``name``.
    """
    n = x.shape[0]
    dtype = x.dtype if torch.is_floating_point(x) else torch.float64
    if isinstance(t, (int, float)):
        return torch.full((n,), t, dtype=dtype, device=x.device)
    if isinstance(t, Tensor):
        t = t.to(device=x.device, dtype=dtype)
    else:
        t = torch.as_tensor(t, dtype=dtype, device=x.device)
    if t.dim() == 0:
        return t.expand(n).contiguous()
    t = t.reshape(-1)
    if t.shape[0] != n:
        raise ValueError(
            f"{name} must be a scalar or one time per sample: it has {t.shape[0]} entries for "
            f"a batch of {n}"
        )
    return t
