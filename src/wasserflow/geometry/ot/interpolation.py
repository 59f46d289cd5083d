"""Displacement (McCann) interpolation: the constant-speed W2 geodesic between two measures.

Given an optimal coupling P of mu_0 = sum a_i delta_{x_i} and mu_1 = sum b_j delta_{y_j},
mu_t = sum_ij P_ij delta_{(1-t) x_i + t y_j}, and W2(mu_s, mu_t) = |t - s| W2(mu_0, mu_1)
(McCann 1997). Between Gaussians use ``gaussian.gaussian_geodesic``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import as_points, same_dim
from ..measures import WeightedCloud
from .results import OTResult


def displacement_interpolation(
    x: Tensor, y: Tensor, coupling: OTResult | Tensor, t: float, *, atol: float = 0.0
) -> WeightedCloud:
    """The McCann interpolant at time t of the coupling between clouds x (n, d) and y (m, d).

    ``coupling`` is an OTResult (its permutation or plan is used) or a plan tensor (n, m).
    Plan entries <= atol are dropped (a network-simplex plan has at most n + m - 1 non-zeros).
    """
    if not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"t = {t} is outside [0, 1]")
    x = as_points(x, "x")
    y = as_points(y, "y")
    same_dim(x, y)
    if isinstance(coupling, OTResult) and coupling.permutation is not None:
        perm = coupling.permutation.to(x.device)
        pts = (1 - t) * x + t * y[perm].to(x.dtype)
        w = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64, device=x.device)
        return WeightedCloud(points=pts, weights=w)
    plan = coupling.plan if isinstance(coupling, OTResult) else coupling
    if plan is None:
        raise ValueError("the coupling has neither a plan nor a permutation (e.g. sliced/gaussian)")
    if plan.shape != (x.shape[0], y.shape[0]):
        raise ValueError(
            f"plan has shape {tuple(plan.shape)}, expected ({x.shape[0]}, {y.shape[0]})"
        )
    i, j = torch.nonzero(plan > atol, as_tuple=True)
    w = plan[i, j].to(torch.float64)
    pts = (1 - t) * x[i] + t * y[j].to(x.dtype)
    return WeightedCloud(points=pts, weights=w / w.sum())
