"""From (run configuration, sampler, NFE budget) to the sampler's time grid and options.

The policy is the sampler's own (:meth:`wasserflow.samplers.SamplerSpec.make_plan`); this module
only supplies what the run's configuration says about its model
(:func:`wasserflow.engine.build.sampling_context`) and the run's default sampler options.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..samplers import SamplerSpec, SamplingPlan, get_sampler
from ..samplers.kinetic import chord_energy
from .build import sampling_context
from .config import RunConfig
from .results import RunSample


def sampling_plan(cfg: RunConfig, sampler: str, nfe: int | None) -> SamplingPlan:
    """The plan for ``sampler`` on the run's path with about ``nfe`` evaluations (the run's
    sampler options apply when ``sampler`` is its default)."""
    opts = cfg.sampler.options if sampler == cfg.sampler.name else {}
    return get_sampler(sampler).make_plan(nfe, sampling_context(cfg), opts)


def check_compatible(cfg: RunConfig, sampler: str) -> None:
    """Refuse a sampler the trained model cannot drive, with the reason."""
    get_sampler(sampler).check(sampling_context(cfg))


@dataclass(frozen=True)
class _Solved:
    x: Tensor
    trajectory: Tensor | None
    nfe: int
    times: Tensor
    energy: Tensor | None
    deviation: Tensor | None = None


def solve_plan(
    spec: SamplerSpec,
    field,
    x0: Tensor,
    plan: SamplingPlan,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> _Solved:
    """Run ``spec`` on ``field`` from ``x0`` (n, *shape) along ``plan`` in the model's space
    and finish with the posterior mean where the plan says so (its jump counted as one NFE and,
    in the kinetic energy, as its chord). Nothing is detached: forward-mode derivatives
    (:func:`torch.func.jvp`) pass through (the noise-to-sample map of a deterministic sampler)."""
    n = x0.shape[0]
    with torch.no_grad():  # an energy model takes its gradient under enable_grad itself
        res = spec(
            field,
            x0,
            plan.grid,
            generator=generator,
            return_trajectory=return_trajectory,
            **plan.options,
        )
        x, traj, used, times, energy = res.x, res.trajectory, res.nfe, res.times, res.energy
        if plan.denoise_at is not None:
            x_end = x
            x = field.x1_and_epsilon(x, torch.full((n,), plan.denoise_at, dtype=x.dtype))[0]
            used += 1
            if energy is not None:
                energy = energy + chord_energy(x_end, x, plan.denoise_at, 1.0).cpu()
            times = torch.cat([times, torch.ones(1, dtype=times.dtype)])
            if traj is not None:
                traj = torch.cat([traj, x[None]])
    return _Solved(x, traj, used, times, energy, res.deviation)


def run_plan(
    spec: SamplerSpec,
    field,
    x0: Tensor,
    plan: SamplingPlan,
    *,
    generator: torch.Generator | None,
    return_trajectory: bool,
    scaler=None,
) -> RunSample:
    """:func:`solve_plan`, its samples and frames detached and mapped through
    ``scaler.inverse`` when given (data space). The one sampling path of trained runs and of
    models trained elsewhere."""
    out = solve_plan(
        spec, field, x0, plan, generator=generator, return_trajectory=return_trajectory
    )
    x, traj = out.x, out.trajectory
    if scaler is not None:
        shape = tuple(x0.shape[1:])
        x = scaler.inverse(x)
        if traj is not None:
            traj = scaler.inverse(traj.reshape(-1, *shape)).reshape(traj.shape)
    return RunSample(
        x=x.detach(),
        start=x0,
        nfe=out.nfe,
        trajectory=None if traj is None else traj.detach(),
        times=out.times if traj is not None else None,
        sampler=spec.name,
        energy=out.energy,
        deviation=out.deviation,
    )
