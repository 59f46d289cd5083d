"""UniPC: the unified predictor-corrector multistep solver (Zhao et al. 2023, "UniPC: a unified
predictor-corrector framework for fast sampling of diffusion models", arXiv:2302.04867), B(h)
variant "bh2" with data prediction.

In the log-SNR lambda = log(alpha / sigma) and with D the data prediction (x1_hat), the
probability-flow ODE has the exact step x_t = (sigma_t / sigma_s) x_s + sigma_t
int_{lambda_s}^{lambda_t} e^lambda D dlambda (see :mod:`.dpm_solver`). With h = lambda_t -
lambda_s, B(h) = 1 - e^{-h} ("bh2") and the evaluations D_0 = D(x_s) (newest), D_1, ... at
lambda_k = lambda_s + r_k h (r_k < 0), the order-p predictor UniP-p is

    x_t = (sigma_t / sigma_s) x_s + alpha_t B(h) [D_0 + sum_{k=1}^{p-1} a_k (D_k - D_0) / r_k],

whose weights solve sum_k a_k r_k^(m-1) = m! phi_{m+1}(-h) / phi_1(-h), m = 1..p-1
(phi_1(z) = (e^z - 1) / z, phi_{m+1}(z) = (phi_m(z) - 1/m!) / z); for p = 2 the single
weight is 1/2 (its value to second order, the authors' and diffusers' choice). After the
field is evaluated at the new point (D_t, at the predicted x_t), the corrector UniC-p redoes
the step with that evaluation added at r = 1 (weights from the p x p system, m = 1..p; 1/2 for
p = 1) and replaces x_t; D_t itself is kept for the next step, so the corrector costs no
evaluation. It is applied after every step but the last (nothing is evaluated after it).

The order ramps up over the first steps (1, 2, ...); with ``lower_order_final`` the order of
step i is at most K - i (the last step first order), as in diffusers for every K; a step to
sigma = 0 (lambda = inf) is always first order (its x is the posterior mean D_0), and
evaluations at alpha = 0 (lambda = -inf, the linear path's t = 0) do not count as history.
With the discrete DDPM schedule, a grid over diffusers' timesteps and a final t = 1 this
reproduces diffusers' UniPCMultistepScheduler(solver_type="bh2", predict_x0=True,
lower_order_final=True) for solver_order 1, 2, 3 (tests/samplers/test_unipc.py).

Grid policy: :func:`~wasserflow.samplers.dpm_solver.solver_plan` (K = nfe evaluation times
toward the last trained time, then t = 1; options ``spacing``, ``final_step``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._time import broadcast_time
from .ancestral import _needs_path, ddim_step, path_steps
from .dpm_solver import _log_snr, solver_plan
from .field import Field, FieldFn, as_field
from .registry import register
from .result import Recorder, SampleResult, check_start, grid_steps


def _phi_ratios(h: float, p: int) -> list[float]:
    """[m! phi_{m+1}(-h) / phi_1(-h) for m = 1..p] (the right-hand sides of UniPC's systems)."""
    z = -h
    b_h = math.expm1(z)
    g, fact, out = b_h / z - 1.0, 1.0, []  # g = z phi_2(z), then z phi_{m+1}(z)
    for m in range(1, p + 1):
        out.append(g * fact / b_h)
        fact *= m + 1
        g = g / z - 1.0 / fact
    return out


def _effective_x1(
    history: list[tuple[Tensor, float]], h: float, p: int, new: Tensor | None = None
) -> Tensor:
    """D_0 + sum_k a_k (D_k - D_0) / r_k (+ a_p (new - D_0) for the corrector) from
    ``history`` = [(D_0, lambda_0), (D_1, lambda_1), ...], newest first."""
    d0, lam0 = history[0]
    r = [(lam - lam0) / h for _, lam in history[1:p]]
    diffs = [(d - d0) / rk for (d, _), rk in zip(history[1:p], r, strict=True)]
    m = p if new is not None else p - 1
    if m == 0:
        return d0
    if m == 1 and (new is not None or p == 2):
        weights = [0.5]
    else:
        nodes = r + ([1.0] if new is not None else [])
        mat = torch.tensor([[rk**i for rk in nodes] for i in range(m)], dtype=torch.float64)
        rhs = torch.tensor(_phi_ratios(h, m), dtype=torch.float64)
        weights = torch.linalg.solve(mat, rhs).tolist()
    if new is not None:
        diffs.append(new - d0)
    return d0 + sum(w * d for w, d in zip(weights, diffs, strict=True))


def _step(x: Tensor, d: Tensor, c_from, c_to) -> Tensor:
    """x_t = (sigma_t / sigma_s) x + alpha_t B(h) d, written as DDIM with x1_hat = d."""
    return ddim_step(d, (x - c_from.alpha * d) / c_from.sigma, c_from, c_to, 0.0, None)


# UniP-2 + UniC is third order (Zhao et al. 2023, Theorem 3.1): measured 3.0 on the mixture
# oracle on log-SNR grids (VP and linear paths, K = 16..256, tests/samplers/test_unipc.py); the
# first-order final step (lower_order_final) would cap it at 2 as K -> inf, but near the data
# D hardly varies with lambda and it does not show (it is no worse than without it)
@register("unipc", order=3, needs_path=True, plan=solver_plan, about="UniPC (bh2, data prediction)")
def unipc(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    order: int = 2,
    lower_order_final: bool = True,
    corrector: bool = True,
) -> SampleResult:
    """UniPC-``order`` (1, 2 or 3) with the UniC corrector (``corrector=False``: UniP alone);
    deterministic, ``generator`` unused. The field is evaluated at every grid time but the
    last; 1 NFE per step; needs ``field.path`` and a chained grid (1-D, increasing) with
    sigma > 0 at all but the last time. Trajectory frames hold the corrected states."""
    if order not in (1, 2, 3):
        raise ValueError(f"unipc order must be 1, 2 or 3, got {order!r}")
    field = _needs_path(as_field(field), "unipc")
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    if not torch.equal(t_from[1:], t_to[:-1]):
        raise ValueError(
            "unipc is multistep: it needs a chained grid t_0 < ... < t_K, not "
            "explicit (t_from, t_to) steps"
        )
    steps = path_steps(field, t_from, t_to)
    if any(c_from.sigma <= 0.0 for _, _, c_from, _ in steps):
        raise ValueError(
            "unipc evaluates the field at every grid time but the last, which "
            "needs sigma_t > 0 there: only the last time may be t = 1"
        )
    n = len(steps)
    rec = Recorder(x, float(t_from[0]), return_trajectory, energy=field.coefficients)
    history: list[tuple[Tensor, float]] = []  # (D, lambda) of the last evaluations, newest first
    last = None  # (x, coefficients, h, order) of the previous predictor step
    for i, (a, _, c_from, c_to) in enumerate(steps):
        d, _ = field.x1_and_epsilon(x, broadcast_time(a, x), c_from)
        rec.nfe += 1
        if last is not None:
            if corrector:  # UniC: redo the previous step with D at its end point
                x_prev, c_prev, h_prev, p_prev = last
                x = _step(x_prev, _effective_x1(history, h_prev, p_prev, new=d), c_prev, c_from)
            rec.add(x, a)
        lam_s, lam_t = _log_snr(c_from.alpha, c_from.sigma), _log_snr(c_to.alpha, c_to.sigma)
        history = [(d, lam_s), *history][:order]
        usable = next((k for k, (_, lam) in enumerate(history) if math.isinf(lam)), order)
        p = min(order, i + 1, max(usable, 1), n - i if lower_order_final else order)
        if c_to.sigma <= 0.0:
            p = 1
        h = lam_t - lam_s
        last = (x, c_from, h, p)
        x = _step(x, _effective_x1(history, h, p), c_from, c_to)
    rec.add(x, float(t_to[-1]))
    return rec.result(x)
