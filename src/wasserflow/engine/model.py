"""One interface for everything that samples and is evaluated: a trained run, a model trained
elsewhere (diffusers, TorchCFM, a callable), sampled by the registered samplers alike.

:class:`GenerativeModel` is the protocol that :func:`~wasserflow.metrics.evaluate_run`, the
command line and the experiments take. It also carries the one implementation of sampling
(PEP 544: a protocol's methods are inherited by the classes that subclass it explicitly):
:class:`~wasserflow.engine.TrainedRun` and :class:`~wasserflow.interop.ExternalModel` subclass
it and supply what a sampler drives (``field()``), what its grid policy may know
(``context()``), the shape of one sample, the reference the noise is drawn from (``path``), the
data scaling and the default sampler with its options; anything else with these members (a
duck-typed model) is a ``GenerativeModel`` too (``isinstance`` checks the members).

A class-conditional model (``num_classes`` K, not None) also supplies ``labelled_field(y)``,
itself for a batch whose rows carry the classes y (K: the null class, the unconditional
model); ``sample(n, labels=..., guidance=...)`` then samples those classes with
classifier-free guidance in the field (:mod:`wasserflow.samplers.guidance`), whatever the
sampler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ..data import Standardizer
from ..models import class_labels
from ..paths import AffinePath
from ..samplers import (
    Field,
    Guidance,
    PassCounter,
    SamplerSpec,
    SamplingContext,
    SamplingPlan,
    as_guidance,
    counted_field,
    get_sampler,
    guided_field,
)
from .results import RunSample
from .sampling import run_plan, solve_plan


@runtime_checkable
class GenerativeModel(Protocol):
    """A model that samples: a trained run or a model trained elsewhere.

    A class that subclasses it explicitly supplies ``context()``, ``field()``, ``shape``,
    ``path``, ``scaler``, ``default_sampler`` and the attributes below, and inherits the one
    implementation of sampling (``sample``, ``supports``, ``budgets``).

    Attributes:
        method: a short name of the model (its method, or where it comes from).
        shape: the shape of one sample.
        path: the affine path whose reference N(0, std^2 I) the noise is drawn from (None:
            std 1).
        scaler: maps data space to the model's space.
        default_sampler: the sampler used when none is named (with ``default_options``).
        data_spec: the data its samples are compared with
            (:func:`wasserflow.data.make_source`), or None when none is known.
    """

    method: str
    shape: tuple[int, ...]
    path: AffinePath | None
    scaler: Standardizer
    default_sampler: str
    data_spec: str | None

    @property
    def default_options(self) -> Mapping[str, Any]:
        """The options of the default sampler."""
        return {}

    @property
    def ode_sampler(self) -> str:
        """The deterministic sampler to measure path geometry with (Euler on the
        probability-flow ODE)."""
        return "euler"

    def context(self) -> SamplingContext:
        """What a sampler's grid policy may know of the model."""
        ...

    def field(self) -> Field | Any:
        """What a sampler drives: a :class:`~wasserflow.samplers.Field` on the t clock, or a
        model a registered sampler runs itself."""
        ...

    @property
    def num_classes(self) -> int | None:
        """K for a class-conditional model (labels in [0, K), K the null class), else None."""
        return None

    def velocity_network(self) -> nn.Module | None:
        """The network that computes the velocity as ``net(x, t)`` on the t clock (the weights a
        distilled flow map may start from), or None where the model has none."""
        return None

    def labelled_field(self, labels: Tensor | int) -> Field:
        """The model as a Field for batches whose rows carry ``labels`` (K: no class)."""
        raise ValueError(f"{self.method} is not class-conditional: it samples without labels")

    def supports(self, sampler: str) -> bool:
        """Whether ``sampler`` can drive this model (:meth:`SamplerSpec.check`)."""
        return get_sampler(sampler).supports(self.context())

    def budgets(self, nfes: list[int | None], sampler: str | None = None) -> list[int | None]:
        """The NFE budgets of ``nfes`` that ``sampler`` (default: the model's) can take here."""
        return get_sampler(sampler or self.default_sampler).budgets(nfes, self.context())

    def sample(
        self,
        n: int,
        *,
        sampler: str | None = None,
        nfe: int | None = None,
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
        data_space: bool = True,
        options: dict | None = None,
        grid: Tensor | None = None,
        x0: Tensor | None = None,
        labels: Tensor | int | None = None,
        guidance: Guidance | float | None = None,
    ) -> RunSample:
        """n samples with ``sampler`` (default: the model's, with its options) at about ``nfe``
        evaluations, in data space unless ``data_space`` is False.

        ``grid`` replaces the sampler's own grid policy (then ``nfe`` must be None; e.g. a
        diffusers scheduler's, :func:`~wasserflow.interop.scheduler_grid`); ``x0`` (n, *shape)
        replaces the reference draw (float64 from ``generator``) as start points.
        ``labels`` (a class-conditional model): the class of every sample (one int) or of each
        (n,); ``guidance`` a :class:`~wasserflow.samplers.Guidance` or a scale s (s = 1 or
        None: the conditional model). The result counts the network passes beside the NFE.
        """
        spec, plan = self._plan(sampler, nfe, options, grid)
        counter = PassCounter()
        field, y = _sampling_field(self, n, labels, guidance, counter)
        res = run_plan(
            spec,
            field,
            _start(self, n, generator, x0),
            plan,
            generator=generator,
            return_trajectory=return_trajectory,
            scaler=self.scaler if data_space else None,
        )
        if isinstance(field, Field) and counter.passes:  # None where none were counted
            res.passes, res.rows = counter.passes, counter.rows
        res.labels = y
        return res

    def transport(
        self,
        x0: Tensor,
        *,
        sampler: str | None = None,
        nfe: int | None = None,
        options: dict | None = None,
    ) -> Tensor:
        """The samples of ``sampler`` from the start points ``x0`` in the model's space, as a
        function of ``x0`` that forward-mode derivatives pass through (nothing detached): with
        a deterministic sampler, the noise-to-sample map whose Jacobian
        :func:`~wasserflow.metrics.jacobian_symmetry` tests."""
        spec, plan = self._plan(sampler, nfe, options, None)
        return solve_plan(spec, self.field(), _start(self, x0.shape[0], None, x0), plan).x

    def _plan(
        self, sampler: str | None, nfe: int | None, options: dict | None, grid: Tensor | None
    ) -> tuple[SamplerSpec, SamplingPlan]:
        name = sampler or self.default_sampler
        spec = get_sampler(name)
        opts = dict(self.default_options) if name == self.default_sampler else {}
        opts.update(options or {})
        if grid is None:
            return spec, spec.make_plan(nfe, self.context(), opts)
        if nfe is not None:
            raise ValueError("pass nfe or grid, not both: a grid fixes the steps")
        return spec, _grid_plan(spec, self.context(), opts, grid)


def _sampling_field(
    model: GenerativeModel,
    n: int,
    labels: Tensor | int | None,
    guidance: Guidance | float | None,
    counter: PassCounter,
) -> tuple[Field | Any, Tensor | None]:
    """What the sampler drives for n samples of ``labels`` with ``guidance`` (the model's own
    field without labels), its network passes counted, and the labels (n,) or None."""
    g = as_guidance(guidance)
    if labels is None:
        if g.enabled:
            raise ValueError(
                f"guidance (scale {g.scale:g}) needs the classes to guide toward: pass labels "
                "(--class)"
            )
        f = model.field()
        return (counted_field(f, counter) if isinstance(f, Field) else f), None
    k = model.num_classes
    if k is None:
        raise ValueError(
            f"{model.method} is not class-conditional: sample it without labels (or train it "
            "with --conditional)"
        )
    baked = model.context().distilled_guidance
    if g.enabled and baked is not None:
        raise ValueError(
            f"{model.method} learned its teacher guided at s = {baked:g} (the guidance is in "
            "its jumps): sample it without guidance"
        )
    y = class_labels(labels, k, n)
    return guided_field(model.labelled_field, y, k, g, counter), y


def _start(
    model: GenerativeModel, n: int, generator: torch.Generator | None, x0: Tensor | None
) -> Tensor:
    """The start points: ``x0`` (checked), or n draws of the reference N(0, std^2 I)."""
    if x0 is None:
        std = 1.0 if model.path is None else model.path.reference_std
        return std * torch.randn((n, *model.shape), generator=generator, dtype=torch.float64)
    if tuple(x0.shape) != (n, *model.shape):
        raise ValueError(
            f"x0 has shape {list(x0.shape)}; this model starts from {[n, *model.shape]}"
        )
    return x0.to(torch.float64)


def _grid_plan(
    spec: SamplerSpec, ctx: SamplingContext, opts: dict[str, Any], grid: Tensor
) -> SamplingPlan:
    """A plan on a given grid, the sampler's checks and options checked as its policy would."""
    spec.check(ctx)
    unknown = sorted(set(opts) - set(spec.options()))
    if unknown:
        raise ValueError(
            f"sampler {spec.name} has no option {', '.join(unknown)}: its options are "
            f"{', '.join(spec.options()) or 'none'}"
        )
    return SamplingPlan(torch.as_tensor(grid, dtype=torch.float64), opts, None)
