"""Input validation shared by :mod:`.ot` and :mod:`.flows`: every failure is a ValueError naming
the fix.

Point clouds (:func:`as_points`, :func:`same_dim`), probability weights (:func:`as_weights`),
vectors such as means (:func:`as_vector`), covariances (:func:`as_spd`) and the parameters of a
pair of Gaussians (:func:`gaussian_pair`). Checked values come back as tensors, float64 for
everything but points (which keep their floating dtype).
"""

from __future__ import annotations

import math
import sys

import torch
from torch import Tensor


def as_points(x: Tensor, name: str) -> Tensor:
    """Check a point cloud of shape (n, d) (a 1-D tensor is read as n points in R^1)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (n, d), got {type(x).__name__}")
    if x.dim() == 1:
        x = x[:, None]
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n, d), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: a measure needs at least one point")
    if not torch.is_floating_point(x):
        x = x.to(torch.get_default_dtype())
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf values: clean the points before computing OT")
    return x


def same_dim(x: Tensor, y: Tensor, nx: str = "x", ny: str = "y") -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"dimension mismatch: {nx} has d = {x.shape[1]}, {ny} has d = {y.shape[1]}; "
            "both point clouds must live in the same R^d"
        )


def overflow_message(top: float) -> str:
    """The refusal of coordinates as large as ``top`` whose squared distances overflow."""
    return (
        f"coordinates as large as {top:.3g} in magnitude: their squared distances overflow "
        f"float64 (largest {sys.float_info.max:.3g}); rescale both clouds by a common factor "
        "(W2 scales with it)"
    )


def within_range(x: Tensor, y: Tensor) -> None:
    """Refuse clouds whose squared distances may overflow float64: |x_i - y_j|^2 is at most
    d (max|x| + max|y|)^2, which must be finite (coordinates up to about 1e154)."""
    top = max(float(x.abs().max()), float(y.abs().max()))
    if not math.isfinite(x.shape[1] * (2 * top) * (2 * top)):
        raise ValueError(overflow_message(top))


def as_weights(w: Tensor | None, n: int, name: str, like: Tensor) -> Tensor:
    """Check or build probability weights of length n (uniform when None), float64."""
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64, device=like.device)
    if not isinstance(w, Tensor):
        w = torch.as_tensor(w)
    w = w.to(device=like.device, dtype=torch.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(
            f"{name} has {w.shape[0]} weights for {n} points: give one weight per point"
        )
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    total = float(w.sum())
    if total <= 0:
        raise ValueError(f"{name} sums to zero: a measure needs positive mass")
    if abs(total - 1.0) > 1e-6:
        raise ValueError(
            f"{name} sums to {total:.8g}, not 1: normalise the weights (w / w.sum()) first"
        )
    return w / total


def as_spd(S: Tensor, name: str) -> Tensor:
    """Check a symmetric positive semi-definite matrix (d, d); returned in float64."""
    if not isinstance(S, Tensor):
        S = torch.as_tensor(S)
    S = S.to(torch.float64)
    if S.dim() == 0:
        S = S.reshape(1, 1)
    if S.dim() != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"{name} must be a square (d, d) covariance, got shape {tuple(S.shape)}")
    if not torch.isfinite(S).all():
        raise ValueError(f"{name} holds NaN or inf values")
    scale = max(float(S.abs().max()), 1e-300)
    if float((S - S.T).abs().max()) > 1e-8 * scale:
        raise ValueError(f"{name} is not symmetric: pass (S + S.T) / 2 if that is what you mean")
    S = (S + S.T) / 2
    if float(torch.linalg.eigvalsh(S).min()) < -1e-8 * scale:
        raise ValueError(
            f"{name} has a negative eigenvalue: a covariance must be positive semi-definite"
        )
    return S


def as_vector(v, name: str, d: int | None = None) -> Tensor:
    """Check a finite vector (a mean, a centre), flattened to shape (d,) in float64."""
    v = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} holds NaN or inf values")
    if d is not None and v.shape[0] != d:
        raise ValueError(f"{name} has d = {v.shape[0]}, expected d = {d}")
    return v


def gaussian_pair(m0, S0, m1, S1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Check the parameters of N(m0, S0) and N(m1, S1): finite means and PSD covariances of one
    dimension d; returned in float64."""
    m0, m1 = as_vector(m0, "m0"), as_vector(m1, "m1")
    S0, S1 = as_spd(S0, "S0"), as_spd(S1, "S1")
    d = m0.shape[0]
    if not (m1.shape[0] == d and S0.shape == (d, d) and S1.shape == (d, d)):
        raise ValueError(
            f"dimension mismatch: m0 {tuple(m0.shape)}, S0 {tuple(S0.shape)}, "
            f"m1 {tuple(m1.shape)}, S1 {tuple(S1.shape)}"
        )
    return m0, S0, m1, S1
