"""wasserflow.paths: probability paths between a reference and the data (docs/design.md section 2).

Clock: t in [0, 1], t = 0 the reference (noise), t = 1 the data; conversions to diffusion time
s = 1 - t and DDPM's integer steps k (t_k = 1 - (k + 1) / T) are in :mod:`.clock`.

Public API (stable):

* Schedules (:mod:`.schedules`), frozen dataclasses; ``schedule(t) -> ScheduleOutput(alpha,
  sigma, d_alpha, d_sigma)``: ``LinearSchedule()``, ``VPSchedule(beta_min=0.1,
  beta_max=20.0)``, ``CosineSchedule(offset=0.008)``, ``DDPMDiscreteSchedule(
  num_train_timesteps=1000, kind="linear"|"cosine", beta_start=1e-4, beta_end=0.02)`` and
  ``DDPMDiscreteSchedule.from_alphas_cumprod(table)``, ``VESchedule(sigma_min=0.01,
  sigma_max=50.0)``; ``ve_sigma_max_from_data(x) -> float``; ``ddpm_alphas_cumprod(...)``;
  ``get_schedule(name, **options)`` over ``SCHEDULES``. ``schedule.reference_std``.
* ``AffinePath(schedule, bridge_sigma=0.0, bridge="constant"|"brownian")`` (:mod:`.affine`):
  ``coefficients(t)``, ``interpolate(x0, x1, t)``, ``target_velocity(x0, x1, t)``,
  ``sample(x0, x1, t, *, noise=None, generator=None) -> PathSample(t, x0, x1, xt, ut, noise)``,
  ``sample_reference(shape, generator, *, dtype, device)``, ``reference_std``.
* Parametrisations (:mod:`.parametrization`): ``convert(x, pred, coeffs, source, target)`` over
  ``PREDICTIONS = ("epsilon", "x1", "score", "velocity")``, ``x1_and_epsilon`` and the single
  conversions ``epsilon_to_x1``, ``x1_to_epsilon``, ``epsilon_to_score``, ``score_to_epsilon``,
  ``to_velocity``, ``from_x1_and_epsilon``, ``velocity_to_x1``, ``velocity_to_epsilon``, ``to_v_prediction``,
  ``v_prediction_to_x1_and_epsilon`` (Salimans & Ho's v).
* Couplings (:mod:`.couplings`), each ``(x0, x1, generator=None, ...) -> CoupledBatch(x0, x1,
  index0, index1)``: ``independent_coupling``, ``ot_coupling``, ``entropic_coupling(...,
  reg=None, sigma=None, n_pairs=None)`` (reg = 2 sigma^2), ``reflow_coupling(x0, sampler,
  generator=None)``; ``entropic_plan(x0, x1, reg)``; ``get_coupling(name)`` over ``COUPLINGS``.
* Minibatch-OT pair stream (:mod:`.ot_stream`): ``OTPairStream(sample_data, OTStreamConfig(
  batch_size, ot_batch, reuse=1, prefetch=True), seed=, total_steps=None)``, batches (B, 2, ...)
  of exact-OT pairs from N = ot_batch point problems, the next block solved in a background
  thread; ``ot_pair_block(sample_data, config, seed, block)``.
* Labelled batches (:mod:`.couplings`): ``LabelledBatch(x, y)``; ``within_classes(coupling,
  x0, x1, y, generator)`` (the plan solved class by class) and ``couple_labelled(name, x0,
  batch, generator, per_class=True)`` (pairs carrying their data point's label); the pair
  stream couples labelled data the same way.
* Guidance: ``guide(x, cond, uncond, scale, coeffs, prediction, space)`` (u + s (c - u) in any
  parametrisation; :mod:`.parametrization`).
* Oracles (:mod:`.oracle`): ``MixtureOracle(mixture, path)`` with ``score``, ``velocity``,
  ``epsilon``, ``posterior_x1``, ``log_prob`` (x (n, d), t) and ``marginal(t)``;
  ``gaussian_oracle(mean, cov, path)``; ``ClassOracle(mixture, path)`` (class c = component
  c, the null class K = the mixture: ``velocity(x, t, y)``, ``score(x, t, y)``);
  ``GaussianGeodesicOracle(mean, cov)`` with ``velocity(x, t)``, ``transport(x0, t)`` and
  ``flow_map(x, t, s)``; ``GaussianFlowMap(mean, cov, path)``, the exact flow map of a path's
  ODE between Gaussians (``flow_map``, ``average_velocity``, ``velocity``).
"""

from .affine import TIME_INPUTS, AffinePath, PathSample, broadcast_time, expand_like
from .clock import (
    checked_time,
    ddpm_index_to_time,
    from_diffusion_time,
    time_to_ddpm_index,
    to_diffusion_time,
)
from .couplings import (
    COUPLINGS,
    CoupledBatch,
    LabelledBatch,
    couple_labelled,
    entropic_coupling,
    entropic_plan,
    get_coupling,
    independent_coupling,
    ot_coupling,
    reflow_coupling,
    within_classes,
)
from .oracle import (
    ClassOracle,
    GaussianFlowMap,
    GaussianGeodesicOracle,
    MixtureOracle,
    gaussian_oracle,
)
from .ot_stream import OTPairStream, OTStreamConfig, ot_pair_block
from .parametrization import (
    PREDICTIONS,
    convert,
    epsilon_to_score,
    epsilon_to_x1,
    from_x1_and_epsilon,
    guide,
    score_to_epsilon,
    to_v_prediction,
    to_velocity,
    v_prediction_to_x1_and_epsilon,
    velocity_to_epsilon,
    velocity_to_x1,
    x1_and_epsilon,
    x1_to_epsilon,
)
from .schedules import (
    SCHEDULES,
    CosineSchedule,
    DDPMDiscreteSchedule,
    LinearSchedule,
    Schedule,
    ScheduleOutput,
    VESchedule,
    VPSchedule,
    ddpm_alphas_cumprod,
    get_schedule,
    ve_sigma_max_from_data,
)

__all__ = [
    "COUPLINGS",
    "PREDICTIONS",
    "SCHEDULES",
    "TIME_INPUTS",
    "AffinePath",
    "ClassOracle",
    "CoupledBatch",
    "LabelledBatch",
    "couple_labelled",
    "within_classes",
    "guide",
    "CosineSchedule",
    "DDPMDiscreteSchedule",
    "GaussianGeodesicOracle",
    "LinearSchedule",
    "MixtureOracle",
    "OTPairStream",
    "OTStreamConfig",
    "PathSample",
    "Schedule",
    "ScheduleOutput",
    "VESchedule",
    "VPSchedule",
    "broadcast_time",
    "checked_time",
    "convert",
    "ddpm_alphas_cumprod",
    "ddpm_index_to_time",
    "entropic_coupling",
    "entropic_plan",
    "epsilon_to_score",
    "epsilon_to_x1",
    "expand_like",
    "from_diffusion_time",
    "gaussian_oracle",
    "GaussianFlowMap",
    "get_coupling",
    "get_schedule",
    "independent_coupling",
    "ot_coupling",
    "ot_pair_block",
    "reflow_coupling",
    "score_to_epsilon",
    "time_to_ddpm_index",
    "to_diffusion_time",
    "from_x1_and_epsilon",
    "to_v_prediction",
    "to_velocity",
    "v_prediction_to_x1_and_epsilon",
    "ve_sigma_max_from_data",
    "velocity_to_epsilon",
    "velocity_to_x1",
    "x1_and_epsilon",
    "x1_to_epsilon",
]
