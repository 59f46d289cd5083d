"""Objectives registered by kind: each owns its config, its loss or trainer, its network head,
how its trained model is sampled, and the sampling facts it contributes.

    @register_objective("regression", RegressionObjective)
    class PathRegressionSpec(ObjectiveSpec):
        def loss(self, objective, setup): return PathRegression(setup.path, ...)
        def field(self, objective, model, path): return Field.from_network(model, path, ...)

The config dataclass (frozen, every option with its default, validated in ``__post_init__``)
carries a ``kind`` field holding the registered name; a run configuration stores it as
``{"kind": ..., **options}`` and its parser finds the class here. The engine asks the
:class:`ObjectiveSpec` of a run's objective (:func:`objective_spec`) for everything that
depends on the kind and never tests the kind itself:

* ``loss(objective, setup)``: the per-sample loss the engine's training loop minimises
  (:data:`LossFn`), built from what the engine made of the run (:class:`LossSetup`);
* ``train(objective, job)``: the trainer; by default the engine's batch loop with that loss
  (:meth:`TrainJob.train_network`), an objective fitted another way (the JKO flow, block by block)
  overrides it and writes through the job;
* ``head``, ``conditions`` and ``network(objective, backbone)``: the backbone's head (a vector
  field, or a scalar potential), the extra inputs it takes after t (a flow map's second time,
  :mod:`wasserflow.models.conditioning`) and the module trained around it;
* ``load(objective, checkpoint)``, ``field(objective, model, path)`` and
  ``sampling_context(objective, base, model)``: the trained model, what a sampler drives, and
  the facts a sampler's grid policy may know of it (:class:`~wasserflow.samplers.SamplingContext`);
* ``check(objective, run)``: refusals of settings of the run that contradict the objective;
* ``teacher(objective)``: the trained model a distillation learns from (:class:`TeacherSpec`);
* ``run_mixin``: methods a trained run of this kind adds (the JKO flow's exact ``log_prob``).

Adding an objective is one module with ``@register_objective``, one import in
``objectives/__init__.py`` and its test (docs/design.md section 5); nothing else names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ..paths import AffinePath
from ..samplers import Field, SamplingContext

LossFn = Callable[[nn.Module, Tensor, torch.Generator, int], Tensor]
"""(model, data batch, generator, step) -> per-sample losses (B,); the step lets an objective
change phase (Energy Matching's warm-up) without hidden state."""


@runtime_checkable
class ObjectiveConfig(Protocol):
    """The config dataclass of a registered objective: ``kind`` is its registered name."""

    kind: str


@dataclass
class TrainResult:
    """What a trainer returns for one stage: its steps, the last loss, the seconds it took and
    the step it resumed from (0 when fresh), and the loss of every step it took."""

    steps: int
    final_loss: float
    seconds: float
    resumed_from: int
    losses: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class LossSetup:
    """What the engine has built of a run for its loss.

    Attributes:
        method: the run's method (for messages).
        path: the run's affine path (None for a run without one).
        coupling: how batches pair noise and data: a registered coupling name, or
            :data:`~wasserflow.objectives.PAIRS` when batches already hold pairs (an OT pair
            stream, reflow).
        coupling_sigma: the entropic coupling's sigma.
        total_steps: the steps the loss is trained for (a phase may be a fraction of them).
    """

    method: str
    path: AffinePath | None
    coupling: str
    coupling_sigma: float | None
    total_steps: int


DataFn = Callable[[int, torch.Generator], Tensor]
"""(n, generator) -> a batch of n: what the batch loop hands the loss."""


@dataclass(frozen=True)
class TeacherSpec:
    """A trained model to learn from (distillation).

    Attributes:
        source: a run folder, ``PREFIX:WHERE`` of a registered teacher source (a diffusers
            folder ``diffusers:DIR``, a TorchCFM state dict ``torchcfm:CKPT[#KEY]``), or None:
            train one first, by ``method`` inside the run folder (its ``teacher/``).
        method: the method of a teacher trained first (its recipe, the run's model, data and
            training settings).
        steps: that teacher's training steps (None: the run's).
        model, model_options: the registered backbone and its options of a state-dict teacher
            (``torchcfm:``).
    """

    source: str | None = None
    method: str = "otcfm"
    steps: int | None = None
    model: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)


class TrainJob(Protocol):
    """What the engine hands a trainer (:meth:`ObjectiveSpec.train`): the run's seed and data,
    its batch loop, a teacher, and the stage folder's checkpoint and metrics log."""

    seed: int
    checkpoint_path: Path

    def data(self, n: int, generator: torch.Generator) -> Tensor:
        """n training points in training coordinates (the data scaling applied)."""
        ...

    @property
    def num_classes(self) -> int | None:
        """K of a class-conditional run, else None."""
        ...

    def labels(self, n: int, generator: torch.Generator) -> Tensor | None:
        """The classes (n,) int64 of n draws of a class-conditional run's data, each dropped to
        the null class K with the run's ``condition.label_dropout`` (None: unconditional)."""
        ...

    def train_network(
        self, data: DataFn | None = None, init: Callable[[nn.Module], None] | None = None
    ) -> list[TrainResult]:
        """Train the run's network with the objective's :meth:`~ObjectiveSpec.loss` in the
        engine's batch loop, stage by stage (reflow), and return each stage's result;
        ``data`` replaces the run's data stream as the loss's batches; ``init`` sets the
        freshly built network's weights before the first step (a checkpoint, when training
        resumes, replaces them)."""
        ...

    def teacher(self, spec: TeacherSpec) -> Any:
        """The teacher ``spec`` names (trained first when it names none), a
        :class:`~wasserflow.engine.GenerativeModel`, checked to generate this run's data
        shape from this run's reference noise in this run's data scaling."""
        ...

    def load_checkpoint(self) -> dict[str, Tensor] | None:
        """The tensors of the stage's checkpoint, or None when there is none yet."""
        ...

    def save_checkpoint(self, tensors: dict[str, Tensor], metadata: dict) -> None:
        """Write the stage's checkpoint atomically."""
        ...

    def restart(self, step: int) -> None:
        """Training (re)starts after ``step``: metrics records past it are dropped."""
        ...

    def log(self, step: int, record: dict) -> None:
        """Append ``record`` to the metrics log and report the progress of ``step``."""
        ...


class Checkpoint(Protocol):
    """A trained stage's checkpoint, as :meth:`ObjectiveSpec.load` reads it."""

    path: Path

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor of the checkpoint."""
        ...

    def network(self) -> nn.Module:
        """The run's network (:meth:`ObjectiveSpec.network` around its backbone) with the
        checkpoint's EMA weights, on the run's device."""
        ...


class ObjectiveSpec:
    """A registered objective kind (module doc); subclasses override what differs.

    Attributes:
        name: the registered kind (the config's ``kind``).
        config: the config dataclass.
        title: how messages name it ("Energy Matching").
        has_network: whether a run trains a network (a backbone and a path); False: the run
            has neither (model and path null) and the trainer fits the model itself.
        head: the backbone's head, "vector" (the field's shape) or "scalar" (a potential).
        conditions: the extra inputs the backbone takes after t (a flow map's second time:
            ``("scalar",)``, :mod:`wasserflow.models.conditioning`); none by default.
        data_parallel: whether it trains under torchrun (the batch loop's data parallelism).
        pair_batches: whether its loss takes batches of (noise, data) pairs (an OT pair stream
            or reflow); False: the loss couples its batches itself.
        steps_key: the dotted config key that ``--steps`` sets.
        ode_sampler: the deterministic sampler its path geometry is measured with (None: the
            run's own default sampler).
        flow_map: whether it learns a flow map X(x, t, s) (sampled by its jumps) rather than a
            velocity, score or potential (:mod:`wasserflow.objectives.flowmap`).
        run_mixin: a class of methods a trained run of this kind adds, or None.
        labels_dropped: whether the batches its trainer serves a class-conditional run carry
            their labels already dropped to the null class (:meth:`TrainJob.labels`), so the
            loop drops none.
    """

    name: ClassVar[str] = ""
    config: ClassVar[type] = object
    title: ClassVar[str] = ""
    has_network: ClassVar[bool] = True
    head: ClassVar[str] = "vector"
    conditions: ClassVar[tuple[str, ...]] = ()
    data_parallel: ClassVar[bool] = True
    pair_batches: ClassVar[bool] = True
    steps_key: ClassVar[str] = "train.steps"
    ode_sampler: ClassVar[str | None] = "euler"
    flow_map: ClassVar[bool] = False
    run_mixin: ClassVar[type | None] = None
    labels_dropped: ClassVar[bool] = False

    def check(self, objective: Any, run: Any) -> None:
        """Refuse settings of the run (a :class:`~wasserflow.engine.RunConfig`) that contradict
        this objective, each in one line naming the fix; by default a network objective needs
        a path and a model."""
        if run.path is None or run.model is None:
            raise ValueError(f"method {run.method} trains a network on a path: give path and model")

    def teacher(self, objective: Any) -> TeacherSpec | None:
        """The trained model this objective learns from (distillation), or None; the engine
        checks it before training and loads it for :meth:`TrainJob.teacher`."""
        return None

    def train_steps(self, objective: Any) -> int | None:
        """The training steps the objective fixes (None: the run's ``train.steps``)."""
        return None

    def loss(self, objective: Any, setup: LossSetup) -> LossFn:
        """The per-sample loss the batch loop minimises."""
        raise ValueError(
            f"method {setup.method} is not trained by a per-batch loss: use engine.train_run"
        )

    def train(self, objective: Any, job: TrainJob) -> list[TrainResult]:
        """Train a run of this objective: by default the engine's batch loop with :meth:`loss`."""
        return job.train_network()

    def network(self, objective: Any, backbone: nn.Module) -> nn.Module:
        """The module trained around a backbone built with this objective's :attr:`head`."""
        return backbone

    def velocity_network(self, objective: Any) -> bool:
        """Whether the trained network, called ``net(x, t)`` on the t clock, IS the velocity
        v(x, t) the ODE integrates (what a distilled flow map may start from); False by
        default."""
        return False

    def load(self, objective: Any, checkpoint: Checkpoint) -> Any:
        """The trained model of a checkpoint: by default the network with its EMA weights."""
        return checkpoint.network()

    def field(self, objective: Any, model: Any, path: AffinePath | None) -> Field | Any:
        """What a sampler drives: the trained model as a :class:`~wasserflow.samplers.Field`
        on the t clock (or a model a registered sampler drives itself)."""
        return Field.from_network(model, path)

    def sampling_context(
        self, objective: Any, base: SamplingContext, model: Any = None
    ) -> SamplingContext:
        """``base`` (what the run's path and coupling say) with this objective's facts; ``model``
        is the trained model when there is one."""
        return base

    def sample_shape(self, objective: Any, model: Any, shape: tuple[int, ...] | None) -> tuple:
        """The shape of one sample, ``shape`` that of the run's model config (None without)."""
        if shape is None:
            raise ValueError(f"objective {self.name} has no model shape: the run needs a model")
        return tuple(shape)


OBJECTIVES: dict[str, ObjectiveSpec] = {}


def register_objective(
    name: str, config: type
) -> Callable[[type[ObjectiveSpec]], type[ObjectiveSpec]]:
    """Decorator: register an :class:`ObjectiveSpec` subclass for the config dataclass
    ``config``, whose ``kind`` field defaults to ``name``."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"the config of objective {name!r} must be a dataclass")
    kinds = {f.name: f.default for f in dataclasses.fields(config)}
    if kinds.get("kind") != name:
        raise TypeError(f"the config of objective {name!r} needs a field kind: str = {name!r}")

    def deco(cls: type[ObjectiveSpec]) -> type[ObjectiveSpec]:
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} is registered twice")
        cls.name, cls.config = name, config
        OBJECTIVES[name] = cls()
        return cls

    return deco


def get_objective(kind: str) -> ObjectiveSpec:
    """The registered objective ``kind`` (see :data:`OBJECTIVES`)."""
    if kind not in OBJECTIVES:
        raise ValueError(f"unknown objective {kind!r}: choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[kind]


def objective_spec(objective: ObjectiveConfig) -> ObjectiveSpec:
    """The :class:`ObjectiveSpec` of an objective config."""
    return get_objective(objective.kind)
