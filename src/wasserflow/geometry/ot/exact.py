"""Exact optimal transport for the squared-Euclidean cost.

W2^2(a, b) = min_{P >= 0, P 1 = a, P^T 1 = b} sum_ij P_ij |x_i - y_j|^2, solved by POT's network
simplex (Bonneel et al. 2011). POT stops at ``numItermax`` (default 1e5) with only a warning,
which from n ~ 2,000 points returns a cost several percent too high. Here the limit scales with
the problem, is raised again whenever it is hit, and a result that never reached optimality says
so in ``status`` / ``converged`` instead of passing silently.

The cost matrix is :func:`~.costs.squared_distances`; :func:`~.solve.w2` is the front door that
dispatches to this solver and the approximate ones.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import ot
import torch
from torch import Tensor

from ..._memory import available_bytes, gib
from ...errors import TooLarge
from .._checks import as_points, as_weights, same_dim
from .costs import squared_distances
from .results import OTResult

_MAX_ITER_REACHED = 3
_STATUS = {0: "infeasible", 1: "optimal", 2: "unbounded", 3: "max_iter_reached"}
BYTES_PER_PAIR = 41
"""Peak memory of one solve per pair (i, j): the float64 cost matrix, POT's dense plan and its
network simplex's arcs (measured: 40.8 bytes per pair at n = m = 1,500 and 3,000)."""


CHECKED_FROM = 2**28
"""Solves needing less (256 MiB: 2,500 points against 2,500) skip reading the free memory
(the minibatch couplings of training solve one small problem per batch)."""


def check_memory(n: int, m: int, available: int | None = None) -> None:
    """Refuse (:class:`~wasserflow.errors.TooLarge`) an exact solve between ``n`` and ``m``
    points that needs more than ``available`` bytes (default: what the machine has free, read
    for solves of :data:`CHECKED_FROM` bytes or more; no check where it does not say), before
    anything is allocated."""
    needed = BYTES_PER_PAIR * n * m
    if available is None:
        if needed < CHECKED_FROM:
            return
        available = available_bytes()
    if available is None or needed <= available:
        return
    fits = math.isqrt(available // BYTES_PER_PAIR)
    raise TooLarge(
        f"exact OT between {n:,} and {m:,} points needs about {gib(needed)} of memory and "
        f"{gib(available)} is available: use method sinkhorn or sliced (--method sinkhorn, "
        f"--method sliced), or a random subsample of at most {fits:,} points per cloud",
        needed=needed,
        available=available,
    )


def _emd(a: np.ndarray, b: np.ndarray, C: np.ndarray, max_iter: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        P, log = ot.emd(a, b, C, numItermax=max_iter, log=True)
    return P, log


def exact_ot(
    x: Tensor,
    y: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    max_iter: int | None = None,
    max_retries: int = 3,
) -> OTResult:
    """Exact OT between the weighted point clouds sum_i a_i delta_{x_i} and sum_j b_j delta_{y_j}.

    Args:
        x: (n, d) source points; y: (m, d) target points.
        a, b: weights summing to one (uniform when None).
        max_iter: first network-simplex iteration limit (default max(1e6, 50 n m)); when POT
            reports that the limit was reached the solve is repeated with a 10x larger limit,
            ``max_retries`` times at most.

    Returns:
        OTResult with the float64 plan, the dual potentials (f, g), cost = <P, C> = W2^2 and
        ``status`` "optimal", or "max_iter_reached" with ``converged=False`` if even the last
        limit was not enough (the cost is then an upper bound only).

    Raises:
        TooLarge (a ValueError and a MemoryError): the solve would need more memory than the
            machine has free (:data:`BYTES_PER_PAIR` bytes per pair); checked before allocating.
        ValueError: NaN, inf, or coordinates so large that squared distances overflow.

    Reference: Peyre & Cuturi, Computational Optimal Transport (2019), ch. 3.
    """
    x = as_points(x, "x")
    y = as_points(y, "y")
    same_dim(x, y)
    a64 = as_weights(a, x.shape[0], "a", x)
    b64 = as_weights(b, y.shape[0], "b", y)
    check_memory(x.shape[0], y.shape[0])
    C = squared_distances(x, y).cpu().numpy()
    an = a64.cpu().numpy()
    bn = b64.cpu().numpy()
    limit = int(max_iter or max(1_000_000, 50 * x.shape[0] * y.shape[0]))
    for attempt in range(max_retries + 1):
        P, log = _emd(an, bn, C, limit)
        code = int(log["result_code"])
        if code != _MAX_ITER_REACHED or attempt == max_retries:
            break
        limit *= 10
    if code in (0, 2):
        raise ValueError(f"exact OT failed: problem {_STATUS[code]} (check the weights a and b)")
    plan = torch.from_numpy(P).to(x.device)
    cost = float(log["cost"])
    marg = float(np.abs(P.sum(1) - an).sum() + np.abs(P.sum(0) - bn).sum())
    pots = (torch.from_numpy(log["u"]).to(x.device), torch.from_numpy(log["v"]).to(x.device))
    converged = code == 1
    return OTResult(
        cost=cost,
        plan=plan,
        permutation=None,
        potentials=pots,
        marginal_error=marg,
        converged=converged,
        status=_STATUS[code],
        iterations=limit,
        method="exact",
    )
