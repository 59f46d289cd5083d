"""DPM-Solver++(2M): the multistep second-order exponential integrator of the probability-flow
ODE in data prediction (Lu et al. 2022, "DPM-Solver++", arXiv:2211.01095, Algorithm 2).

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

With the discrete DDPM schedule, a grid t_i = 1 - (k_i + 1) / T over diffusers' timesteps k_i
and a final t = 1, this reproduces diffusers' DPMSolverMultistepScheduler(algorithm_type=
"dpmsolver++", solver_order=2, solver_type="midpoint", final_sigmas_type="zero").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .ancestral import _needs_path, ddim_step, path_steps
from .field import Field, FieldFn, as_field, time_vector
from .result import Recorder, SampleResult, check_start, grid_steps

LOWER_ORDER_FINAL_BELOW = 15  # diffusers: lower_order_final only for fewer than 15 steps


def _log_snr(alpha: float, sigma: float) -> float:
    """lambda = log(alpha / sigma), -inf at alpha = 0 and +inf at sigma = 0."""
    if alpha <= 0.0:
        return -math.inf
    if sigma <= 0.0:
        return math.inf
    return math.log(alpha) - math.log(sigma)


def dpm_solver(field: Field | FieldFn, x0: Tensor, grid: Tensor, *,
               generator: torch.Generator | None = None, return_trajectory: bool = False,
               lower_order_final: bool = True) -> SampleResult:
    """DPM-Solver++(2M) on the probability-flow ODE (deterministic; ``generator`` unused).

    The field is evaluated (as x1_hat through ``Field.x1_and_epsilon``) at every grid time but
    the last, so a grid may end at sigma = 0 (t = 1 on VP / linear paths) where the model was
    never trained. 1 NFE per step; needs ``field.path`` and a chained grid (1-D, increasing).
    """
    field = _needs_path(as_field(field), "dpm_solver")
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    if not torch.equal(t_from[1:], t_to[:-1]):
        raise ValueError("dpm_solver is multistep: it needs a chained grid t_0 < ... < t_K, "
                         "not explicit (t_from, t_to) steps")
    n_steps = t_from.shape[0]
    rec = Recorder(x, float(t_from[0]), return_trajectory)
    previous: tuple[Tensor, float] | None = None  # (D_{i-1}, lambda_{i-1})
    for i, (a, b, c_from, c_to) in enumerate(path_steps(field, t_from, t_to)):
        d, _ = field.x1_and_epsilon(x, time_vector(a, x), c_from)
        rec.nfe += 1
        lam_s, lam_t = _log_snr(c_from.alpha, c_from.sigma), _log_snr(c_to.alpha, c_to.sigma)
        first_order = (previous is None or c_to.sigma <= 0.0
                       or (lower_order_final and i == n_steps - 1
                           and n_steps < LOWER_ORDER_FINAL_BELOW))
        d_step = d
        if not first_order:
            d_prev, lam_prev = previous
            ratio = (lam_t - lam_s) / (2.0 * (lam_s - lam_prev))  # 0 after a step from alpha=0
            d_step = d + ratio * (d - d_prev)
        previous = (d, lam_s)
        # the exponential-integrator step with data prediction d_step is DDIM (eta = 0) with
        # x1_hat = d_step and the eps_hat that keeps x = alpha_s x1_hat + sigma_s eps_hat
        eps = (x - c_from.alpha * d_step) / c_from.sigma
        x = ddim_step(d_step, eps, c_from, c_to, 0.0, None)
        rec.add(x, b)
    return rec.result(x)
