"""Exact minibatch OT pairing for OT flow matching (Tong et al. 2023; Pooladian et al. 2023).

For two equal-size uniform batches x0, x1 of n points, the exact OT coupling for the squared
Euclidean cost is a permutation (Birkhoff-von Neumann: the assignment polytope's vertices are
permutation matrices):

    perm = argmin_sigma sum_i |x0_i - x1_sigma(i)|^2.

Solver choice, measured on this project's 2-core machine (benchmarks/ot_speed.py): POT's network
simplex called directly through ``ot.lp.emd_wrap.emd_c`` (no input checks, no backend
conversion) is the fastest exact solver found, ~7 ms at n = 256 and ~0.15-0.2 s at n = 1024 in
d = 2; scipy's ``linear_sum_assignment`` (shortest augmenting paths) takes ~10-20 ms at 256 and
0.5-0.8 s at 1024 on these clouds, and ``min_weight_full_bipartite_matching`` on the dense graph
over 1 s at 256 (k-nearest-neighbour sparsification fails: the OT partners of noise points are not
their neighbours).  The network simplex returns a vertex of the transport polytope, hence a
permutation; this is checked, and scipy's solver is the fallback.

Threads: ``emd_c`` releases the GIL, so the next batch's pairing can be computed in a background
thread while the model trains, e.g. ``pool.submit(minibatch_ot_permutation, x0, x1)`` with a
``concurrent.futures.ThreadPoolExecutor(1)``.
"""

from __future__ import annotations

import numpy as np
import torch
from ot.lp.emd_wrap import emd_c
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .._checks import as_points, same_dim
from .results import OTResult


def _cost(x0: Tensor, x1: Tensor) -> np.ndarray:
    x0 = as_points(x0, "x0")
    x1 = as_points(x1, "x1")
    same_dim(x0, x1, "x0", "x1")
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(
            f"x0 has {x0.shape[0]} points and x1 has {x1.shape[0]}: a permutation pairing needs "
            "equal batch sizes (use exact_ot for unequal clouds)"
        )
    a = x0.detach().to("cpu", torch.float64)
    b = x1.detach().to("cpu", torch.float64)
    if a.shape[1] <= 16:  # differences: no cancellation
        an, bn = a.numpy(), b.numpy()
        C = np.zeros((an.shape[0], bn.shape[0]))
        for k in range(an.shape[1]):
            C += np.subtract.outer(an[:, k], bn[:, k]) ** 2
        return C
    # torch's matmul follows torch's thread setting; numpy's BLAS may start its own threads,
    # which on a loaded machine made this product 100x slower than one thread (images, d = 64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return sq.clamp_min_(0.0).numpy()


def _solve(C: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    n = C.shape[0]
    w = np.full(n, 1.0 / n)
    G, _, alpha, beta, code = emd_c(w, w, C, max(10_000_000, 100 * n * n), 1)
    perm = G.argmax(1)
    if code == 1 and np.array_equal(np.bincount(perm, minlength=n), np.ones(n, dtype=np.int64)):
        return perm, alpha, beta, True
    _, perm = linear_sum_assignment(C)  # fallback (never seen): exact Hungarian-type solver
    return perm, alpha, beta, False


def minibatch_ot_permutation(x0: Tensor, x1: Tensor) -> Tensor:
    """Exact OT pairing of two equal-size uniform batches.

    Args:
        x0: (n, d) source batch (e.g. noise); x1: (n, d) target batch (e.g. data).

    Returns:
        (n,) LongTensor perm on x0's device such that (x0[i], x1[perm[i]]) is an optimal pairing:
        sum_i |x0_i - x1_perm(i)|^2 = n W2^2(x0, x1).
    """
    C = _cost(x0, x1)
    perm, *_ = _solve(C)
    return torch.from_numpy(np.ascontiguousarray(perm, dtype=np.int64)).to(x0.device)


def minibatch_ot(x0: Tensor, x1: Tensor) -> OTResult:
    """Exact OT between two equal-size uniform batches, as an :class:`OTResult`.

    cost = (1/n) sum_i |x0_i - x1_perm(i)|^2 = W2^2 of the two empirical measures; permutation;
    potentials (f, g) from the network simplex (f_i + g_j <= C_ij, equality on the pairs);
    plan None (it is P = I_perm / n).
    """
    C = _cost(x0, x1)
    perm, alpha, beta, simplex = _solve(C)
    n = C.shape[0]
    dev = x0.device
    pots = (torch.from_numpy(alpha).to(dev), torch.from_numpy(beta).to(dev))
    return OTResult(
        cost=float(C[np.arange(n), perm].mean()),
        plan=None,
        permutation=torch.from_numpy(np.ascontiguousarray(perm, dtype=np.int64)).to(dev),
        potentials=pots if simplex else None,
        marginal_error=0.0,
        converged=True,
        status="optimal",
        iterations=0,
        method="network_simplex" if simplex else "linear_sum_assignment",
    )
