"""Clock conversions: the library clock t, diffusion time s and DDPM's integer steps k.

The library clock is t in [0, 1] with t = 0 the reference (noise) and t = 1 the data
(docs/design.md section 2). Diffusion papers run the other way:

* diffusion time s = 1 - t (score-SDE, Song et al. 2021: s = 0 is the data);
* DDPM's integer step k in {0, ..., T - 1} (Ho et al. 2020) maps to t_k = 1 - (k + 1) / T, so
  k = T - 1 is t = 0 and the clean data, "k = -1", is t = 1.

Every conversion between these clocks lives here; convert only at the edges.
"""

from __future__ import annotations

import torch
from torch import Tensor


def checked_time(t: Tensor | float, name: str = "t") -> Tensor:
    """t as a floating tensor (float64 for Python numbers), checked to lie in [0, 1]."""
    if not isinstance(t, Tensor):
        t = torch.as_tensor(t, dtype=torch.float64)
    if not torch.is_floating_point(t):
        t = t.to(torch.float64)
    td = t.detach()
    if not torch.isfinite(td).all():
        raise ValueError(f"{name} holds NaN or inf values: times must be finite numbers in [0, 1]")
    if td.numel() and (float(td.min()) < 0.0 or float(td.max()) > 1.0):
        raise ValueError(
            f"{name} must lie in [0, 1] (t = 0 noise, t = 1 data), got values in "
            f"[{float(td.min()):.6g}, {float(td.max()):.6g}]; convert diffusion time with "
            "wasserflow.paths.clock.from_diffusion_time"
        )
    return t


def to_diffusion_time(t: Tensor | float) -> Tensor:
    """s = 1 - t: diffusion time (s = 0 data, s = 1 noise) from the library clock."""
    return 1.0 - checked_time(t)


def from_diffusion_time(s: Tensor | float) -> Tensor:
    """t = 1 - s: the library clock from diffusion time s in [0, 1]."""
    return 1.0 - checked_time(s, "s")


def _check_T(num_train_timesteps: int) -> int:
    if int(num_train_timesteps) != num_train_timesteps or num_train_timesteps < 1:
        raise ValueError(
            f"num_train_timesteps must be a positive integer, got {num_train_timesteps!r}"
        )
    return int(num_train_timesteps)


def ddpm_index_to_time(k: Tensor | int, num_train_timesteps: int = 1000) -> Tensor:
    """t_k = 1 - (k + 1) / T for DDPM steps k in {-1, 0, ..., T - 1} (k = -1 is the data, t = 1).

    Returns float64. Raises ValueError for k outside [-1, T - 1].
    """
    T = _check_T(num_train_timesteps)
    k = torch.as_tensor(k)
    if torch.is_floating_point(k) and not torch.equal(k, k.round()):
        raise ValueError("DDPM steps k must be integers; use time_to_ddpm_index for fractions")
    k = k.to(torch.float64)
    if k.numel() and (float(k.min()) < -1 or float(k.max()) > T - 1):
        raise ValueError(f"DDPM step k must lie in [-1, {T - 1}] for T = {T}, got {k.tolist()}")
    return 1.0 - (k + 1.0) / T


def time_to_ddpm_index(
    t: Tensor | float, num_train_timesteps: int = 1000, *, exact: bool = True
) -> Tensor:
    """The inverse map k = T (1 - t) - 1.

    With ``exact=True`` (default) t must sit on the DDPM lattice (within 1e-9 steps) and the
    result is a LongTensor; with ``exact=False`` the continuous float64 index is returned
    (used to interpolate discrete schedules between their steps).
    """
    T = _check_T(num_train_timesteps)
    k = T * (1.0 - checked_time(t).to(torch.float64)) - 1.0
    if not exact:
        return k
    kr = k.round()
    if k.numel() and float((k - kr).abs().max()) > 1e-9 * max(T, 1):
        raise ValueError(
            "t is not on the DDPM lattice t_k = 1 - (k + 1) / T; pass exact=False for the "
            "continuous index"
        )
    return kr.to(torch.long)
