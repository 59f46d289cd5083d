"""DPM-Solver++(2M) and (3M): multistep exponential integrators of the probability-flow ODE in
data prediction (Lu et al. 2022, "DPM-Solver++", arXiv:2211.01095, Algorithm 2).

On an affine path x = alpha x1 + sigma eps with independent Gaussian coupling, the
probability-flow ODE (g = 0 in dx = [v + g^2/2 s] dt + g dW) written in the log-SNR
lambda = log(alpha / sigma) and the data prediction D(x, lambda) = x1_hat is semi-linear:

    x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^{lambda} D dlambda.

With D constant over the step this is DDIM (eta = 0), the first-order step
x_t = (sigma_t / sigma_s) x_s + alpha_t (1 - e^{-h}) D_s, h = lambda_t - lambda_s. 2M replaces
D_s by its linear extrapolation from the previous evaluation (midpoint form, eq. 11 / Alg. 2):

    D = D_i + (h_i / (2 h_{i-1})) (D_i - D_{i-1}),   h_{i-1} = lambda_i - lambda_{i-1},

one field evaluation per step, second order in the step size (uniform in lambda or in t).
The first step has no history and is first order; a step to sigma = 0 (lambda = +inf) is
first order too (its x is the posterior mean D_s, as in diffusers with final sigma "zero");
``lower_order_final`` also makes the last step first order when there are fewer than 15 steps
(diffusers' ``lower_order_final``, which stabilises few-step sampling).

3M (``order=3``, ``dpm_solver_3m``) uses the last three evaluations (second divided
differences, :func:`_effective_x1`); its order ramps up 1, 2, 3 over the first steps and the
step before a lower-order final one is at most second order, as in diffusers (solver_order=3).

With the discrete DDPM schedule, a grid t_i = 1 - (k_i + 1) / T over diffusers' timesteps k_i
and a final t = 1, this reproduces diffusers' DPMSolverMultistepScheduler(algorithm_type=
"dpmsolver++", solver_order=2 or 3, solver_type="midpoint", final_sigmas_type="zero").

Grid policy (:func:`solver_plan`): K = nfe evaluation times below the last trained time, then
a step to t = 1 (sigma = 0 on VP paths) with the data prediction, so no separate denoising
evaluation is needed. The grid (:func:`~wasserflow.samplers.grids.solver_grid`, options
``spacing`` and ``final_step``) defaults to :data:`DPM_SOLVER_GRID`, chosen on the 2-D moons
benchmark (benchmarks/README.md, 8 NFE, one seed): uniform in t (better than log-SNR for 4 of 5
VP models, and than Karras spacings for all), with the last evaluation half an increment before
the last trained time (diffusers puts it a whole increment before), which lowered W2 at 8 NFE
for every VP model tried.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._time import broadcast_time
from .ancestral import _needs_path, ddim_step, path_steps
from .field import Field, FieldFn, as_field
from .grids import solver_grid
from .registry import budget, register
from .result import Recorder, SampleResult, check_start, grid_steps

LOWER_ORDER_FINAL_BELOW = 15  # diffusers: lower_order_final only for fewer than 15 steps
DPM_SOLVER_GRID = {"spacing": "time", "final_step": 0.5}
LOGSNR_T_STOP = 1.0 - 1e-3  # log-SNR spacing needs sigma > 0 at its stop time


def solver_plan(spec, nfe, ctx, options):
    """``budget`` evaluation times toward the last trained time, then t = 1 (module doc);
    options ``spacing`` ("time" or "logsnr") and ``final_step`` are consumed here."""
    opts = dict(options)
    spacing = opts.pop("spacing", DPM_SOLVER_GRID["spacing"])
    final_step = opts.pop("final_step", DPM_SOLVER_GRID["final_step"])
    stop = ctx.t_last_trained
    if spacing == "logsnr":
        stop = min(stop, LOGSNR_T_STOP)
    grid = solver_grid(
        budget(nfe),
        ctx.path.coefficients,
        spacing=spacing,
        stop=stop,
        end=1.0,
        final_step=final_step,
    )
    return grid, opts


def _log_snr(alpha: float, sigma: float) -> float:
    """lambda = log(alpha / sigma), -inf at alpha = 0 and +inf at sigma = 0 (the float form of
    ``ScheduleOutput.log_snr``, for the per-step Python-float coefficients)."""
    if alpha <= 0.0:
        return -math.inf
    if sigma <= 0.0:
        return math.inf
    return math.log(alpha) - math.log(sigma)


def _effective_x1(history: list[tuple[Tensor, float]], lam_t: float, order: int) -> Tensor:
    """The data prediction D that one DDIM step uses so that it equals the multistep update of
    the given order from ``history`` = [(D_s, lambda_s), (D_{s-1}, ...), ...], newest first.

    Order 2 (midpoint): D_0 + (h / (2 h_0)) (D_0 - D_1). Order 3 (Lu et al. 2022, DPM-Solver++
    3M): x_t = (sigma_t / sigma_s) x + alpha_t [phi_1 D_0 + (1 - phi_1 / h) E_1
    - ((h - phi_1) / h^2 - 1/2) E_2], phi_1 = 1 - e^{-h}, with the divided differences
    E_1 = d0 + r_0 / (r_0 + r_1) (d0 - d1), E_2 = (d0 - d1) / (r_0 + r_1),
    d0 = (D_0 - D_1) / r_0, d1 = (D_1 - D_2) / r_1, r_k = h_k / h; a DDIM step with
    D = D_0 + [(1 - phi_1 / h) E_1 - ((h - phi_1) / h^2 - 1/2) E_2] / phi_1 is that update.
    """
    d0, lam_s = history[0]
    h = lam_t - lam_s
    d1, lam_1 = history[1]
    if order == 2:
        return d0 + (h / (2.0 * (lam_s - lam_1))) * (d0 - d1)  # 0 after a step from alpha = 0
    d2, lam_2 = history[2]
    r0, r1 = (lam_s - lam_1) / h, (lam_1 - lam_2) / h
    diff0, diff1 = (d0 - d1) / r0, (d1 - d2) / r1
    e1 = diff0 + (r0 / (r0 + r1)) * (diff0 - diff1)
    e2 = (diff0 - diff1) / (r0 + r1)
    phi1 = -math.expm1(-h)
    return d0 + ((1.0 - phi1 / h) * e1 - ((h - phi1) / h**2 - 0.5) * e2) / phi1


@register("dpm_solver", order=2, needs_path=True, plan=solver_plan)
def dpm_solver(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    lower_order_final: bool = True,
    order: int = 2,
) -> SampleResult:
    """DPM-Solver++(2M) (``order=2``) or (3M) (``order=3``) on the probability-flow ODE
    (deterministic; ``generator`` unused).

    The field is evaluated (as x1_hat through ``Field.x1_and_epsilon``) at every grid time but
    the last, so a grid may end at sigma = 0 (t = 1 on VP / linear paths) where the model was
    never trained. 1 NFE per step; needs ``field.path`` and a chained grid (1-D, increasing).
    The order ramps up over the first steps (1, 2, then 3) as history accumulates; with
    ``lower_order_final`` and fewer than 15 steps the last step is first order and the one
    before it at most second order (diffusers' DPMSolverMultistepScheduler).
    """
    if order not in (2, 3):
        raise ValueError(f"dpm_solver order must be 2 or 3, got {order!r}")
    field = _needs_path(as_field(field), "dpm_solver")
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    if not torch.equal(t_from[1:], t_to[:-1]):
        raise ValueError(
            "dpm_solver is multistep: it needs a chained grid t_0 < ... < t_K, "
            "not explicit (t_from, t_to) steps"
        )
    n_steps = t_from.shape[0]
    short = lower_order_final and n_steps < LOWER_ORDER_FINAL_BELOW
    rec = Recorder(x, float(t_from[0]), return_trajectory, energy=field.coefficients)
    history: list[tuple[Tensor, float]] = []  # (D, lambda) of the last evaluations, newest first
    for i, (a, b, c_from, c_to) in enumerate(path_steps(field, t_from, t_to)):
        d, _ = field.x1_and_epsilon(x, broadcast_time(a, x), c_from)
        rec.nfe += 1
        lam_s, lam_t = _log_snr(c_from.alpha, c_from.sigma), _log_snr(c_to.alpha, c_to.sigma)
        history = [(d, lam_s), *history][:order]
        step_order = min(order, i + 1)
        if c_to.sigma <= 0.0 or (short and i == n_steps - 1):
            step_order = 1
        elif short and i == n_steps - 2:
            step_order = min(step_order, 2)
        d_step = d if step_order == 1 else _effective_x1(history, lam_t, step_order)
        # the exponential-integrator step with data prediction d_step is DDIM (eta = 0) with
        # x1_hat = d_step and the eps_hat that keeps x = alpha_s x1_hat + sigma_s eps_hat
        eps = (x - c_from.alpha * d_step) / c_from.sigma
        x = ddim_step(d_step, eps, c_from, c_to, 0.0, None)
        rec.add(x, b)
    return rec.result(x)


# third-order steps, but the first step (no history) is first order, as in diffusers: its local
# error h^2 caps the global order at 2 (measured 2.07; 3-4x below 2M)
@register("dpm_solver_3m", order=2, needs_path=True, plan=solver_plan)
def dpm_solver_3m(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    lower_order_final: bool = True,
) -> SampleResult:
    """DPM-Solver++(3M): :func:`dpm_solver` with ``order=3``. Its steps are third order, but the
    first step has no history and is first order (diffusers' start), so the global order is 2,
    with a 3-4x smaller error than 2M on the same grid (tests/samplers/test_dpm_solver.py)."""
    return dpm_solver(
        field,
        x0,
        grid,
        generator=generator,
        return_trajectory=return_trajectory,
        lower_order_final=lower_order_final,
        order=3,
    )
