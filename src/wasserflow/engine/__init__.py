"""The training engine: one loop for every objective, EMA, atomic safetensors checkpoints.

    cfg = TrainConfig(steps=2000, batch_size=256, lr=1e-3, seed=0)
    result = train(model, loss_fn, source.sample, cfg, run_dir="runs/otcfm", resume=True)

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

from .runs import RunSample, TrainedRun, load_run, make_config, train_run  # noqa: E402
from .sampling import sampling_plan  # noqa: E402

__all__ += ["RunSample", "TrainedRun", "load_run", "make_config", "sampling_plan", "train_run"]
