"""The one builder of a :class:`~wasserflow.engine.config.RunConfig`: it makes the path, the
objective, the network, the field, the data stream and the sampling context of a run.

Training and sampling both go through here, so a setting (the prediction, the time input, the
schedule, DDPM's T) is read once and cannot mean different things on the two sides: the loss
and every sampler call the same :meth:`Field.from_network` wrapper. What depends on the kind
of objective (its loss, head, field and sampling facts) is asked of its registered
:class:`~wasserflow.objectives.ObjectiveSpec`; nothing here tests the kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..data import DataSource, Standardizer, make_source, reshape_hint
from ..models import build_backbone
from ..objectives import PAIRS, ConditionalLoss, LossFn, LossSetup, objective_spec
from ..paths import (
    AffinePath,
    LabelledBatch,
    OTPairStream,
    OTStreamConfig,
    get_schedule,
    ve_sigma_max_from_data,
)
from ..samplers import Field, SamplingContext
from .config import DataConfig, ModelConfig, RunConfig, data_shape
from .loop import TrainConfig
from .methods import recipe

DataFn = Callable[[int, torch.Generator], Tensor]


def make_config(
    method: str,
    data: str,
    *,
    steps: int | None = None,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    model: str = "mlp",
    model_options: dict[str, Any] | None = None,
    width: int | None = None,
    depth: int | None = None,
    activation: str | None = None,
    time_embedding: str | None = None,
    scale: str = "none",
    ema_decay: float = 0.999,
    warmup: int = 100,
    decay: str = "cosine",
    grad_clip: float | None = 1.0,
    overrides: dict[str, Any] | None = None,
    method_overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The validated run configuration of ``method`` on ``data`` (nothing is written).

    ``model`` names a registered backbone with ``model_options``; ``width``, ``depth``,
    ``activation`` and ``time_embedding`` are shortcuts for the MLP's options. ``overrides``
    (``method_overrides`` is its old name) sets dotted keys, :meth:`RunConfig.with_overrides`.
    ``steps`` None keeps the training default; given, it sets the objective's
    :attr:`~wasserflow.objectives.ObjectiveSpec.steps_key` (``train.steps``; a JKO flow's
    number of blocks, one training step each).
    """
    r = recipe(method)
    spec = objective_spec(r.objective)
    shape = data_shape(data)  # refuses an unknown data spec now
    opts = dict(model_options or {})
    for key, v in (
        ("width", width),
        ("depth", depth),
        ("activation", activation),
        ("time_embedding", time_embedding),
    ):
        if v is not None:
            opts[key] = v
    train = TrainConfig(
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        ema_decay=ema_decay,
        warmup=warmup,
        decay=decay,
        grad_clip=grad_clip,
    )
    cfg = RunConfig(
        method=method,
        objective=r.objective,
        path=r.path,
        coupling=r.coupling,
        reflow=r.reflow,
        sampler=r.sampler,
        model=ModelConfig(model, shape, opts) if spec.has_network else None,
        data=DataConfig(spec=data, scale=scale),
        train=train,
    )
    extra = {**(method_overrides or {}), **(overrides or {})}
    if steps is not None:
        extra = {spec.steps_key: steps, **extra}
    if extra:
        cfg = cfg.with_overrides(extra)
    return with_block_steps(cfg)


def with_block_steps(cfg: RunConfig) -> RunConfig:
    """A run whose objective fixes its training steps (the JKO flow: one per block) counts
    those (:meth:`~wasserflow.objectives.ObjectiveSpec.train_steps`)."""
    fixed = objective_spec(cfg.objective).train_steps(cfg.objective)
    if fixed is not None and cfg.train.steps != fixed:
        return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=fixed))
    return cfg


def finalise(cfg: RunConfig, source: DataSource) -> RunConfig:
    """Fix what depends on the data: the standardizer, a VE schedule's sigma_max and the
    number of classes of a class-conditional run."""
    cfg = _with_classes(cfg, source)
    g = torch.Generator().manual_seed(cfg.train.seed + 7919)
    if cfg.data.scale == "standard" and cfg.data.standardizer is None:
        st = source.fit_standardizer(generator=g).to_dict()
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, standardizer=st))
    if cfg.path is not None and cfg.path.needs_data:
        x = scaler(cfg).transform(source.sample(2048, g).to(torch.float64))
        sched = {**cfg.path.schedule, "sigma_max": float(ve_sigma_max_from_data(x))}
        cfg = dataclasses.replace(cfg, path=dataclasses.replace(cfg.path, schedule=sched))
    return cfg


def _with_classes(cfg: RunConfig, source: DataSource) -> RunConfig:
    """A class-conditional run's number of classes, read off its data (refused in one line for
    data without labels, or labels of another number of classes)."""
    cond = cfg.condition
    if cond is None:
        return cfg
    if not source.labelled:
        source.sample_labelled(1)  # raises the source's own reason and the labelled sets
    k = source.label_info.num_classes
    if cond.num_classes is not None and cond.num_classes != k:
        raise ValueError(
            f"condition.num_classes is {cond.num_classes} but {cfg.data.spec} has {k} classes: "
            "drop condition.num_classes (it is read off the data)"
        )
    return dataclasses.replace(cfg, condition=dataclasses.replace(cond, num_classes=k))


def scaler(cfg: RunConfig) -> Standardizer:
    st = cfg.data.standardizer
    return Standardizer.from_dict(st) if st else Standardizer.identity()


def build_path(cfg: RunConfig) -> AffinePath:
    """The affine path (a VE sigma_max must have been fixed from the data, :func:`finalise`)."""
    if cfg.path is None:
        raise ValueError(
            f"method {cfg.method} has no affine path (it is not trained by regression on one)"
        )
    if cfg.path.needs_data:
        raise ValueError(
            "the VE schedule's sigma_max is not set: it is fixed from the data "
            "when training starts (paths.ve_sigma_max_from_data)"
        )
    sched = get_schedule(cfg.path.schedule["name"], **cfg.path.schedule_options())
    return AffinePath(sched, bridge_sigma=cfg.path.bridge_sigma, bridge=cfg.path.bridge)


def _probe_path(cfg: RunConfig) -> RunConfig:
    """``cfg`` with a placeholder VE sigma_max, to build objects before the data are seen."""
    if cfg.path is None or not cfg.path.needs_data:
        return cfg
    return dataclasses.replace(cfg, path=cfg.path.probe())


def build_objective(cfg: RunConfig, *, total_steps: int | None = None, stage: int = 0) -> LossFn:
    """The training loss; ``stage`` > 0 is a reflow stage (batches of pairs), as is a coupling
    served by the OT pair stream. A class-conditional run's loss is the objective's, wrapped in
    :class:`~wasserflow.objectives.ConditionalLoss` (labelled batches, label dropout), which
    couples the data batches itself when the coupling reorders them (ot, entropic) and the
    batches are not pairs already, so that each pair keeps its label."""
    pairs = stage > 0 or bool(cfg.reflow.teacher) or ot_stream_config(cfg) is not None
    cond = cfg.condition
    couple_here = cond is not None and not pairs and cfg.coupling.kind != "independent"
    setup = LossSetup(
        method=cfg.method,
        path=None if cfg.path is None else build_path(_probe_path(cfg)),
        coupling=PAIRS if pairs or couple_here else cfg.coupling.kind,
        coupling_sigma=cfg.coupling.sigma,
        total_steps=cfg.train.steps if total_steps is None else total_steps,
    )
    spec = objective_spec(cfg.objective)
    loss = spec.loss(cfg.objective, setup)
    if cond is None:
        return loss
    return ConditionalLoss(
        loss,
        num_classes=_probe_classes(cfg),
        label_dropout=0.0 if spec.labels_dropped else cond.label_dropout,
        coupling=cfg.coupling.kind if couple_here else None,
        per_class=cfg.coupling.per_class,
        coupling_sigma=cfg.coupling.sigma,
    )


def _probe_classes(cfg: RunConfig) -> int:
    """K of a class-conditional run (1 as a placeholder before the data have fixed it)."""
    return cfg.condition.num_classes or 1


def validate(cfg: RunConfig) -> None:
    """Build what can be built before the data are seen and run the network once on two
    zero inputs of the data's shape (raises now, not at step 1,000). The options themselves
    (activation, width, schedule, ...) are checked when the config is made."""
    if cfg.model is None:
        return  # nothing to run: the objective fits its model itself
    teacher = objective_spec(cfg.objective).teacher(cfg.objective)
    if teacher is not None:
        from .methods import METHODS
        from .teachers import check_teacher_spec

        check_teacher_spec(teacher, METHODS)
    build_objective(cfg)
    x = torch.zeros((2, *cfg.model.shape))
    t = torch.full((2,), 0.5)
    extra = tuple(t for _ in objective_spec(cfg.objective).conditions)  # a flow map's s
    labels = () if cfg.condition is None else (torch.zeros(2, dtype=torch.int64),)
    try:
        net = build_network(cfg, seed=0)
        with torch.no_grad():
            y = net(x, t, *extra, *labels)
    except (RuntimeError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        fix = reshape_hint(cfg.data.spec)
        raise ValueError(
            f"model {cfg.model.name} cannot take data of shape {list(cfg.model.shape)}: {first}"
            + (f"; {fix}" if fix else "")
        ) from e
    if tuple(y.shape) != tuple(x.shape):
        raise ValueError(
            f"model {cfg.model.name} maps data of shape {list(cfg.model.shape)} to "
            f"{list(y.shape[1:])}: a field must keep the data's shape"
        )


def build_network(cfg: RunConfig, *, seed: int | None = None) -> nn.Module:
    """The network: the backbone with the objective's head and extra inputs, inside the module
    the objective trains (Energy Matching: :class:`~wasserflow.models.PotentialField` around a
    scalar head; a flow map: :class:`~wasserflow.objectives.FlowMapNet` around a backbone with
    the second time as an extra input)."""
    m, spec = cfg.model, objective_spec(cfg.objective)
    scalar = spec.head == "scalar"
    labels = () if cfg.condition is None else (f"class:{_probe_classes(cfg)}",)
    net = build_backbone(
        m.name,
        m.shape,
        m.backbone_options(),
        scalar=scalar,
        seed=seed,
        conditions=(*spec.conditions, *labels),
    )
    return spec.network(cfg.objective, net)


def build_field(cfg: RunConfig, model: Any) -> Field | Any:
    """What a sampler drives: the trained model as the Field every sampler consumes (the loss's
    own wrapper), or a model a registered sampler runs itself (the JKO flow)."""
    path = None if cfg.path is None else build_path(cfg)
    return objective_spec(cfg.objective).field(cfg.objective, model, path)


def sampling_context(cfg: RunConfig, model: Any = None) -> SamplingContext:
    """What a sampler's grid policy may know of this run (:class:`SamplingContext`): the path,
    DDPM's T and whether the score holds (a Gaussian reference independent of the data: an
    independent coupling without bridge noise or reflow), refined by the objective
    (:meth:`~wasserflow.objectives.ObjectiveSpec.sampling_context`; ``model`` the trained
    model, when there is one)."""
    p = cfg.path
    independent = (
        cfg.coupling.kind == "independent"
        and (p is None or not p.bridge_sigma)
        and not cfg.reflow.rounds
        and not cfg.reflow.teacher
    )
    base = SamplingContext(
        path=None if p is None else build_path(_probe_path(cfg)),
        num_train_timesteps=None if p is None else p.num_train_timesteps,
        score_valid=independent,
        description=cfg.method,
    )
    return objective_spec(cfg.objective).sampling_context(cfg.objective, base, model)


def ot_stream_config(cfg: RunConfig) -> OTStreamConfig | None:
    """The minibatch-OT pair stream of an OT coupling served by a stream (None otherwise)."""
    c = cfg.coupling
    if c.kind != "ot" or not c.stream or not objective_spec(cfg.objective).pair_batches:
        return None
    b = cfg.train.batch_size
    return OTStreamConfig(
        batch_size=b,
        ot_batch=b if c.ot_batch is None else c.ot_batch,
        reuse=c.ot_reuse,
        prefetch=c.ot_prefetch,
        per_class=c.per_class,
    )


def data_stream(cfg: RunConfig, source: DataSource) -> DataFn:
    """Training batches in training coordinates (OT pairs when the coupling streams them); a
    class-conditional run's batches carry their labels (:class:`LabelledBatch`, drawn by
    ``source.sample_labelled``: the points of ``sample`` from the same generator state)."""
    sc = scaler(cfg)

    def sample_data(n: int, g: torch.Generator) -> Tensor:
        return sc.transform(source.sample(n, g))

    def sample_labelled(n: int, g: torch.Generator) -> LabelledBatch:
        x, y = source.sample_labelled(n, g)
        return LabelledBatch(sc.transform(x), y)

    draw = sample_data if cfg.condition is None else sample_labelled

    stream = ot_stream_config(cfg)
    if stream is None:
        return draw
    return OTPairStream(draw, stream, seed=cfg.train.seed, total_steps=cfg.train.steps)


def source(cfg: RunConfig) -> DataSource:
    return make_source(cfg.data.spec)
