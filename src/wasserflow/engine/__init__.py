"""The training engine: one loop for every objective, EMA, atomic safetensors checkpoints.

    cfg = TrainConfig(steps=2000, batch_size=256, lr=1e-3, seed=0)
    result = train(model, loss_fn, source.sample, cfg, run_dir="runs/otcfm", resume=True)

A run is a typed :class:`RunConfig` (:mod:`.config`), made from a method's recipe
(:mod:`.methods`) by :func:`make_config` and read only by :mod:`.build`; :func:`train_run` and
:func:`load_run` work on run folders (:mod:`.runs`), whose life (the writer's lock, resume, the
settings a resume may change and their history) is :mod:`.folder`'s.

``loss_fn(model, batch, generator)`` returns per-sample losses (an objective of
:mod:`wasserflow.objectives`); all randomness flows through the one generator seeded by
``cfg.seed``, so a resumed run equals an uninterrupted one bit for bit on CPU.
"""

from .ema import EMA
from .loop import (
    BatchStream,
    LossFn,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    load_weights,
    train,
)

__all__ = [
    "EMA",
    "BatchStream",
    "LossFn",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "load_weights",
    "train",
]

from ..objectives import JKOFlowRun  # noqa: E402
from .build import (  # noqa: E402
    build_field,
    build_network,
    build_objective,
    build_path,
    make_config,
    ot_stream_config,
    sampling_context,
)
from .config import CONFIG_VERSION, RunConfig, load_config, read_config  # noqa: E402
from .methods import METHODS, recipe  # noqa: E402
from .model import GenerativeModel  # noqa: E402
from .results import RunSample  # noqa: E402
from .runs import TrainedRun, load_run, train_run  # noqa: E402
from .sampling import check_compatible, sampling_plan  # noqa: E402

__all__ += [
    "CONFIG_VERSION",
    "GenerativeModel",
    "JKOFlowRun",
    "METHODS",
    "RunConfig",
    "RunSample",
    "TrainedRun",
    "build_field",
    "build_network",
    "build_objective",
    "build_path",
    "check_compatible",
    "load_config",
    "load_run",
    "make_config",
    "ot_stream_config",
    "read_config",
    "recipe",
    "sampling_context",
    "sampling_plan",
    "train_run",
]
