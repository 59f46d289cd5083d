"""DDPM ancestral sampling and DDIM, for any affine path x = alpha x1 + sigma eps.

Both step from t to t' > t through the Gaussian posterior of the forward Markov kernel
x_t = a x_t' + b z, a = alpha_t / alpha_t', b^2 = sigma_t^2 - a^2 sigma_t'^2 (Ho et al. 2020,
eq. 7; for VP paths a^2 = abar_t / abar_t' and b^2 = beta_t):

    q(x_t' | x_t, x1) = N(mu, var),  mu = (a sigma_t'^2 / sigma_t^2) x_t
                                          + (alpha_t' b^2 / sigma_t^2) x1,
                                     var = b^2 sigma_t'^2 / sigma_t^2,

with x1 replaced by the model's x1_hat. DDIM (Song, Meng & Ermon 2021, eq. 12) keeps the
marginals and interpolates with eta: x_t' = alpha_t' x1_hat + sqrt(sigma_t'^2 - c^2) eps_hat
+ c z, c = eta sqrt(var); eta = 1 has the DDPM posterior's law, eta = 0 is deterministic.

As discretisations of dx = [v + g^2/2 s] dt + g dW: DDIM with eta = 0 is the exponential-
integrator (first-order) step of the probability-flow ODE (g = 0; Zhang & Chen 2023), and
DDPM ancestral (eta = 1) a first-order step of the reverse SDE with the path's natural g
(g^2 = 2 (sigma^2 d_alpha / alpha - sigma d_sigma)). With the discrete DDPM schedule and a
grid from :func:`~wasserflow.samplers.grids.diffusers_steps` they reproduce diffusers'
DDPMScheduler / DDIMScheduler steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from wasserflow.paths.affine import expand_like
from wasserflow.paths.schedules import ScheduleOutput

from .._time import broadcast_time
from .field import Field, FieldFn, as_field
from .grids import diffusers_steps, uniform_grid
from .registry import budget, register
from .result import Recorder, SampleResult, check_start, gaussian_noise, grid_steps


def _relu(v):
    return v.clamp_min(0.0) if isinstance(v, Tensor) else max(v, 0.0)


def _sqrt(v):
    return v.sqrt() if isinstance(v, Tensor) else math.sqrt(v)


def _bc(v, x: Tensor):
    """Per-sample (n,) coefficients broadcast against x; Python floats pass through."""
    return expand_like(v, x) if isinstance(v, Tensor) and v.dim() == 1 else v


def posterior_coefficients(c_from: ScheduleOutput, c_to: ScheduleOutput) -> tuple:
    """(x_coef, x1_coef, var) of q(x_t' | x_t, x1) = N(x_coef x_t + x1_coef x1, var).

    Coefficients may be (n,) tensors or Python floats (then floats are returned)."""
    a = c_from.alpha / c_to.alpha
    s2_from, s2_to = c_from.sigma**2, c_to.sigma**2
    b2 = _relu(s2_from - a**2 * s2_to)
    return a * s2_to / s2_from, c_to.alpha * b2 / s2_from, b2 * s2_to / s2_from


def ddpm_step(
    x: Tensor, x1_hat: Tensor, c_from: ScheduleOutput, c_to: ScheduleOutput, noise: Tensor | None
) -> Tensor:
    """One ancestral step: x_t' = mu(x_t, x1_hat) + sqrt(var) z (z = ``noise``; None: no noise)."""
    x_coef, x1_coef, var = posterior_coefficients(c_from, c_to)
    out = _bc(x_coef, x) * x + _bc(x1_coef, x) * x1_hat
    if noise is not None:
        out = out + _bc(_sqrt(var), x) * noise
    return out


def ddim_step(
    x1_hat: Tensor,
    eps_hat: Tensor,
    c_from: ScheduleOutput,
    c_to: ScheduleOutput,
    eta: float,
    noise: Tensor | None,
) -> Tensor:
    """One DDIM step: alpha_t' x1_hat + sqrt(sigma_t'^2 - c^2) eps_hat + c z, c = eta sqrt(var)."""
    _, _, var = posterior_coefficients(c_from, c_to)
    c = eta * _sqrt(var)
    direction = _sqrt(_relu(c_to.sigma**2 - c**2))
    out = _bc(c_to.alpha, x1_hat) * x1_hat + _bc(direction, x1_hat) * eps_hat
    if noise is not None and eta > 0:
        out = out + _bc(c, x1_hat) * noise
    return out


def _needs_path(field: Field, name: str) -> Field:
    if field.path is None:
        raise ValueError(f"{name} needs the path's schedule: pass Field(fn, prediction, path=...)")
    return field


def _step_coefficients(field: Field, t: Tensor) -> list[ScheduleOutput]:
    """The schedule at each grid time, as Python floats (evaluated once, vectorised)."""
    c = field.coefficients(t.to(torch.float64))
    cols = [v.tolist() for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma)]
    return [ScheduleOutput(*vals) for vals in zip(*cols, strict=True)]


def path_steps(field: Field, t_from: Tensor, t_to: Tensor) -> list[tuple]:
    """[(t_k, t_k+1, coefficients at t_k, coefficients at t_k+1)] of the steps of a grid."""
    return list(
        zip(
            t_from.tolist(),
            t_to.tolist(),
            _step_coefficients(field, t_from),
            _step_coefficients(field, t_to),
            strict=True,
        )
    )


def _diffusers_plan(scheduler: str):
    """On a discrete DDPM schedule: diffusers' timesteps ("trailing" spacing, final alpha 1) at
    min(budget, T) steps; on any other path: ``budget`` uniform steps to ``t_end``."""

    def plan(spec, nfe, ctx, options):
        T, k = ctx.num_train_timesteps, budget(nfe)
        if T is None:
            return uniform_grid(k, 0.0, ctx.t_end), options
        return diffusers_steps(
            min(k, T),
            scheduler=scheduler,
            num_train_timesteps=T,
            spacing="trailing",
            set_alpha_to_one=True,
        ), options

    return plan


@register("ddpm", order=1, stochastic=True, needs_path=True, plan=_diffusers_plan("ddpm"))
def ddpm(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> SampleResult:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2; "fixed_small" variance).

    Noise is drawn, in step order from ``generator``, on every step whose posterior variance is
    positive (so not on a final step to alpha = 1). 1 NFE per step; needs ``field.path``.
    """
    field = _needs_path(as_field(field), "ddpm")
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    rec = Recorder(x, float(t_from[0]), return_trajectory)
    for a, b, c_from, c_to in path_steps(field, t_from, t_to):
        x1_hat, _ = field.x1_and_epsilon(x, broadcast_time(a, x), c_from)
        rec.nfe += 1
        var = posterior_coefficients(c_from, c_to)[2]
        noise = gaussian_noise(x, generator) if var > 0 else None
        x = ddpm_step(x, x1_hat, c_from, c_to, noise)
        rec.add(x, b)
    return rec.result(x)


@register("ddim", order=1, stochastic=True, needs_path=True, plan=_diffusers_plan("ddim"))
def ddim(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    eta: float = 0.0,
) -> SampleResult:
    """DDIM (Song, Meng & Ermon 2021) with stochasticity eta in [0, 1] (0: deterministic).

    With eta > 0 noise is drawn from ``generator`` on every step (as diffusers does). 1 NFE per
    step; needs ``field.path``.
    """
    if not 0.0 <= eta:
        raise ValueError(f"eta must be >= 0 (0 deterministic DDIM, 1 DDPM-like), got {eta}")
    field = _needs_path(as_field(field), "ddim")
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    rec = Recorder(
        x, float(t_from[0]), return_trajectory, energy=field.coefficients if eta == 0 else None
    )
    for a, b, c_from, c_to in path_steps(field, t_from, t_to):
        x1_hat, eps_hat = field.x1_and_epsilon(x, broadcast_time(a, x), c_from)
        rec.nfe += 1
        noise = gaussian_noise(x, generator) if eta > 0 else None
        x = ddim_step(x1_hat, eps_hat, c_from, c_to, eta, noise)
        rec.add(x, b, t_from=a)
    return rec.result(x)
