"""A model trained elsewhere, sampled and evaluated like a wasserflow run.

:class:`ExternalModel` is a model without training: a :class:`~wasserflow.samplers.Field` on
wasserflow's clock (t = 0 noise, t = 1 data), the :class:`~wasserflow.samplers.SamplingContext`
the samplers' grid policies read, the shape of one sample and, for evaluation, the data spec it
should be compared with (``data_spec``). It is a :class:`~wasserflow.engine.GenerativeModel`
and samples through that protocol's one implementation, as a
:class:`~wasserflow.engine.TrainedRun` does (the noise drawn in float64 from the generator, the
posterior-mean finish, the kinetic energy of the solved path), so every registered sampler and
:func:`~wasserflow.metrics.evaluate_run` work on it; ``sample`` also takes an explicit ``grid``
(e.g. a diffusers scheduler's, :func:`~wasserflow.interop.scheduler_grid`) and start points
``x0``.

:func:`from_callable` wraps any ``fn(x, t) -> prediction`` with a declared parametrisation
(epsilon, x1, score, velocity, v_prediction) and path; with ``num_classes`` it is a
class-conditional model called in flow_matching's style, ``fn(x, t, extra={"label": y})``, and
``fn(x, t, extra={})`` for the unconditional model (flow_matching's UNet fills in its own null
label, ``num_classes``, when ``extra`` has none); ``null_label`` passes an explicit null label
instead, so labelled and null rows share one call (:class:`ExtraLabelFn`). Without it a
batched guided evaluation calls ``fn`` twice (labelled rows, then null rows) while the pass
counter counts one pass. :func:`~wasserflow.interop.from_diffusers` and
:func:`~wasserflow.interop.from_torchcfm` build the field of a diffusers or TorchCFM model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..data import Standardizer, make_source, reshape_hint
from ..engine import GenerativeModel
from ..errors import InputError
from ..models import class_labels
from ..paths import AffinePath, DDPMDiscreteSchedule, Schedule, get_schedule
from ..samplers import Field, SamplingContext, get_sampler


class ExternalModel(GenerativeModel):
    """A field trained elsewhere, with what sampling and evaluation need (module doc).

    Args:
        field: the model as a :class:`Field` on wasserflow's clock.
        context: what the samplers' grid policies may know of it.
        shape: the shape of one sample (the field maps (n, *shape) to (n, *shape)).
        method: a short name (diffusers, torchcfm, callable), used in tables.
        description: one line saying what the model is.
        default_sampler: the sampler used when none is named, with ``default_options``.
        data: a data spec to evaluate against (checked to have ``shape``), or None.
        scaler: maps data space to the model's space (identity by default).
        model: the underlying network, if any (for the caller; sampling goes through ``field``).
        labelled: a class-conditional model's labelled field, labels (n,) or one int -> the
            Field of rows carrying them (``num_classes`` K: the null class, whose field
            ``field`` should be); None: unconditional.
        num_classes: K of a class-conditional model.
        velocity_network: the network when it computes the velocity as ``net(x, t)`` on
            wasserflow's clock (a registered backbone's weights trained elsewhere: a distilled
            student may start from them), else None.
    """

    def __init__(
        self,
        field: Field,
        context: SamplingContext,
        shape: tuple[int, ...],
        *,
        method: str,
        description: str,
        default_sampler: str = "euler",
        default_options: Mapping[str, Any] | None = None,
        data: str | None = None,
        scaler: Standardizer | None = None,
        model: Any = None,
        labelled: Callable[[Tensor | int], Field] | None = None,
        num_classes: int | None = None,
        velocity_network: nn.Module | None = None,
    ):
        if not isinstance(field, Field):
            raise ValueError("field must be a wasserflow.samplers.Field")
        if (labelled is None) != (num_classes is None):
            raise ValueError("a class-conditional model needs both labelled and num_classes")
        self._labelled, self._num_classes = labelled, num_classes
        self._field = field
        self._context = context
        self.shape = tuple(int(s) for s in shape)
        self.method = method
        self.description = description
        self.default_sampler = default_sampler
        self._default_options = dict(default_options or {})
        self.scaler = scaler or Standardizer.identity()
        self.model = model
        self._velocity_network = velocity_network
        self.path = field.path
        get_sampler(default_sampler).make_plan(1, context, self._default_options)
        if data is not None:
            _check_data(data, self.shape)
        self.data_spec = data

    def __repr__(self) -> str:
        return f"ExternalModel({self.description}, shape={list(self.shape)})"

    @property
    def default_options(self) -> Mapping[str, Any]:
        return self._default_options

    def with_data(self, spec: str) -> ExternalModel:
        """The same model evaluated against the data ``spec`` (its shape must be the model's)."""
        _check_data(spec, self.shape)
        out = copy.copy(self)
        out.data_spec = spec
        return out

    def context(self) -> SamplingContext:
        return self._context

    def field(self) -> Field:
        """What a sampler drives: the model as a Field on the t clock."""
        return self._field

    def velocity_network(self) -> nn.Module | None:
        return self._velocity_network

    @property
    def num_classes(self) -> int | None:
        return self._num_classes

    def labelled_field(self, labels: Tensor | int) -> Field:
        """The Field of rows carrying ``labels`` (a class-conditional model)."""
        if self._labelled is None:
            return super().labelled_field(labels)
        return self._labelled(labels)


class ExtraLabelFn:
    """``fn(x, t, extra={"label": y})`` on the rows of the wasserflow labels ``labels`` (n,) or
    one int; the null class K's rows are called with ``extra={}`` (or with
    ``{"label": null_label}`` in the same call when ``null_label`` is given; module doc)."""

    def __init__(
        self, fn: Callable, labels: Tensor | int, num_classes: int, null_label: int | None
    ):
        self.fn, self.labels, self.k, self.null_label = fn, labels, num_classes, null_label

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        y = class_labels(self.labels, self.k, x.shape[0]).to(x.device)
        null = y == self.k
        if self.null_label is not None:
            y = torch.where(null, torch.full_like(y, self.null_label), y)
            return self.fn(x, t, extra={"label": y})
        if not bool(null.any()):
            return self.fn(x, t, extra={"label": y})
        if bool(null.all()):
            return self.fn(x, t, extra={})
        out = torch.empty_like(x)
        out[~null] = self.fn(x[~null], t[~null], extra={"label": y[~null]})
        out[null] = self.fn(x[null], t[null], extra={})
        return out


def _check_data(spec: str, shape: tuple[int, ...]) -> None:
    got = tuple(make_source(spec).shape)
    if got != tuple(shape):
        fix = reshape_hint(spec, shape)
        if not fix and math.prod(got) == math.prod(shape):
            fix = f"write the points as an array of shape (N, {', '.join(map(str, shape))})"
            fix += " and give array:FILE" if len(shape) == 3 else ""
        raise InputError(
            f"data {spec!r} has samples of shape {list(got)} but the model generates "
            f"{list(shape)}: {fix or 'give data of the model shape'}"
        )


def as_path(path: AffinePath | Schedule | str | Mapping[str, Any]) -> AffinePath:
    """An affine path from a path, a schedule, a schedule name ("linear", "vp", "cosine",
    "ddpm", "ve") or a mapping {"name": ..., **options}."""
    if isinstance(path, AffinePath):
        return path
    if isinstance(path, Schedule):
        return AffinePath(path)
    if isinstance(path, str):
        return AffinePath(get_schedule(path))
    if isinstance(path, Mapping) and "name" in path:
        opts = {k: v for k, v in path.items() if k != "name"}
        return AffinePath(get_schedule(path["name"], **opts))
    raise ValueError(
        "path must be an AffinePath, a Schedule, a schedule name or {'name': ..., **options}"
    )


def from_callable(
    fn: Callable[[Tensor, Tensor], Tensor],
    prediction: str = "velocity",
    path: AffinePath | Schedule | str | Mapping[str, Any] = "linear",
    *,
    shape: tuple[int, ...],
    data: str | None = None,
    sampler: str | None = None,
    sampler_options: Mapping[str, Any] | None = None,
    t_end: float = 1.0,
    t_last_trained: float | None = None,
    score_valid: bool = True,
    scaler: Standardizer | None = None,
    description: str = "a callable model",
    num_classes: int | None = None,
    null_label: int | None = None,
) -> ExternalModel:
    """Any ``fn(x, t) -> prediction`` on wasserflow's clock as an :class:`ExternalModel`.

    ``fn`` takes x (n, *shape) and t (n,) (x's dtype, t = 0 noise, t = 1 data) and returns a
    prediction of x's shape of kind ``prediction`` (epsilon, x1, score, velocity or
    v_prediction) on ``path``. ``t_end``: where samplers that evaluate the field at their last
    grid time stop (a VP model trained on t <= 1 - 1e-3: 1 - 1e-3; samples are then finished with
    the posterior mean); ``t_last_trained`` the last time it was trained at (default ``t_end``,
    1 - 1/T on a discrete DDPM path). ``score_valid=False`` for models whose path is not a
    Gaussian reference independent of the data (OT-coupled, bridged or reflowed flows): score
    samplers are then refused. ``sampler`` defaults to euler (ddim on a DDPM path).
    """
    p = as_path(path)
    T = None
    last = t_end if t_last_trained is None else t_last_trained
    if isinstance(p.schedule, DDPMDiscreteSchedule):
        T = p.schedule.num_train_timesteps
        last = 1.0 - 1.0 / T if t_last_trained is None else t_last_trained
    ctx = SamplingContext(
        path=p,
        t_end=float(t_end),
        t_last_trained=float(last),
        num_train_timesteps=T,
        score_valid=bool(score_valid) and not p.bridge_sigma,
        description=description,
    )
    default = sampler or ("ddim" if T is not None else "euler")
    labelled = None
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")

        def labelled(labels: Tensor | int) -> Field:
            call = ExtraLabelFn(fn, labels, num_classes, null_label)
            return Field(fn=call, prediction=prediction, path=p)

    elif null_label is not None:
        raise ValueError("null_label belongs to a class-conditional callable: give num_classes")
    return ExternalModel(
        labelled(num_classes) if labelled else Field(fn=fn, prediction=prediction, path=p),
        ctx,
        tuple(shape),
        method="callable",
        description=description,
        default_sampler=default,
        default_options=sampler_options,
        data=data,
        scaler=scaler,
        labelled=labelled,
        num_classes=num_classes,
    )
