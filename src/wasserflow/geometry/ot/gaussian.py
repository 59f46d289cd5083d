"""Closed forms between Gaussian measures (the Bures-Wasserstein geometry).

For N(m0, S0) and N(m1, S1):

    W2^2 = |m0 - m1|^2 + tr(S0 + S1 - 2 (S0^1/2 S1 S0^1/2)^1/2),
    T(x) = m1 + A (x - m0),  A = S0^-1/2 (S0^1/2 S1 S0^1/2)^1/2 S0^-1/2   (S0 nonsingular).

Geodesic. For an optimal coupling (X, Y) the McCann interpolant is the law of (1-t) X + t Y:

    N_t = N((1-t) m0 + t m1,  (1-t)^2 S0 + t^2 S1 + t (1-t) (C + C^T)),   C = Cov(X, Y).

Every coupling has tr C <= |S1^1/2 S0^1/2|_* = tr (S0^1/2 S1 S0^1/2)^1/2 (nuclear norm), and
C = S0^1/2 U S1^1/2 with U = Q P^T, from the SVD S0^1/2 S1^1/2 = Q diag(s) P^T, attains it:
tr C = sum s. Since U is orthogonal, [[S0, C], [C^T, S1]] = D [[I, U], [U^T, I]] D >= 0 with
D = diag(S0^1/2, S1^1/2), so C is the cross-covariance of a Gaussian optimal coupling, and
W2(N_s, N_t) = |t - s| W2(N_0, N_1). When S0 is nonsingular, C = S0 A and the covariance is
((1-t) I + t A) S0 ((1-t) I + t A); the form with C inverts nothing, so it also holds between
singular covariances, e.g. two rank-one covariances with different ranges (no map defined on
S0's range reaches S1 there), and N_0, N_1 are exactly the two ends.

All matrix functions use symmetric eigendecompositions in float64 with eigenvalues clamped at
zero, so singular covariances (degenerate Gaussians) are handled; the map of a singular S0 is
the pseudo-inverse one (on S0's support).
References: Takatsu (2011), "Wasserstein geometry of Gaussian measures"; Bhatia, Jain & Lim
(2019), "On the Bures-Wasserstein distance between positive definite matrices"; Peyre & Cuturi
(2019) remark 2.31.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import as_points, as_spd, as_weights, gaussian_pair, same_dim
from ..measures import Gaussian
from .results import AffineMap, OTResult


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
    m0, S0, m1, S1 = gaussian_pair(m0, S0, m1, S1)
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
    m0, S0, m1, S1 = gaussian_pair(m0, S0, m1, S1)
    A = _monge_matrix(S0, S1)
    return AffineMap(matrix=A, shift=m1 - A @ m0)


def _optimal_cross_covariance(S0: Tensor, S1: Tensor) -> Tensor:
    """C = S0^1/2 U S1^1/2, U the orthogonal polar factor of S0^1/2 S1^1/2 (module doc)."""
    r0, r1 = psd_power(S0, 0.5), psd_power(S1, 0.5)
    Q, _, Ph = torch.linalg.svd(r0 @ r1)
    return r0 @ (Q @ Ph) @ r1


def gaussian_geodesic(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor, t: float) -> Gaussian:
    """The point at time t in [0, 1] of the W2 geodesic (McCann interpolant) between Gaussians.

    mean (1 - t) m0 + t m1, covariance (1-t)^2 S0 + t^2 S1 + t (1-t) (C + C^T) with C the
    cross-covariance of an optimal coupling (module doc); no covariance is inverted, so singular
    ends (Diracs, covariances of different ranges) are exact: t = 0 gives S0 and t = 1 gives S1.
    """
    if not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"t = {t} is outside [0, 1]")
    m0, S0, m1, S1 = gaussian_pair(m0, S0, m1, S1)
    t = float(t)
    C = _optimal_cross_covariance(S0, S1)
    cov = (1 - t) ** 2 * S0 + t**2 * S1 + t * (1 - t) * (C + C.T)
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
