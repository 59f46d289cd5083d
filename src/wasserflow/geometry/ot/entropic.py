"""Entropic optimal transport: log-stabilised Sinkhorn with epsilon-scaling, and the debiased
Sinkhorn divergence.

For weighted clouds a = sum_i a_i delta_{x_i}, b = sum_j b_j delta_{y_j} and C_ij = |x_i - y_j|^2,

    OT_eps(a, b) = min_{P 1 = a, P^T 1 = b} <P, C> + eps KL(P | a (x) b)
                 = max_{f, g} <a, f> + <b, g> - eps <a (x) b, exp((f + g - C) / eps) - 1>,

with optimal plan P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps).  ``epsilon`` is ABSOLUTE, in the
units of the cost (squared distance).  Since KL(P | a (x) b) = -H(P) + const on the coupling set,
the plan is the one of POT's ``ot.sinkhorn(a, b, C, reg=epsilon)`` (entropy H(P) = -sum P log P).
The blur of GeomLoss (``SamplesLoss("sinkhorn", p=2, blur=s)``, cost |x - y|^2 / 2) corresponds
to epsilon = 2 s^2 here, and its loss value is half of ours.

Solver (Schmitzer 2019, "Stabilized sparse scaling algorithms"; Peyre & Cuturi 2019, sec. 4.4):
epsilon is annealed from the squared diameter of the data down to ``epsilon`` (epsilon-scaling).
At each stage the kernel K_ij = b_j exp((g_j - C_ij) / eps) / Z_i (each row's maximum is one, so
no row underflows) is formed once in ``kernel_dtype`` (float32 unless tol < 1e-5: half the memory
traffic) in row blocks, then cheap scaling (matrix-vector) iterations run with float64 vectors;
whenever the scalings pass e^30 they are absorbed into the float64 potentials and the kernel is
rebuilt.  :func:`sinkhorn` returns potentials, plan, cost and marginal error from one final float64
log-domain pass, so no NaN, inf or zero row appears even for epsilon = 1e-4 of the cost scale.
Float32 kernels perturb the cost by about 1e-7 of the squared diameter; pass
``kernel_dtype=torch.float64`` when that matters.  Iterations grow like 1 / epsilon.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import as_points, as_weights, same_dim
from .costs import squared_distances
from .results import OTResult

_BLOCK_ELEMENTS = 4_000_000  # kernel entries formed per block (few parallel regions, bounded RAM)
_ABSORB = 30.0  # absorb the scalings into the potentials once |log u| exceeds this
_STAGE_TOL = 1e-2  # marginal error that ends an intermediate annealing stage


def _rows(m: int) -> int:
    return max(4, _BLOCK_ELEMENTS // max(m, 1))


class _Problem:
    """One entropic problem between (x, a) and (y, b); x and y are already centred, float64."""

    def __init__(self, x: Tensor, y: Tensor, a: Tensor, b: Tensor, kernel_dtype: torch.dtype):
        self.x, self.y, self.a, self.b = x, y, a, b
        ones = torch.ones(x.shape[0], 1, dtype=torch.float64, device=x.device)
        self.xa = torch.cat([x, ones], 1)  # [x_i, 1] . [2 y_j / eps, r_j] = exponent of K
        self.x2 = (x * x).sum(1)
        self.y2 = (y * y).sum(1)
        self.logb = b.log()
        self.dtype = kernel_dtype
        self.K = torch.empty(x.shape[0], y.shape[0], dtype=kernel_dtype, device=x.device)

    def build(self, g: Tensor, eps: float) -> Tensor:
        """K_ij = b_j exp((g_j - C_ij)/eps) / Z_i (row maximum one), in place; returns log Z."""
        r = (g - self.y2) / eps + self.logb
        ya = torch.cat([self.y * (2.0 / eps), r[:, None]], 1).to(self.dtype)
        xa = self.xa.to(self.dtype)
        mx = torch.empty(self.x.shape[0], dtype=self.dtype, device=self.x.device)
        rows = _rows(self.y.shape[0])
        for s in range(0, self.x.shape[0], rows):
            blk = self.K[s : s + rows]
            torch.mm(xa[s : s + rows], ya.T, out=blk)
            m = blk.amax(1)
            blk.sub_(m[:, None]).exp_()
            mx[s : s + rows] = m
        return mx.to(torch.float64) - self.x2 / eps

    def mv(self, v: Tensor) -> Tensor:
        return (self.K @ v.to(self.dtype)).to(torch.float64)

    def rmv(self, u: Tensor) -> Tensor:
        return (u.to(self.dtype) @ self.K).to(torch.float64)


def _big(*t: Tensor) -> bool:
    return any(float(v.log().abs().max()) > _ABSORB for v in t)


def _solve_stage(p: _Problem, g: Tensor, eps: float, tol: float, max_iter: int):
    """Alternate Sinkhorn at fixed eps from column potential g.

    P_ij = a_i u_i K_ij v_j; returns (f, g, column error, iterations, dual value), with f from a
    last row update so that the rows and the total mass are exact.
    """
    logz = p.build(g, eps)
    u = 1.0 / p.mv(torch.ones_like(p.b))
    err = math.inf
    it = 0
    while it < max_iter:
        it += 1
        v = p.b / p.rmv(p.a * u)
        s = p.mv(v)
        err = float((p.a * (u * s - 1.0).abs()).sum())
        if not math.isfinite(err):
            raise FloatingPointError("non-finite Sinkhorn scalings: increase epsilon")
        u = 1.0 / s
        if err < tol:
            break
        if _big(u, v):
            g = g + eps * v.log()
            logz = p.build(g, eps)
            u = 1.0 / p.mv(torch.ones_like(p.b))
    col = float((v * p.rmv(p.a * u) - p.b).abs().sum())
    f = eps * (u.log() - logz)
    g = g + eps * v.log()
    return f, g, col, it, float(p.a @ f + p.b @ g)


def _solve_stage_sym(p: _Problem, f: Tensor, eps: float, tol: float, max_iter: int):
    """Symmetric problem (x = y, a = b): averaged update f <- (f + T(f)) / 2 in scaling form,
    T(f)_i = -eps log sum_j a_j exp((f_j - C_ij)/eps); f = f0 + eps log w."""
    logz = p.build(f, eps)
    c = -logz - f / eps
    w = torch.ones_like(p.a)
    err = math.inf
    it = 0
    while it < max_iter:
        it += 1
        s = p.mv(w)
        ratio = c.exp() / s  # log ratio = (T(f) - f0) / eps at the current w
        err = float((p.a * (w / ratio - 1.0).abs()).sum())
        if not math.isfinite(err):
            raise FloatingPointError("non-finite Sinkhorn scalings: increase epsilon")
        if err < tol:
            break
        w = (w * ratio).sqrt()
        if _big(w):
            f = f + eps * w.log()
            logz = p.build(f, eps)
            c = -logz - f / eps
            w = torch.ones_like(p.a)
    f_col = f + eps * w.log()
    f_row = -eps * (logz + p.mv(w).log())  # T(f_col): exact rows, total mass one
    return f_row, f_col, err, it, float(p.a @ f_row + p.a @ f_col)


def _final_pass(p: _Problem, g: Tensor, eps: float, want_plan: bool):
    """Float64 log-domain row update f = -eps log sum_j b_j exp((g_j - C_ij)/eps) and the plan.

    Returns f, the plan (or None), the primal cost <P, C>, the column-marginal L1 error (rows are
    exact after this update) and the dual value <a, f> + <b, g> (total mass is exactly one).
    """
    n, m = p.x.shape[0], p.y.shape[0]
    f = torch.empty(n, dtype=torch.float64, device=p.x.device)
    cols = torch.zeros(m, dtype=torch.float64, device=p.x.device)
    plan = torch.empty(n, m, dtype=torch.float64, device=p.x.device) if want_plan else None
    cost = 0.0
    row = (g / eps + p.logb)[None, :]
    rows = _rows(m) // 4  # float64 temporaries
    for s in range(0, n, rows):
        C = squared_distances(p.x[s : s + rows], p.y)
        L = row - C / eps
        lse = torch.logsumexp(L, dim=1, keepdim=True)
        f[s : s + rows] = -eps * lse[:, 0]
        P = (L - lse).exp_().mul_(p.a[s : s + rows, None])
        cols += P.sum(0)
        cost += float((P * C).sum())
        if plan is not None:
            plan[s : s + rows] = P
    err = float((cols - p.b).abs().sum())
    dual = float(p.a @ f + p.b @ g)
    return f, plan, cost, err, dual


def _schedule(scale: float, epsilon: float, anneal_factor: float | None) -> list[float]:
    if anneal_factor is None or epsilon >= scale:
        return [epsilon]
    if not 0.0 < anneal_factor < 1.0:
        raise ValueError(f"anneal_factor must lie in (0, 1) or be None, got {anneal_factor}")
    eps = [scale]
    while eps[-1] * anneal_factor > epsilon:
        eps.append(eps[-1] * anneal_factor)
    return eps + [epsilon]


def _prepare(x, y, a, b, epsilon, tol, max_iter):
    x = as_points(x, "x")
    y = as_points(y, "y")
    same_dim(x, y)
    a64 = as_weights(a, x.shape[0], "a", x)
    b64 = as_weights(b, y.shape[0], "b", y)
    if (a64 <= 0).any() or (b64 <= 0).any():
        raise ValueError("entropic OT needs positive weights: drop the points of zero weight first")
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(
            f"epsilon must be a positive float (squared-distance units), got {epsilon}"
        )
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    x64 = x.to(torch.float64)
    y64 = y.to(torch.float64)
    both = torch.cat([x64, y64])
    centre = both.mean(0)  # C is translation invariant; centring keeps the kernel exponent small
    scale = float(((both.amax(0) - both.amin(0)) ** 2).sum())  # squared diameter bound
    return x64 - centre, y64 - centre, a64, b64, max(scale, float(epsilon))


def _kernel_dtype(kernel_dtype: torch.dtype | None, tol: float) -> torch.dtype:
    if kernel_dtype is None:
        return torch.float32 if tol >= 1e-5 else torch.float64
    if kernel_dtype not in (torch.float32, torch.float64):
        raise ValueError(f"kernel_dtype must be torch.float32 or torch.float64, got {kernel_dtype}")
    return kernel_dtype


def _anneal(p: _Problem, eps_list, tol, max_iter, stage_tol, symmetric):
    """Run the epsilon-scaling stages; returns (f, g, error, iterations, dual) of the last one."""
    g = torch.zeros(p.y.shape[0], dtype=torch.float64, device=p.y.device)
    total = 0
    stage = _solve_stage_sym if symmetric else _solve_stage
    for k, eps in enumerate(eps_list):
        last = k == len(eps_list) - 1
        budget = max(max_iter - total, 1) if last else min(max(max_iter - total, 1), 50)
        f, g_new, err, it, dual = stage(p, g, eps, tol if last else max(stage_tol, tol), budget)
        g = g_new
        total += it
    return f, g_new, err, total, dual


def sinkhorn(
    x: Tensor,
    y: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    epsilon: float,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    anneal_factor: float | None = 0.1,
    return_plan: bool = True,
    kernel_dtype: torch.dtype | None = None,
) -> OTResult:
    """Entropic OT between sum_i a_i delta_{x_i} and sum_j b_j delta_{y_j} (C = |x - y|^2).

    Solves min_{P 1 = a, P^T 1 = b} <P, C> + eps KL(P | a (x) b); the plan is
    P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), the same as POT's ``ot.sinkhorn(a, b, C,
    reg=epsilon)``.

    Args:
        x: (n, d) and y: (m, d) points; a, b: positive weights summing to one (uniform if None).
        epsilon: absolute regularisation, in squared-distance units (POT's ``reg``).
        tol: stop when the L1 marginal error sum_i |(P 1)_i - a_i| is below tol.
        max_iter: scaling iterations in total (all annealing stages together).
        anneal_factor: epsilon-scaling ratio between stages, starting at the squared diameter
            (None: start at epsilon directly).
        return_plan: form the dense (n, m) float64 plan (set False for large n).
        kernel_dtype: dtype of the kernel matrix used by the iterations; None picks float32 when
            tol >= 1e-5 (float32 sums cannot certify smaller errors) and float64 otherwise.

    Returns:
        OTResult with cost = <P, C> (primal transport cost, without the entropy term), the plan,
        potentials (f, g), marginal_error (L1, measured in float64 on the returned plan),
        converged / status ("converged" or "max_iter_reached"), iterations, method="sinkhorn".
    """
    x, y, a, b, scale = _prepare(x, y, a, b, epsilon, tol, max_iter)
    p = _Problem(x, y, a, b, _kernel_dtype(kernel_dtype, tol))
    eps_list = _schedule(scale, epsilon, anneal_factor)
    _, g, err, its, _ = _anneal(p, eps_list, tol, max_iter, _STAGE_TOL, False)
    del p.K
    f, plan, cost, err64, _ = _final_pass(p, g, epsilon, return_plan)
    converged = err < tol
    return OTResult(
        cost=cost,
        plan=plan,
        permutation=None,
        potentials=(f, g),
        marginal_error=err64,
        converged=converged,
        status="converged" if converged else "max_iter_reached",
        iterations=its,
        method="sinkhorn",
    )


def _ot_eps(x, y, a, b, eps_list, tol, max_iter, kernel_dtype, symmetric):
    p = _Problem(x, y, a, b, kernel_dtype)
    f, g, err, its, dual = _anneal(p, eps_list, tol, max_iter, _STAGE_TOL, symmetric)
    return f, g, dual, err < tol, err, its


def sinkhorn_divergence(
    x: Tensor,
    y: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    epsilon: float | None = None,
    tol: float = 1e-3,
    max_iter: int = 10_000,
    anneal_factor: float | None = 0.1,
    kernel_dtype: torch.dtype | None = None,
) -> OTResult:
    """Debiased Sinkhorn divergence, an approximation of W2^2 (Feydy et al., AISTATS 2019):

        S_eps(a, b) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2,

    each OT_eps evaluated by its dual value <a, f> + <b, g> (see :func:`sinkhorn`).  S_eps >= 0,
    S_eps -> W2^2 as eps -> 0 with an O(eps^2) bias for smooth densities (Chizat et al. 2020),
    far smaller than the O(eps log(1/eps)) bias of OT_eps itself.  The self terms use the
    symmetric averaged update f <- (f + T(f)) / 2.

    Args:
        x: (n, d), y: (m, d); a, b: weights (uniform if None).
        epsilon: absolute regularisation in squared-distance units; default 1e-3 times the
            squared diameter of the two clouds.
        tol: L1 marginal error at which each of the three problems stops; each dual value then
            errs by about epsilon * tol (1e-4 relative at the default epsilon).
        max_iter, anneal_factor, kernel_dtype: as in :func:`sinkhorn` (per problem).

    Returns:
        OTResult with cost = S_eps, plan None, potentials (f_ab - f_aa, g_ab - g_bb) (the
        gradient of S_eps with respect to a and b), marginal_error the largest of the three
        problems, converged only if all three converged, iterations their total.
    """
    if epsilon is None:
        x_, y_ = as_points(x, "x"), as_points(y, "y")
        both = torch.cat([x_.to(torch.float64), y_.to(torch.float64)])
        epsilon = 1e-3 * max(float(((both.amax(0) - both.amin(0)) ** 2).sum()), 1e-300)
    x, y, a, b, scale = _prepare(x, y, a, b, epsilon, tol, max_iter)
    eps_list = _schedule(scale, epsilon, anneal_factor)
    args = (eps_list, tol, max_iter, _kernel_dtype(kernel_dtype, tol))
    f_ab, g_ab, ot_ab, c1, e1, i1 = _ot_eps(x, y, a, b, *args, symmetric=False)
    f_aa, _, ot_aa, c2, e2, i2 = _ot_eps(x, x, a, a, *args, symmetric=True)
    f_bb, _, ot_bb, c3, e3, i3 = _ot_eps(y, y, b, b, *args, symmetric=True)
    converged = c1 and c2 and c3
    return OTResult(
        cost=ot_ab - 0.5 * (ot_aa + ot_bb),
        plan=None,
        permutation=None,
        potentials=(f_ab - f_aa, g_ab - f_bb),
        marginal_error=max(e1, e2, e3),
        converged=converged,
        status="converged" if converged else "max_iter_reached",
        iterations=i1 + i2 + i3,
        method="sinkhorn",
    )
