"""W2 in one dimension by quantile functions, and the sliced W2 built on it.

In 1-D, W2^2(mu, nu) = int_0^1 |F_mu^-1(u) - F_nu^-1(u)|^2 du (monotone rearrangement).
For weighted empirical measures the quantile functions are step functions; the integral is an
exact sum over the merged breakpoints of the two cumulative weight vectors.
Sliced W2 (Rabin et al. 2011; Bonneel et al. 2015): SW2^2 = E_theta W2^2(theta#mu, theta#nu)
over directions theta uniform on the sphere, estimated by Monte Carlo.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import as_points, as_weights, same_dim
from .results import OTResult


def quantile_w2_squared(x: Tensor, y: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Batched exact 1-D W2^2: x (B, n), y (B, m) values, a (n,), b (m,) weights -> (B,)."""
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    B = x.shape[0]
    xs, ix = torch.sort(x, dim=1)
    ys, iy = torch.sort(y, dim=1)
    if x.shape[1] == y.shape[1] and torch.allclose(a, a[:1]) and torch.allclose(b, b[:1]):
        return ((xs - ys) ** 2).mean(1)
    ca = torch.cumsum(a[ix], dim=1)
    cb = torch.cumsum(b[iy], dim=1)
    ca[:, -1] = 1.0
    cb[:, -1] = 1.0
    u = torch.sort(torch.cat([ca, cb], dim=1), dim=1).values
    du = torch.diff(u, dim=1, prepend=torch.zeros(B, 1, dtype=u.dtype, device=u.device))
    mid = u - du / 2
    jx = torch.searchsorted(ca, mid).clamp_max(x.shape[1] - 1)
    jy = torch.searchsorted(cb, mid).clamp_max(y.shape[1] - 1)
    qx = torch.gather(xs, 1, jx)
    qy = torch.gather(ys, 1, jy)
    return (du * (qx - qy) ** 2).sum(1)


def w2_1d(x: Tensor, y: Tensor, a: Tensor | None = None, b: Tensor | None = None) -> OTResult:
    """Exact W2 between weighted point clouds on the line (x, y of shape (n,) or (n, 1))."""
    x = as_points(x, "x")
    y = as_points(y, "y")
    same_dim(x, y)
    if x.shape[1] != 1:
        raise ValueError(
            f"w2_1d needs points in R^1, got d = {x.shape[1]}: use method 'exact' or 'sliced'"
        )
    aw = as_weights(a, x.shape[0], "a", x)
    bw = as_weights(b, y.shape[0], "b", y)
    cost = float(quantile_w2_squared(x.T, y.T, aw, bw)[0])
    return OTResult.estimate(cost, "1d")


def random_directions(
    n: int, d: int, generator: torch.Generator | None = None, dtype=torch.float64
) -> Tensor:
    """n directions drawn uniformly on the unit sphere S^{d-1}, shape (n, d)."""
    th = torch.randn(n, d, generator=generator, dtype=dtype)
    return th / th.norm(dim=1, keepdim=True)


def sliced_w2(
    x: Tensor,
    y: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    n_projections: int = 256,
    generator: torch.Generator | None = None,
) -> OTResult:
    """Monte-Carlo sliced W2: cost = mean over random directions of the 1-D W2^2.

    Cost O(P n log n) for P projections. SW2^2 <= W2^2 (each projection is 1-Lipschitz), and
    for isotropic differences SW2^2 ~ W2^2 / d: a fast high-dimensional discrepancy, not W2.
    """
    if n_projections < 1:
        raise ValueError("n_projections must be at least 1")
    x = as_points(x, "x").to(torch.float64)
    y = as_points(y, "y").to(torch.float64)
    same_dim(x, y)
    aw = as_weights(a, x.shape[0], "a", x)
    bw = as_weights(b, y.shape[0], "b", y)
    th = random_directions(n_projections, x.shape[1], generator).to(x.device)
    per = quantile_w2_squared(th @ x.T, th @ y.T, aw, bw)
    return OTResult.estimate(float(per.mean()), "sliced", "monte_carlo", n_projections)
