"""Closed forms between Gaussian measures (the Bures-Wasserstein geometry).

For N(m0, S0) and N(m1, S1):

    W2^2 = |m0 - m1|^2 + tr(S0 + S1 - 2 (S0^1/2 S1 S0^1/2)^1/2),
    T(x) = m1 + A (x - m0),  A = S0^-1/2 (S0^1/2 S1 S0^1/2)^1/2 S0^-1/2,
    geodesic: N((1-t) m0 + t m1, ((1-t) I + t A) S0 ((1-t) I + t A)).

All matrix functions use symmetric eigendecompositions in float64 with eigenvalues clamped at
zero, so singular covariances (degenerate Gaussians) are handled; when S0 is singular the map
and geodesic are computed from the better-conditioned end.
Reference: Takatsu (2011), "Wasserstein geometry of Gaussian measures"; Peyre & Cuturi (2019)
remark 2.31.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import as_points, as_spd, as_weights, same_dim
from .results import AffineMap, Gaussian, OTResult


def _vec(m: Tensor, name: str) -> Tensor:
    m = torch.as_tensor(m).to(torch.float64).reshape(-1)
    if not torch.isfinite(m).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return m


def _check_pair(m0, S0, m1, S1):
    m0, m1 = _vec(m0, "m0"), _vec(m1, "m1")
    S0, S1 = as_spd(S0, "S0"), as_spd(S1, "S1")
    d = m0.shape[0]
    if not (m1.shape[0] == d and S0.shape[0] == d and S1.shape[0] == d):
        raise ValueError(
            f"dimension mismatch: m0 {tuple(m0.shape)}, S0 {tuple(S0.shape)}, "
            f"m1 {tuple(m1.shape)}, S1 {tuple(S1.shape)}"
        )
    return m0, S0, m1, S1


def psd_power(S: Tensor, p: float, rcond: float = 1e-12) -> Tensor:
    """S^p for a symmetric PSD S by eigendecomposition; negative p uses the pseudo-inverse
    (eigenvalues below rcond * max eigenvalue are treated as zero)."""
    w, U = torch.linalg.eigh(S)
    w = w.clamp_min(0.0)
    if p < 0:
        keep = w > rcond * max(float(w.max()), 1e-300)
        wp = torch.where(keep, w.clamp_min(1e-300) ** p, torch.zeros_like(w))
    else:
        wp = w**p
    return (U * wp) @ U.T


def bures_squared(S0: Tensor, S1: Tensor) -> Tensor:
    """tr(S0 + S1 - 2 (S0^1/2 S1 S0^1/2)^1/2), the covariance part of W2^2 (float64 scalar)."""
    S0 = as_spd(S0, "S0")
    S1 = as_spd(S1, "S1")
    r0 = psd_power(S0, 0.5)
    mid = r0 @ S1 @ r0
    cross = torch.linalg.eigvalsh((mid + mid.T) / 2).clamp_min(0.0).sqrt().sum()
    return (torch.trace(S0) + torch.trace(S1) - 2 * cross).clamp_min(0.0)


def gaussian_w2_squared(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor) -> Tensor:
    """W2^2(N(m0, S0), N(m1, S1)) in float64 (closed form above)."""
    m0, S0, m1, S1 = _check_pair(m0, S0, m1, S1)
    return ((m0 - m1) ** 2).sum() + bures_squared(S0, S1)


def gaussian_w2(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor) -> Tensor:
    """W2(N(m0, S0), N(m1, S1)) in float64."""
    return gaussian_w2_squared(m0, S0, m1, S1).sqrt()


def _monge_matrix(S0: Tensor, S1: Tensor) -> Tensor:
    r0 = psd_power(S0, 0.5)
    ir0 = psd_power(S0, -0.5)
    mid = r0 @ S1 @ r0
    A = ir0 @ psd_power((mid + mid.T) / 2, 0.5) @ ir0
    return (A + A.T) / 2


def gaussian_map(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor) -> AffineMap:
    """The optimal (Brenier) map from N(m0, S0) to N(m1, S1): x -> m1 + A (x - m0).

    A is symmetric PSD. For singular S0 the map is the one on S0's support (pseudo-inverse);
    it then pushes N(m0, S0) to N(m1, S1) only if S1's range is reachable, which the caller
    should check (the geodesic below does not need it).
    """
    m0, S0, m1, S1 = _check_pair(m0, S0, m1, S1)
    A = _monge_matrix(S0, S1)
    return AffineMap(matrix=A, shift=m1 - A @ m0)


def _cond(S: Tensor) -> float:
    w = torch.linalg.eigvalsh(S)
    return float(w.max() / w.min()) if float(w.min()) > 0 else float("inf")


def gaussian_geodesic(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor, t: float) -> Gaussian:
    """The point at time t in [0, 1] of the W2 geodesic (McCann interpolant) between Gaussians.

    mean (1 - t) m0 + t m1, covariance ((1-t) I + t A) S0 ((1-t) I + t A), computed from the
    better-conditioned endpoint (the reversed geodesic at 1 - t), so singular ends are exact.
    """
    if not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"t = {t} is outside [0, 1]")
    m0, S0, m1, S1 = _check_pair(m0, S0, m1, S1)
    eye = torch.eye(S0.shape[0], dtype=torch.float64)
    if _cond(S0) <= _cond(S1):
        A, S, s = _monge_matrix(S0, S1), S0, float(t)
    else:
        A, S, s = _monge_matrix(S1, S0), S1, 1.0 - float(t)
    M = (1 - s) * eye + s * A
    cov = M @ S @ M
    return Gaussian(mean=(1 - t) * m0 + t * m1, cov=(cov + cov.T) / 2)


def empirical_gaussian(x: Tensor, a: Tensor | None = None) -> Gaussian:
    """Weighted mean and (biased, weight-normalised) covariance of a point cloud, float64."""
    x = as_points(x, "x").to(torch.float64)
    w = as_weights(a, x.shape[0], "a", x)
    mean = w @ x
    xc = x - mean
    cov = (xc * w[:, None]).T @ xc
    return Gaussian(mean=mean, cov=(cov + cov.T) / 2)


def gaussian_w2_empirical(
    x: Tensor, y: Tensor, a: Tensor | None = None, b: Tensor | None = None
) -> OTResult:
    """Bures W2 between the Gaussians matching the first two moments of x and y.

    A lower bound on the W2 of the clouds themselves (Gelbrich's bound), exact for Gaussians.
    """
    x = as_points(x, "x")
    y = as_points(y, "y")
    same_dim(x, y)
    gx, gy = empirical_gaussian(x, a), empirical_gaussian(y, b)
    cost = float(gaussian_w2_squared(gx.mean, gx.cov, gy.mean, gy.cov))
    return OTResult.estimate(cost, "gaussian")
