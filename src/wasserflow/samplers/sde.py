"""Stochastic samplers built on the score: reverse-SDE Euler-Maruyama, predictor-corrector and
annealed Langevin dynamics.

On the t clock (0 noise -> 1 data) every path's marginals p_t solve, for any g_t >= 0,

    dx = [v_t(x) + g_t^2 / 2 grad log p_t(x)] dt + g_t dW_t,

(Song et al. 2021, eq. 6 written forward in t; g = 0 is the probability-flow ODE). The
"natural" g of an affine path is the diffusion of its forward noising SDE,
g_t^2 = 2 (sigma_t^2 d_alpha_t / alpha_t - sigma_t d_sigma_t) (beta(1 - t) for VP,
d sigma^2 / ds for VE).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from wasserflow.paths.affine import expand_like

from .._time import broadcast_time
from .field import Field, FieldFn, as_field
from .grids import uniform_grid
from .registry import budget, register
from .result import Recorder, SampleResult, check_start, gaussian_noise, grid_steps

Diffusion = float | Callable[[Tensor], Tensor] | None


def natural_diffusion_squared(field: Field, t: Tensor) -> Tensor:
    """g_t^2 = 2 (sigma^2 d_alpha / alpha - sigma d_sigma) for the field's path, shape of t."""
    c = field.coefficients(t)
    g2 = 2.0 * (c.sigma**2 * c.d_alpha / c.alpha - c.sigma * c.d_sigma)
    if not torch.isfinite(g2).all():
        raise ValueError(
            "the natural diffusion g_t is infinite where alpha_t = 0 (t = 0 for "
            "linear/cosine paths): start the grid at t > 0 or pass diffusion=<float>"
        )
    return g2


def _g2(field: Field, diffusion: Diffusion, t: float, x: Tensor) -> Tensor:
    tv = broadcast_time(t, x)
    if diffusion is None:
        return natural_diffusion_squared(field, tv.to(torch.float64)).to(x.dtype)
    if callable(diffusion):
        return torch.as_tensor(diffusion(tv), dtype=x.dtype).expand(x.shape[0]) ** 2
    if not diffusion >= 0:
        raise ValueError(f"diffusion g must be >= 0, got {diffusion}")
    return torch.full_like(tv, float(diffusion) ** 2)


def _em_step(field, x, a, b, diffusion, generator, add_noise: bool) -> Tensor:
    h = b - a
    g2 = _g2(field, diffusion, a, x)
    if bool((g2 == 0).all()):
        return x + h * field.velocity(x, broadcast_time(a, x))
    v, s = field.velocity_and_score(x, broadcast_time(a, x))
    x = x + h * (v + 0.5 * expand_like(g2, x) * s)
    if add_noise:
        x = x + expand_like((g2 * h).sqrt(), x) * gaussian_noise(x, generator)
    return x


@register("euler_maruyama", order=1, stochastic=True, needs_path=True, needs_score=True)
def euler_maruyama(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    diffusion: Diffusion = None,
    denoise: bool = True,
) -> SampleResult:
    """Euler-Maruyama on dx = [v + g^2/2 s] dt + g dW:
    x_{k+1} = x_k + h [v + g^2/2 s](x_k, t_k) + g_{t_k} sqrt(h) z_k.

    ``diffusion``: None (the path's natural g), a constant g, or a callable g(t). With
    ``denoise`` the last step adds no noise (score-SDE's ``denoise``). Strong order 1/2, weak
    order 1; 1 NFE per step.
    """
    field = as_field(field)
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    rec = Recorder(x, float(t_from[0]), return_trajectory)
    K = t_from.shape[0]
    for k, (a, b) in enumerate(zip(t_from.tolist(), t_to.tolist(), strict=True)):
        x = _em_step(field, x, a, b, diffusion, generator, not (denoise and k == K - 1))
        rec.nfe += 1
        rec.add(x, b)
    return rec.result(x)


def langevin_step(
    x: Tensor, score: Tensor, step: Tensor | float, noise: Tensor, temperature: float = 1.0
) -> Tensor:
    """Unadjusted Langevin: x + step s(x) + sqrt(2 step T) z, targeting p^(1/T) with
    s = grad log p (T = 1: p itself; s = -grad E: exp(-E / T)). The one Langevin update of the
    samplers (the corrector, annealed Langevin, energy_langevin)."""
    step = expand_like(step, x) if isinstance(step, Tensor) and step.dim() == 1 else step
    return x + step * score + (2.0 * step * temperature) ** 0.5 * noise


def langevin_corrector(
    field: Field,
    x: Tensor,
    t: float,
    generator: torch.Generator | None,
    *,
    snr: float,
    step: float | None = None,
) -> Tensor:
    """One Langevin corrector step toward p_t (Song et al. 2021, Algorithm 5): x + eps s_t(x)
    + sqrt(2 eps) z, with eps = ``step``, or 2 (snr |z| / |s|)^2 from the batch-mean norms of
    the score s and the noise z. One field evaluation."""
    s = field.score(x, broadcast_time(t, x))
    z = gaussian_noise(x, generator)
    if step is None:
        s_norm = s.reshape(s.shape[0], -1).norm(dim=1).mean()
        z_norm = z.reshape(z.shape[0], -1).norm(dim=1).mean()
        eps = 2.0 * (snr * z_norm / s_norm) ** 2
    else:
        eps = torch.as_tensor(float(step), dtype=x.dtype)
    return langevin_step(x, s, eps, z)


def _pc_plan(spec, nfe, ctx, options):
    """n_corrector + 1 evaluations per step, uniform steps to ``t_end``."""
    per = 1 + int(spec.option(options, "n_corrector"))
    return uniform_grid(max(1, budget(nfe) // per), 0.0, ctx.t_end), options


@register(
    "predictor_corrector",
    order=1,
    stochastic=True,
    needs_path=True,
    needs_score=True,
    nfe_per_step=None,
    plan=_pc_plan,
)
def predictor_corrector(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    diffusion: Diffusion = None,
    snr: float = 0.16,
    n_corrector: int = 1,
    denoise: bool = True,
) -> SampleResult:
    """Predictor-corrector (Song et al. 2021, Algorithms 2-3): at each t_k, ``n_corrector``
    Langevin corrector steps on p_{t_k} with step 2 (snr |z| / |s|)^2 (batch-mean norms), then
    one Euler-Maruyama predictor step of dx = [v + g^2/2 s] dt + g dW to t_{k+1}.
    NFE per grid step: n_corrector + 1."""
    if n_corrector < 0 or snr <= 0:
        raise ValueError("predictor_corrector needs n_corrector >= 0 and snr > 0")
    field = as_field(field)
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    rec = Recorder(x, float(t_from[0]), return_trajectory)
    K = t_from.shape[0]
    for k, (a, b) in enumerate(zip(t_from.tolist(), t_to.tolist(), strict=True)):
        for _ in range(n_corrector):
            x = langevin_corrector(field, x, a, generator, snr=snr)
            rec.nfe += 1
        x = _em_step(field, x, a, b, diffusion, generator, not (denoise and k == K - 1))
        rec.nfe += 1
        rec.add(x, b)
    return rec.result(x)


NCSN_LEVELS = 10  # the ladder of a model not trained on discrete levels


def _levels_plan(spec, nfe, ctx, options):
    """The model's noise levels (or 10) uniform in t; a budget is split evenly over them
    (no budget: 100 Langevin steps per level, NCSN's setting)."""
    levels = ctx.levels or NCSN_LEVELS
    grid = torch.linspace(0.0, 1.0, levels, dtype=torch.float64)
    each = 100 if nfe is None else max(1, (nfe - 1) // levels)
    return grid, {**options, "n_steps_each": each}


@register(
    "annealed_langevin",
    order=None,
    stochastic=True,
    needs_path=True,
    needs_score=True,
    nfe_per_step=None,
    plan=_levels_plan,
)
def annealed_langevin(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    n_steps_each: int = 100,
    step_lr: float = 2e-5,
    denoise: bool = True,
) -> SampleResult:
    """Annealed Langevin dynamics (NCSN, Song & Ermon 2019, Algorithm 1).

    The noise levels are the path's sigma at the grid times t_0 < ... < t_L (all > 0); at each
    level i, ``n_steps_each`` Langevin steps x <- x + a_i/2 s(x, t_i) + sqrt(a_i) z with
    a_i = step_lr sigma_i^2 / sigma_L^2. No predictor: with g -> inf at fixed t it is the
    corrector-only limit of dx = [v + g^2/2 s] dt + g dW. ``denoise`` finishes with the
    posterior mean E[x1 | x] (Tweedie, x + sigma_L^2 s for VE; Song & Ermon 2020) at t_L.
    Frames: the state after each level (times = the grid). NFE = (L + 1) n_steps_each + denoise.
    """
    if n_steps_each < 1 or not step_lr > 0:
        raise ValueError("annealed_langevin needs n_steps_each >= 1 and step_lr > 0")
    field = as_field(field)
    x = check_start(x0)
    g = torch.as_tensor(grid, dtype=torch.float64)
    if g.dim() != 1:
        raise ValueError("annealed_langevin takes a 1-D grid of noise levels")
    grid_steps(g)
    sig = field.coefficients(g).sigma
    if not bool((sig > 0).all()):
        raise ValueError(
            "annealed Langevin needs sigma_t > 0 at every grid time: end the grid "
            "before t = 1 for paths with sigma_1 = 0"
        )
    rec = Recorder(x, float(g[0]), False)
    frames = []
    for i, t in enumerate(g.tolist()):
        a_i = step_lr * float(sig[i] / sig[-1]) ** 2
        for _ in range(n_steps_each):
            s = field.score(x, broadcast_time(t, x))
            x = langevin_step(x, s, 0.5 * a_i, gaussian_noise(x, generator))
            rec.nfe += 1
        if denoise and i == g.shape[0] - 1:
            x, _ = field.x1_and_epsilon(x, broadcast_time(t, x))
            rec.nfe += 1
        if return_trajectory:
            frames.append(x.detach().clone())
    return SampleResult(
        x=x, nfe=rec.nfe, trajectory=torch.stack(frames) if return_trajectory else None, times=g
    )
