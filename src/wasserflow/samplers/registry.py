"""Samplers registered by name: each declares its order, its cost per step and its grid policy.

A sampler is a stateless function ``fn(field, x0, grid, *, generator=None,
return_trajectory=False, **opts) -> SampleResult``, registered in its own module::

    @register("euler", order=1, nfe_per_step=1)
    def euler(field, x0, grid, *, generator=None, return_trajectory=False): ...

The registry entry (:class:`SamplerSpec`) is all the engine knows of a sampler: whether it
needs the path's schedule or the score (then it is refused for couplings whose marginal score
is not the conversion of docs/design.md section 2), and how a budget of network evaluations becomes
a :class:`SamplingPlan` (a grid and options) for a model described by a
:class:`SamplingContext`. The default policy, :func:`uniform_plan`, takes
``budget // nfe_per_step`` uniform steps up to the context's ``t_end``; samplers with a grid of
their own (diffusers' timesteps, log-SNR or Karras spacings, noise levels) pass ``plan=``.
Adding a sampler is one module with ``@register``, one import in ``samplers/__init__.py`` and
its test; no caller branches on a sampler's name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from wasserflow.paths.affine import AffinePath

from .grids import uniform_grid
from .result import SampleResult

DEFAULT_NFE = 100
"""The budget of a sampler call that names none (adaptive samplers ignore budgets)."""


@dataclass(frozen=True)
class SamplingContext:
    """What a grid policy may know of the model a sampler will drive (from the run's config).

    Attributes:
        path: the model's affine path (None: a plain velocity field on [0, 1]).
        t_end: where samplers stop that evaluate the field at their last grid time (VP paths
            trained on t <= 1 - 1e-3: the score is singular at sigma = 0); the engine finishes
            such samples with one posterior-mean evaluation (:attr:`SamplingPlan.denoise_at`).
        t_last_trained: the largest time the model was trained at (DDPM: 1 - 1 / T).
        num_train_timesteps: T of a discrete DDPM schedule (diffusers' integer timesteps).
        levels: the number of noise levels of a model trained on discrete levels (NCSN).
        model_steps: a model's own fixed grid (the JKO flow's block times), else None.
        score_valid: whether the score and (x1, eps) conversions hold: a Gaussian reference
            independent of the data (not OT / entropic couplings, bridges or reflow pairs).
        energy: whether the model is a scalar potential (Energy Matching).
        flow_map: whether the model is a flow map X(x, t, s) (:mod:`.flowmap`: it jumps from
            any time to any later one), which the flow-map sampler needs.
        velocity: whether the model has an instantaneous velocity v(x, t) (a flow map trained
            only on jumps has none: the ODE samplers are refused).
        description: how to name the model in error messages (its method).
        distilled_guidance: the guidance scale a distilled model's teacher sampled with, so
            that its jumps follow the guided teacher (sampling guidance on top is refused),
            or None.
    """

    path: AffinePath | None = None
    t_end: float = 1.0
    t_last_trained: float = 1.0
    num_train_timesteps: int | None = None
    levels: int | None = None
    model_steps: Tensor | None = None
    score_valid: bool = True
    energy: bool = False
    flow_map: bool = False
    velocity: bool = True
    description: str = "this model"
    distilled_guidance: float | None = None


@dataclass(frozen=True)
class SamplingPlan:
    """The grid and options of one sampler call, and where to finish with the posterior mean.

    ``denoise_at``: paths whose training times stop short of t = 1 (VP: sigma -> 0 makes the
    epsilon-to-velocity conversion blow up as sigma' ~ 1 / sqrt(1 - t)) are integrated up to
    that time and finished with one evaluation of E[x1 | x_t] (Tweedie), as score-SDE does.
    """

    grid: Tensor
    options: dict[str, Any] = field(default_factory=dict)
    denoise_at: float | None = None


GridPolicy = Callable[
    ["SamplerSpec", "int | None", SamplingContext, dict[str, Any]], tuple[Tensor, dict[str, Any]]
]
"""(spec, nfe, context, options) -> (grid, options): a budget of NFE (None: the sampler's
default, :data:`DEFAULT_NFE` unless it has its own) as a grid and the sampler's options."""


def budget(nfe: int | None) -> int:
    """The budget ``nfe`` stands for (:data:`DEFAULT_NFE` when None)."""
    return DEFAULT_NFE if nfe is None else int(nfe)


def uniform_plan(
    spec: SamplerSpec, nfe: int | None, ctx: SamplingContext, options: dict[str, Any]
) -> tuple[Tensor, dict[str, Any]]:
    """``nfe // nfe_per_step`` steps (at least one), uniform in t from 0 to ``t_end``."""
    steps = max(1, budget(nfe) // (spec.nfe_per_step or 1))
    return uniform_grid(steps, 0.0, ctx.t_end), options


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler ``fn(field, x0, grid, *, generator=None, return_trajectory=False,
    **opts)``; the spec is callable and forwards to it.

    Attributes:
        name: registry key.
        fn: the sampler function.
        order: global order of accuracy in the step size (weak order for SDE schemes; None for
            Langevin-type samplers, whose error is a bias in the step size).
        stochastic: whether it draws noise from ``generator``.
        needs_path: whether the field must carry its path (schedule conversions).
        needs_score: whether it evaluates the score (or the (x1, eps) split).
        nfe_per_step: field evaluations per grid step (None: adaptive or option-dependent).
        adaptive: whether it chooses its own steps (then the NFE budget is ignored).
        needs_energy: whether the field must be -grad E of a scalar potential.
        needs_model_steps: whether it follows a model's own fixed steps (the JKO flow).
        needs_flow_map: whether it drives a flow map's jumps (:attr:`SamplingContext.flow_map`).
        plan: its grid policy (:data:`GridPolicy`).
        about: what it does, in a few words (for messages).
    """

    name: str
    fn: Callable[..., SampleResult]
    order: float | None
    stochastic: bool = False
    needs_path: bool = False
    needs_score: bool = False
    nfe_per_step: int | None = 1
    adaptive: bool = False
    needs_energy: bool = False
    needs_model_steps: bool = False
    needs_flow_map: bool = False
    plan: GridPolicy = uniform_plan
    about: str = ""

    def __call__(self, field, x0, grid, **options) -> SampleResult:
        return self.fn(field, x0, grid, **options)

    def check(self, ctx: SamplingContext) -> None:
        """Refuse a model this sampler cannot drive, naming the reason and the alternatives."""
        what = ctx.description
        if self.needs_model_steps != (ctx.model_steps is not None):
            if self.needs_model_steps:
                raise ValueError(
                    f"sampler {self.name} follows a model's own blocks, which "
                    f"{what} does not have: use an ODE sampler ({ode_names()})"
                )
            own = [s for s in SAMPLERS.values() if s.needs_model_steps]
            raise ValueError(
                f"{what} samples with its own steps, by "
                + " or ".join(f"{s.about} (sampler {s.name!r})" for s in own)
                + f", not {self.name!r}"
            )
        self._check_flow_map(ctx)
        if self.needs_energy and not ctx.energy:
            raise ValueError(
                f"sampler {self.name} needs an energy model; {what} trains a "
                f"vector field: use {ode_names()}"
            )
        if (self.needs_score or self.needs_path) and not ctx.score_valid:
            alt = ode_names() + (" or energy_langevin" if ctx.energy else "")
            raise ValueError(
                f"sampler {self.name} needs the score of a Gaussian path with "
                f"independent coupling, which {what} does not learn: use an ODE "
                f"sampler ({alt})"
            )

    def _check_flow_map(self, ctx: SamplingContext) -> None:
        """A flow-map sampler needs a flow map; a model without a velocity needs one."""
        what = ctx.description
        jumps = [s.name for s in SAMPLERS.values() if s.needs_flow_map]
        if self.needs_flow_map and not ctx.flow_map:
            raise ValueError(
                f"sampler {self.name} jumps along a flow map X(x, t, s), which {what} does not "
                f"learn: use {ode_names()}"
            )
        if not self.needs_flow_map and not ctx.velocity:
            raise ValueError(
                f"{what} learns the jumps of a flow map, not a velocity: sample it with "
                f"{' or '.join(jumps)}, not {self.name}"
            )

    def supports(self, ctx: SamplingContext) -> bool:
        """Whether this sampler can drive the model ``ctx`` describes (:meth:`check` passes)."""
        try:
            self.check(ctx)
        except ValueError:
            return False
        return True

    def make_plan(
        self, nfe: int | None, ctx: SamplingContext, options: Mapping[str, Any] | None = None
    ) -> SamplingPlan:
        """The plan for about ``nfe`` evaluations (None: :data:`DEFAULT_NFE`) on ``ctx``."""
        if nfe is not None and (isinstance(nfe, bool) or int(nfe) != nfe or nfe < 1):
            raise ValueError(f"nfe must be a positive integer, got {nfe!r}")
        self.check(ctx)
        if self.needs_model_steps:
            steps = int(ctx.model_steps.shape[0]) - 1
            if nfe is not None and nfe != steps:
                raise ValueError(
                    f"{ctx.description} has {steps} blocks, so it takes exactly "
                    f"{steps} steps: pass nfe={steps} or none"
                )
        grid, opts = self.plan(self, None if nfe is None else int(nfe), ctx, dict(options or {}))
        unknown = sorted(set(opts) - set(self.options()))
        if unknown:
            raise ValueError(
                f"sampler {self.name} has no option {', '.join(unknown)}: its "
                f"options are {', '.join(self.options()) or 'none'}"
            )
        end = float(grid.reshape(-1)[-1])
        return SamplingPlan(grid, opts, end if end < 1.0 and ctx.t_end < 1.0 else None)

    def options(self) -> dict[str, Any]:
        """The sampler's keyword options with their defaults (from its signature)."""
        sig = inspect.signature(self.fn).parameters
        return {
            k: p.default
            for k, p in sig.items()
            if p.kind is p.KEYWORD_ONLY and k not in ("generator", "return_trajectory")
        }

    def option(self, options: Mapping[str, Any], name: str) -> Any:
        """``options[name]``, or the sampler's own default for it."""
        return options[name] if name in options else self.options()[name]

    def budgets(self, nfes: list[int | None], ctx: SamplingContext) -> list[int | None]:
        """The budgets of ``nfes`` this sampler can honour on ``ctx``: a model with fixed steps
        has one; an adaptive sampler has one (None)."""
        if self.needs_model_steps and ctx.model_steps is not None:
            return [int(ctx.model_steps.shape[0]) - 1]
        if self.adaptive:
            return [None]
        return list(nfes)


SAMPLERS: dict[str, SamplerSpec] = {}


def register(
    name: str, *, order: float | None, **flags: Any
) -> Callable[[Callable[..., SampleResult]], Callable[..., SampleResult]]:
    """Decorator: register ``fn`` as sampler ``name`` (flags: the :class:`SamplerSpec` fields)."""

    def deco(fn: Callable[..., SampleResult]) -> Callable[..., SampleResult]:
        if name in SAMPLERS:
            raise ValueError(f"sampler {name!r} is registered twice")
        SAMPLERS[name] = SamplerSpec(name=name, fn=fn, order=order, **flags)
        return fn

    return deco


def get_sampler(name: str) -> SamplerSpec:
    """The registered sampler ``name`` (see :data:`SAMPLERS`)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(sorted(SAMPLERS))}")
    return SAMPLERS[name]


def ode_names() -> str:
    """The deterministic field samplers that need no score, for messages."""
    return ", ".join(
        n
        for n, s in SAMPLERS.items()
        if not (
            s.stochastic
            or s.needs_score
            or s.needs_path
            or s.needs_energy
            or s.needs_model_steps
            or s.needs_flow_map
        )
    )


def adaptive_sampler() -> str:
    """The registered adaptive ODE sampler (what ``--nfe adaptive`` means)."""
    return next(n for n, s in SAMPLERS.items() if s.adaptive)
