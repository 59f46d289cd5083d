"""From (run configuration, sampler, NFE budget) to the sampler's time grid and options.

The policy is the sampler's own (:meth:`wasserflow.samplers.SamplerSpec.make_plan`); this module
only supplies what the run's configuration says about its model
(:func:`wasserflow.engine.build.sampling_context`) and the run's default sampler options.
"""

from __future__ import annotations

from ..samplers import SamplingPlan, get_sampler
from .build import sampling_context
from .config import RunConfig


def sampling_plan(cfg: RunConfig, sampler: str, nfe: int | None) -> SamplingPlan:
    """The plan for ``sampler`` on the run's path with about ``nfe`` evaluations (the run's
    sampler options apply when ``sampler`` is its default)."""
    opts = cfg.sampler.options if sampler == cfg.sampler.name else {}
    return get_sampler(sampler).make_plan(nfe, sampling_context(cfg), opts)


def check_compatible(cfg: RunConfig, sampler: str) -> None:
    """Refuse a sampler the trained model cannot drive, with the reason."""
    get_sampler(sampler).check(sampling_context(cfg))
