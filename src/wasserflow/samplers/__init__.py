"""wasserflow.samplers: stateless integrators over explicit time grids (docs/design.md sections 2, 4).

Clock: t in [0, 1], t = 0 the reference (noise), t = 1 the data; generation integrates upward.
Every sampler discretises dx = [v_t(x) + g_t^2 / 2 grad log p_t(x)] dt + g_t dW for some
g_t >= 0 (g = 0: the probability-flow ODE) and its docstring says which discretisation it is.

One signature (stable API)::

    sample(field, x0, grid, *, generator=None, return_trajectory=False, **opts) -> SampleResult

* ``field``: a :class:`Field` ``Field(fn, prediction="velocity"|"epsilon"|"x1"|"score"|"v_prediction",
  path=None, score_fn=None)`` or a plain callable v(x, t) (t a (n,) tensor). Stochastic and
  diffusion samplers need ``path`` (and convert eps/x1/score/velocity through it);
  ``Field.from_oracle(MixtureOracle)`` gives the exact field; ``energy_field(E)`` gives
  -grad E for Energy Matching.
* ``x0``: (n, ...) start points at the grid's first time (e.g. ``path.sample_reference``).
* ``grid``: (K + 1,) increasing times in [0, 1] (ODE samplers also accept decreasing ones), or
  (K, 2) explicit (t_from, t_to) steps (:func:`diffusers_steps`).
* ``SampleResult(x, nfe, trajectory, times)``: final samples, number of field evaluations,
  (F, n, ...) frames when ``return_trajectory`` (for geometry.trajectory_geometry), times (F,).

Samplers (``SAMPLERS[name]`` / ``get_sampler(name)`` -> :class:`SamplerSpec` with ``order``,
``stochastic``, ``needs_path``, ``needs_score``, ``nfe_per_step`` and its grid policy
``spec.make_plan(nfe, SamplingContext(...), options) -> SamplingPlan``; callable; each module
registers its samplers with ``@register(name, order=..., plan=...)``, :mod:`.registry`):
``euler``, ``midpoint``, ``heun``, ``rk4``, ``dopri5(atol, rtol)``, ``ddim(eta)``, ``ddpm``,
``dpm_solver(lower_order_final, order)`` (DPM-Solver++(2M), order 2, 1 NFE per step;
``dpm_solver_3m`` its third-order multistep variant), ``unipc(order, lower_order_final,
corrector)`` (UniPC bh2, 1 NFE per step), ``edm_heun(S_churn, S_tmin, S_tmax, S_noise)``
(EDM's Heun on Karras levels, 2N - 1 NFE), ``ipndm(order, variable_step)`` (Adams-Bashforth
in EDM's variables, 1 NFE per step),
``euler_maruyama(diffusion, denoise)``, ``predictor_corrector(diffusion, snr, n_corrector,
denoise)``, ``annealed_langevin(n_steps_each, step_lr, denoise)``, ``energy_langevin(
n_langevin, step_size, temperature)``, ``jko`` (a JKO flow's blocks inverted; the model's own
grid), ``flowmap(deviation)`` (a flow map's jumps X(x, t, s) composed on the grid,
:class:`FlowMapField`; :func:`average_velocity_deviation`). Single steps: ``ddpm_step``, ``ddim_step``,
``posterior_coefficients``, ``langevin_step``; ``natural_diffusion_squared(field, t)``.

Guidance (:mod:`.guidance`): ``guided_field(labelled, labels, null, Guidance(scale, interval,
batched, space), counter)`` is the Field of a class-conditional model guided at scale s
(s = 1 off, ``Guidance.from_w(w)`` for w = s - 1); every sampler drives it unchanged, and a
``PassCounter`` records the network passes beside the sampler's NFE. A flow map is guided in
its average velocity at each jump (``GuidedFn`` on u(x, t, s)).

Grids (pure functions): ``uniform_grid(n_steps, start=0, end=1)``,
``diffusers_timesteps(n, num_train_timesteps=1000, spacing, steps_offset=0)``,
``diffusers_steps(n, *, scheduler="ddim"|"ddpm", num_train_timesteps=1000, spacing="leading",
set_alpha_to_one=True, steps_offset=0)``, ``solver_grid(n, schedule, spacing="time"|"logsnr",
start=0, stop=1, end=1, final_step=1)`` (K evaluation times toward ``stop``, then ``end``, for
dpm_solver), ``karras_grid(n, schedule, rho=7, sigma_min, sigma_max, stop=1)`` (Karras
noise levels, then t = 1, for edm_heun and ipndm), ``time_at_log_snr(schedule, lam, lo, hi)``.
"""

from .ancestral import ddim, ddim_step, ddpm, ddpm_step, posterior_coefficients
from .dpm_solver import dpm_solver, dpm_solver_3m
from .edm import edm_heun
from .energy import energy_field, energy_langevin
from .field import Field, as_field
from .flowmap import AverageNetworkFn, FlowMapField, average_velocity_deviation, flowmap
from .grids import (
    SOLVER_SPACINGS,
    SPACINGS,
    diffusers_steps,
    diffusers_timesteps,
    karras_grid,
    solver_grid,
    time_at_log_snr,
    uniform_grid,
)
from .guidance import (
    Guidance,
    PassCounter,
    as_guidance,
    counted_field,
    guided_field,
    oracle_labelled,
)
from .ipndm import ipndm
from .jko import jko
from .ode import dopri5, euler, heun, midpoint, rk4
from .registry import (
    DEFAULT_NFE,
    SAMPLERS,
    SamplerSpec,
    SamplingContext,
    SamplingPlan,
    adaptive_sampler,
    get_sampler,
    register,
)
from .result import SampleResult, grid_steps
from .sde import (
    annealed_langevin,
    euler_maruyama,
    langevin_step,
    natural_diffusion_squared,
    predictor_corrector,
)
from .unipc import unipc

__all__ = [
    "AverageNetworkFn",
    "FlowMapField",
    "average_velocity_deviation",
    "flowmap",
    "DEFAULT_NFE",
    "SAMPLERS",
    "SamplingContext",
    "SamplingPlan",
    "adaptive_sampler",
    "jko",
    "register",
    "SOLVER_SPACINGS",
    "SPACINGS",
    "Field",
    "Guidance",
    "PassCounter",
    "as_guidance",
    "counted_field",
    "guided_field",
    "oracle_labelled",
    "SampleResult",
    "SamplerSpec",
    "annealed_langevin",
    "as_field",
    "ddim",
    "ddim_step",
    "ddpm",
    "ddpm_step",
    "diffusers_steps",
    "diffusers_timesteps",
    "dopri5",
    "dpm_solver",
    "dpm_solver_3m",
    "energy_field",
    "energy_langevin",
    "euler",
    "euler_maruyama",
    "get_sampler",
    "grid_steps",
    "heun",
    "langevin_step",
    "midpoint",
    "natural_diffusion_squared",
    "posterior_coefficients",
    "predictor_corrector",
    "rk4",
    "solver_grid",
    "uniform_grid",
    "edm_heun",
    "ipndm",
    "karras_grid",
    "time_at_log_snr",
    "unipc",
]
