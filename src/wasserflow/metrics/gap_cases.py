"""Noise-to-sample maps of N(0, I_d) whose coupling gap is known: the yardsticks of
:func:`~wasserflow.metrics.coupling_gap` (its tests and benchmarks/coupling_gap.py).

Each case is a map Phi and the true gap G = E|Phi(X) - X|^2 - W2^2(N(0, I), Phi # N(0, I)):

* ``rotation``: the rotation R by theta in each coordinate plane (2k, 2k + 1); R # N(0, I) =
  N(0, I), so W2^2 = 0 and G = E|R X - X|^2 = 2 (d - d mod 2) (1 - cos theta);
* ``linear``: x -> A x, A = I + scale N(0, 1 / d) entries; between Gaussians
  G = 2 tr((A A^T)^1/2) - 2 tr(A) (the coupling's cross term against the nuclear norm of A);
* ``spd-linear``: x -> S x with S symmetric positive definite: the Brenier map, G = 0;
* ``convex-gradient``: grad u, u(x) = |x|^2 / 2 + sum_k c_k softplus(w_k . x), c_k > 0: the
  Brenier map of N(0, I) to its image, G = 0;
* ``rotated-convex-gradient``: grad u (R x): the same image law (R preserves N(0, I)), whose
  Brenier map is grad u, so G = E|grad u(R X) - X|^2 - E|grad u(X) - X|^2, computed by Monte
  Carlo on fresh draws (standard error about 1e-3 relative at the default 400,000).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

CASES = ("rotation", "linear", "spd-linear", "convex-gradient", "rotated-convex-gradient")


@dataclass(frozen=True)
class GapCase:
    """A map of N(0, I_d) (float64 (n, d) -> (n, d)) and its true coupling gap."""

    name: str
    dim: int
    map: Callable[[Tensor], Tensor]
    gap: float


def plane_rotation(d: int, theta: float) -> Tensor:
    """The rotation by theta in each coordinate plane (2k, 2k + 1), (d, d) float64."""
    r = torch.eye(d, dtype=torch.float64)
    c, s = math.cos(theta), math.sin(theta)
    for i in range(0, d - 1, 2):
        r[i, i], r[i, i + 1], r[i + 1, i], r[i + 1, i + 1] = c, -s, s, c
    return r


def _convex_gradient(d: int, seed: int, k: int = 8) -> Callable[[Tensor], Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(k, d, generator=g, dtype=torch.float64) * (2 / math.sqrt(d))
    c = torch.rand(k, generator=g, dtype=torch.float64) * 2 + 0.5
    return lambda x: x + torch.sigmoid(x @ w.T) @ (c[:, None] * w)


def gap_case(
    name: str, d: int, *, theta: float = 1.0, scale: float = 1.0, seed: int = 1, n_mc: int = 400_000
) -> GapCase:
    """The case ``name`` (module doc) in dimension d; ``theta`` the rotation angle, ``scale``
    the linear map's spread, ``seed`` its random draws, ``n_mc`` the Monte Carlo draws."""
    if name not in CASES:
        raise ValueError(f"unknown gap case {name!r}; choose from {CASES}")
    rot = plane_rotation(d, theta)
    g = torch.Generator().manual_seed(seed)
    a = torch.eye(d, dtype=torch.float64) + scale * torch.randn(
        d, d, generator=g, dtype=torch.float64
    ) / math.sqrt(d)
    if name == "rotation":
        return GapCase(name, d, lambda x: x @ rot.T, 2 * (d - d % 2) * (1 - math.cos(theta)))
    if name == "linear":
        gap = 2 * (float(torch.linalg.svdvals(a).sum()) - float(torch.trace(a)))
        return GapCase(name, d, lambda x: x @ a.T, gap)
    if name == "spd-linear":
        spd = a @ a.T / 2 + 0.1 * torch.eye(d, dtype=torch.float64)
        return GapCase(name, d, lambda x: x @ spd.T, 0.0)
    grad = _convex_gradient(d, seed + 1)
    if name == "convex-gradient":
        return GapCase(name, d, grad, 0.0)

    def turned(x: Tensor) -> Tensor:
        return grad(x @ rot.T)

    mc = torch.Generator().manual_seed(99)
    total = 0.0
    for start in range(0, n_mc, 50_000):  # chunks: 784-D draws would not fit at once
        x = torch.randn(min(50_000, n_mc - start), d, generator=mc, dtype=torch.float64)
        total += float(((turned(x) - x).pow(2).sum(1) - (grad(x) - x).pow(2).sum(1)).sum())
    return GapCase(name, d, turned, total / n_mc)
