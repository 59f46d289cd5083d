"""EDM's second-order Heun sampler on the Karras noise levels (Karras et al. 2022, "Elucidating
the design space of diffusion-based generative models", arXiv:2206.00364, Algorithms 1 and 2).

On an affine path x = alpha x1 + sigma eps, write x = alpha (x1 + s eps) with EDM's noise level
s = sigma / alpha = exp(-lambda). The probability-flow ODE of y = x / alpha in s is

    dy / ds = (y - D(y, s)) / s = eps_hat,

D the data prediction (x1_hat) and eps_hat the noise prediction of one field evaluation
(``Field.x1_and_epsilon``). From level s_i to s_{i+1} < s_i, Heun takes the Euler step
y' = y + (s_{i+1} - s_i) eps_i and then the trapezoidal correction
y_{i+1} = y + (s_{i+1} - s_i) (eps_i + eps') / 2, eps' evaluated at (y', s_{i+1}); the last step
to s = 0 is Euler only (Algorithm 1, line 8), where y_{i+1} = D(y_i, s_i). N steps to s = 0
cost 2N - 1 evaluations. In x: x_{i+1} = alpha_{i+1} (x_i / alpha_i + (s_{i+1} - s_i) eps).
With the discrete DDPM schedule and :func:`~wasserflow.samplers.grids.karras_grid` this equals
diffusers' HeunDiscreteScheduler(use_karras_sigmas=True) (tests/samplers/test_edm_heun.py).

Churn (Algorithm 2; off by default, ``S_churn=0``): at a level s_i in [S_tmin, S_tmax] the
state is first pushed to the higher level s_hat = s_i (1 + gamma), gamma = min(S_churn / N,
sqrt(2) - 1), by y_hat = y + sqrt(s_hat^2 - s_i^2) S_noise z, z ~ N(0, I) drawn from
``generator``, and the Heun step runs from s_hat. s_hat is capped at s(t = 0), the path's
largest level (a DDPM model is not trained beyond it). The sampler is registered
``stochastic=True`` for that reason, as ``ddim`` (eta defaults to 0) is: with the default
S_churn = 0 it draws nothing and is the deterministic order-2 ODE solver.

Grid policy (:func:`karras_plan`): N = (nfe + 1) // 2 steps on the Karras grid (rho = 7)
from s_max = s(0) to s_min = s(last trained time), then t = 1 (s = 0); options ``rho``,
``sigma_min``, ``sigma_max`` override them. Flow-matching models on the linear path have
alpha = 0 at t = 0 (s = inf): the grid then starts, as EDM does, at the finite level
s_max = 80 (t_0 = 1/81), and x0 is taken as the state there; this neglects the data's share
t_0 x1 of x_{t_0} (EDM's start y = s_max z neglects it too). So do paths whose s(0) exceeds
1e4 (the cosine schedule's alpha_0 ~ 1e-17). Without s = 0 on the path (VE)
the grid has N + 1 levels down to s_min and every step is Heun (2N evaluations).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._time import broadcast_time
from .ancestral import _needs_path, _step_coefficients
from .field import Field, FieldFn, as_field
from .grids import KARRAS_RHO, karras_grid, time_at_log_snr
from .registry import budget, register
from .result import Recorder, SampleResult, check_start, gaussian_noise, grid_steps

EDM_SIGMA_MAX = 80.0  # Karras et al. (2022), Table 1: where a path has alpha_0 = 0
EDM_SIGMA_MIN = 0.002  # ... and where sigma vanishes at the last trained time
START_LEVEL_CAP = 1e4  # above it (cosine: alpha_0 ~ 1e-17) x_0 is noise: start at EDM's 80


def karras_plan(spec, nfe, ctx, options):
    """The Karras grid (module doc) for ``nfe`` evaluations: N = (nfe + 1) // 2 Heun steps to
    s = 0 for 2-NFE samplers (nfe // 2 without s = 0 on the path), N = nfe otherwise; options
    ``rho``, ``sigma_min``, ``sigma_max`` are consumed here."""
    opts = dict(options)
    rho = opts.pop("rho", KARRAS_RHO)
    s_min, s_max = opts.pop("sigma_min", None), opts.pop("sigma_max", None)
    c = ctx.path.coefficients(torch.tensor([0.0, ctx.t_last_trained, 1.0], dtype=torch.float64))
    if s_max is None and not float(c.sigma[0] / c.alpha[0]) <= START_LEVEL_CAP:
        s_max = EDM_SIGMA_MAX
    if s_min is None and float(c.sigma[1]) <= 0.0:
        s_min = EDM_SIGMA_MIN
    n = budget(nfe)
    if spec.nfe_per_step == 2:
        n = (n + 1) // 2 if float(c.sigma[2]) <= 0.0 else max(1, n // 2)
    grid = karras_grid(
        n, ctx.path.coefficients, rho=rho, sigma_min=s_min, sigma_max=s_max, stop=ctx.t_last_trained
    )
    return grid, opts


def noise_levels(field: Field, grid: Tensor, name: str) -> tuple[list[float], list, list[float]]:
    """(times, float coefficients, levels s = sigma / alpha) of a grid an EDM-style sampler can
    follow: 1-D increasing, alpha > 0 everywhere, sigma > 0 but possibly at the last time."""
    t_from, t_to = grid_steps(grid)
    if not torch.equal(t_from[1:], t_to[:-1]):
        raise ValueError(f"{name} needs a chained grid t_0 < ... < t_K, not explicit steps")
    t = torch.cat([t_from, t_to[-1:]])
    coefs = _step_coefficients(field, t)
    if any(c.alpha <= 0.0 for c in coefs) or any(c.sigma <= 0.0 for c in coefs[:-1]):
        raise ValueError(
            f"{name} steps between finite noise levels s = sigma_t / alpha_t: "
            "every grid time needs alpha_t > 0 and all but the last sigma_t > 0 "
            "(alpha_0 = 0 on the linear path: start at a finite level, "
            "karras_grid(n, schedule, sigma_max=80))"
        )
    return t.tolist(), coefs, [c.sigma / c.alpha for c in coefs]


@register(
    "edm_heun",
    order=2,
    stochastic=True,
    needs_path=True,
    nfe_per_step=2,
    plan=karras_plan,
    about="EDM's Heun sampler on Karras noise levels",
)
def edm_heun(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    S_churn: float = 0.0,
    S_tmin: float = 0.0,
    S_tmax: float = math.inf,
    S_noise: float = 1.0,
) -> SampleResult:
    """EDM Heun (Algorithm 1; with ``S_churn > 0`` Algorithm 2, noise from ``generator``).

    ``x0`` is the state at ``grid[0]``. Each step to s > 0 costs 2 NFE, a final step to
    s = 0 (t = 1 on VP / linear paths) costs 1 and returns the data prediction. Churn options
    as in EDM / k-diffusion: S_churn (total churn, 0 = deterministic), S_tmin / S_tmax (the
    noise levels s where it applies), S_noise (noise inflation). Needs ``field.path``.
    """
    if S_churn < 0 or S_noise < 0 or S_tmin > S_tmax:
        raise ValueError("churn needs S_churn >= 0, S_noise >= 0 and S_tmin <= S_tmax")
    field = _needs_path(as_field(field), "edm_heun")
    x = check_start(x0)
    ts, coefs, levels = noise_levels(field, grid, "edm_heun")
    n = len(ts) - 1
    top = field.coefficients(torch.zeros(1, dtype=torch.float64))
    s_top = float(top.sigma[0] / top.alpha[0])  # the path's largest level (inf: alpha_0 = 0)
    rec = Recorder(x, ts[0], return_trajectory, energy=field.coefficients if S_churn == 0 else None)
    for i in range(n):
        t, c, s = ts[i], coefs[i], levels[i]
        c_next, s_next = coefs[i + 1], levels[i + 1]
        gamma = min(S_churn / n, math.sqrt(2.0) - 1.0) if S_tmin <= s <= S_tmax else 0.0
        s_hat = min(s * (1.0 + gamma), s_top)
        if s_hat > s:  # Algorithm 2, lines 4-5: raise the noise level to s_hat
            t_hat = time_at_log_snr(field.coefficients, torch.tensor([-math.log(s_hat)]), 0.0, t)
            c_hat = _step_coefficients(field, t_hat)[0]
            y = x / c.alpha + math.sqrt(s_hat**2 - s**2) * S_noise * gaussian_noise(x, generator)
            t, c, s, x = float(t_hat[0]), c_hat, c_hat.sigma / c_hat.alpha, c_hat.alpha * y
        _, eps = field.x1_and_epsilon(x, broadcast_time(t, x), c)
        rec.nfe += 1
        x_next = c_next.alpha * (x / c.alpha + (s_next - s) * eps)
        if s_next > 0.0:  # trapezoidal correction (Algorithm 1, lines 6-8)
            _, eps_next = field.x1_and_epsilon(x_next, broadcast_time(ts[i + 1], x), c_next)
            rec.nfe += 1
            x_next = c_next.alpha * (x / c.alpha + (s_next - s) * 0.5 * (eps + eps_next))
        x = x_next
        rec.add(x, ts[i + 1])
    return rec.result(x)
