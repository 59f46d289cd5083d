"""Typed results of the OT solvers (one dataclass per kind of answer, never bare tuples).

The measures they act on (:class:`~wasserflow.geometry.measures.Gaussian`,
:class:`~wasserflow.geometry.measures.WeightedCloud`) live in :mod:`wasserflow.geometry.measures`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class OTResult:
    """Answer of an optimal-transport solver for the squared-Euclidean cost.

    Attributes:
        cost: the transport cost sum_ij P_ij |x_i - y_j|^2, i.e. W2^2 for exact solvers
            (the entropic solvers put their primal cost here and the objective elsewhere).
        plan: the (n, m) coupling P in float64, or None when only a permutation is kept.
        permutation: for a coupling that is a permutation (equal-size uniform measures), the
            (n,) index j = perm[i] that x_i is sent to; else None.
        potentials: dual potentials (f, g) with f_i + g_j <= |x_i - y_j|^2 (exact) or the
            entropic potentials; None when the solver has none.
        marginal_error: sum |P 1 - a| + sum |P^T 1 - b| (L1), 0 for permutations.
        converged: whether the solver reached its optimality criterion.
        status: a short word ("optimal", "max_iter_reached", "converged", "not_converged", ...).
        iterations: iterations the solver used (network-simplex pivots are not exposed by POT,
            so exact solvers report the iteration limit they needed, see ``status``).
        method: the name of the solver.
    """

    cost: float
    plan: Tensor | None
    permutation: Tensor | None
    potentials: tuple[Tensor, Tensor] | None
    marginal_error: float
    converged: bool
    status: str
    iterations: int
    method: str

    @classmethod
    def estimate(
        cls, cost: float, method: str, status: str = "closed_form", iterations: int = 0
    ) -> OTResult:
        """A W2^2 value with no plan (closed forms, sliced estimates): converged, no marginals."""
        return cls(
            cost=float(cost),
            plan=None,
            permutation=None,
            potentials=None,
            marginal_error=0.0,
            converged=True,
            status=status,
            iterations=iterations,
            method=method,
        )

    @property
    def w2_squared(self) -> float:
        return self.cost

    @property
    def w2(self) -> float:
        return math.sqrt(max(self.cost, 0.0))


@dataclass(frozen=True)
class AffineMap:
    """The map x -> shift + x @ matrix.T (the optimal map between Gaussians is of this form)."""

    matrix: Tensor
    shift: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        m = self.matrix.to(x.dtype)
        return self.shift.to(x.dtype) + x @ m.T


@dataclass(frozen=True)
class PathGeometry:
    """Geometry of a set of trajectories x_i(t_k) on a time grid (see ``trajectory_geometry``).

    Attributes:
        action: mean_i sum_k |x_i(t_{k+1}) - x_i(t_k)|^2 / (t_{k+1} - t_k), the discrete
            Benamou-Brenier kinetic energy (scaled to the unit interval).
        endpoint_w2_squared: exact W2^2 between the start and end clouds.
        geodesic_gap: action - endpoint_w2_squared (>= 0 up to discretisation; 0 on geodesics).
        normalized_path_energy: |action - W2^2| / W2^2 (Tong et al. 2023).
        straightness: mean_i int |v - (x_i(1) - x_i(0))|^2 dt (Liu et al. 2022; 0 iff straight).
        pairing_cost: mean_i |x_i(1) - x_i(0)|^2 (the cost of the pairing the trajectories make).
    """

    action: float
    endpoint_w2_squared: float
    geodesic_gap: float
    normalized_path_energy: float
    straightness: float
    pairing_cost: float
