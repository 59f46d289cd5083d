"""The one reader of a :class:`~wasserflow.engine.config.RunConfig`: it makes the path, the
objective, the network, the field, the data stream and the sampling context of a run.

Training and sampling both go through here, so a setting (the prediction, the time input, the
schedule, DDPM's T) is read once and cannot mean different things on the two sides: the loss
and every sampler call the same :meth:`Field.from_network` wrapper.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..data import DataSource, Standardizer, make_source
from ..models import PotentialField, build_backbone
from ..objectives import PAIRS, PathRegression
from ..paths import AffinePath, OTPairStream, OTStreamConfig, get_schedule, ve_sigma_max_from_data
from ..samplers import Field, SamplingContext
from .config import (
    DataConfig,
    EnergyMatchingObjective,
    ModelConfig,
    RegressionObjective,
    RunConfig,
    data_shape,
    is_blockwise,
)
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
    ``steps`` None keeps the training default (a JKO flow: one step per block; given, it sets
    the number of blocks).
    """
    r = recipe(method)
    opts = dict(model_options or {})
    for key, v in (
        ("width", width),
        ("depth", depth),
        ("activation", activation),
        ("time_embedding", time_embedding),
    ):
        if v is not None:
            opts[key] = v
    blockwise = is_blockwise(r.objective)
    if blockwise and steps is not None:
        r = dataclasses.replace(r, objective=dataclasses.replace(r.objective, blocks=steps))
    train = TrainConfig(
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        ema_decay=ema_decay,
        warmup=warmup,
        decay=decay,
        grad_clip=grad_clip,
        **({} if steps is None or blockwise else {"steps": steps}),
    )
    shape = data_shape(data)
    cfg = RunConfig(
        method=method,
        objective=r.objective,
        path=r.path,
        coupling=r.coupling,
        reflow=r.reflow,
        sampler=r.sampler,
        model=None if blockwise else ModelConfig(model, shape, opts),
        data=DataConfig(spec=data, scale=scale),
        train=train,
    )
    extra = {**(method_overrides or {}), **(overrides or {})}
    if extra:
        cfg = cfg.with_overrides(extra)
    return with_block_steps(cfg)


def with_block_steps(cfg: RunConfig) -> RunConfig:
    """A JKO flow counts one training step per block."""
    if cfg.blockwise and cfg.train.steps != cfg.objective.blocks:
        return dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, steps=cfg.objective.blocks)
        )
    return cfg


def finalise(cfg: RunConfig, source: DataSource) -> RunConfig:
    """Fix what depends on the data: the standardizer and a VE schedule's sigma_max."""
    g = torch.Generator().manual_seed(cfg.train.seed + 7919)
    if cfg.data.scale == "standard" and cfg.data.standardizer is None:
        st = source.fit_standardizer(generator=g).to_dict()
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, standardizer=st))
    if cfg.path is not None and cfg.path.needs_data:
        x = scaler(cfg).transform(source.sample(2048, g).to(torch.float64))
        sched = {**cfg.path.schedule, "sigma_max": float(ve_sigma_max_from_data(x))}
        cfg = dataclasses.replace(cfg, path=dataclasses.replace(cfg.path, schedule=sched))
    return cfg


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


def build_objective(cfg: RunConfig, *, total_steps: int | None = None, stage: int = 0):
    """The training loss; ``stage`` > 0 is a reflow stage (batches of pairs), as is a coupling
    served by the OT pair stream."""
    obj = cfg.objective
    steps = cfg.train.steps if total_steps is None else total_steps
    if isinstance(obj, EnergyMatchingObjective):
        return obj.build(steps)
    if not isinstance(obj, RegressionObjective):
        raise ValueError(
            f"method {cfg.method} is trained block by block, not with an "
            "objective: use engine.train_run"
        )
    pairs = stage > 0 or bool(cfg.reflow.teacher) or ot_stream_config(cfg) is not None
    return PathRegression(
        path=build_path(_probe_path(cfg)),
        prediction=obj.prediction,
        coupling=PAIRS if pairs else cfg.coupling.kind,
        times=obj.times,
        weighting=obj.weighting,
        coupling_sigma=cfg.coupling.sigma,
        time_input=obj.time_input,
    )


def validate(cfg: RunConfig) -> None:
    """Build what can be built before the data are seen and run the network once on two
    zero inputs of the data's shape (raises now, not at step 1,000). The options themselves
    (activation, width, schedule, ...) are checked when the config is made."""
    if cfg.blockwise:
        return
    build_objective(cfg)
    net = build_network(cfg, seed=0)
    x = torch.zeros((2, *cfg.model.shape))
    try:
        with torch.no_grad():
            y = net(x, torch.full((2,), 0.5))
    except (RuntimeError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"model {cfg.model.name} cannot take data of shape {list(cfg.model.shape)}: {first}"
        ) from e
    if tuple(y.shape) != tuple(x.shape):
        raise ValueError(
            f"model {cfg.model.name} maps data of shape {list(cfg.model.shape)} to "
            f"{list(y.shape[1:])}: a field must keep the data's shape"
        )


def build_network(cfg: RunConfig, *, seed: int | None = None) -> nn.Module:
    """The network (an energy model: :class:`PotentialField` around the scalar backbone)."""
    m = cfg.model
    net = build_backbone(m.name, m.shape, m.backbone_options(), scalar=cfg.energy, seed=seed)
    return PotentialField(net) if cfg.energy else net


def build_field(cfg: RunConfig, net: nn.Module) -> Field:
    """The trained network as the Field every sampler consumes (the loss's own wrapper)."""
    if cfg.energy:
        return Field.from_network(net, AffinePath(get_schedule("linear")), "velocity", "t")
    obj = cfg.objective
    return Field.from_network(net, build_path(cfg), obj.prediction, obj.time_input)


def sampling_context(cfg: RunConfig, model_steps: Tensor | None = None) -> SamplingContext:
    """What a sampler's grid policy may know of this run (:class:`SamplingContext`)."""
    desc = cfg.method
    if cfg.blockwise:
        return SamplingContext(model_steps=model_steps, score_valid=False, description=desc)
    obj = cfg.objective
    times = obj.times if isinstance(obj, RegressionObjective) else None
    t_end = times.t_max if times is not None and times.kind == "uniform" else 1.0
    if times is None:
        last = 1.0
    elif times.kind == "ddpm":
        last = 1.0 - 1.0 / times.levels
    elif times.kind == "levels":
        last = 1.0
    else:
        last = times.t_max
    independent = (
        cfg.coupling.kind == "independent"
        and not cfg.path.bridge_sigma
        and not cfg.reflow.rounds
        and not cfg.reflow.teacher
        and not cfg.energy
    )
    return SamplingContext(
        path=build_path(_probe_path(cfg)) if not cfg.energy else None,
        t_end=t_end,
        t_last_trained=last,
        num_train_timesteps=cfg.path.num_train_timesteps,
        levels=times.levels if times is not None and times.kind == "levels" else None,
        score_valid=independent,
        energy=cfg.energy,
        description=desc,
    )


def ot_stream_config(cfg: RunConfig) -> OTStreamConfig | None:
    """The minibatch-OT pair stream of an OT coupling served by a stream (None otherwise)."""
    c = cfg.coupling
    if c.kind != "ot" or not c.stream or cfg.energy:
        return None
    b = cfg.train.batch_size
    return OTStreamConfig(
        batch_size=b,
        ot_batch=b if c.ot_batch is None else c.ot_batch,
        reuse=c.ot_reuse,
        prefetch=c.ot_prefetch,
    )


def data_stream(cfg: RunConfig, source: DataSource) -> DataFn:
    """Training batches in training coordinates (OT pairs when the coupling streams them)."""
    sc = scaler(cfg)

    def sample_data(n: int, g: torch.Generator) -> Tensor:
        return sc.transform(source.sample(n, g))

    stream = ot_stream_config(cfg)
    if stream is None:
        return sample_data
    return OTPairStream(sample_data, stream, seed=cfg.train.seed, total_steps=cfg.train.steps)


def source(cfg: RunConfig) -> DataSource:
    return make_source(cfg.data.spec)
