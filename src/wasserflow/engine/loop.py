"""The one training loop for every objective.

Adam with linear warm-up and cosine (or no) decay, gradient-norm clipping, EMA weights, one
explicit ``torch.Generator`` for all randomness (data draws and the objective's times, noise and
couplings), metrics appended to ``metrics.jsonl``, and atomic safetensors checkpoints. A resumed
run equals an uninterrupted run of the same seed bit for bit on CPU: the checkpoint carries the
model, the EMA, Adam's moments and the generator's state. The checkpoint of step k (every
``checkpoint_every`` steps) is written in step k once that step's loss is known to be finite, so
a NaN or inf loss, which stops training with :class:`TrainingDiverged` (defined in
:mod:`wasserflow.errors`, re-exported here), leaves a last checkpoint that a lower learning rate
can continue from. A torn last line of ``metrics.jsonl`` (a crash mid-write) is
dropped with a warning on resume.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .._atomic import write_text
from ..errors import RunFolderError, TrainingDiverged
from ..objectives import LossFn, TrainResult
from . import acceleration as acc
from . import checkpoint as ckpt
from .distributed import Ranks, check_batch
from .ema import EMA


@runtime_checkable
class BatchStream(Protocol):
    """A ``sample_data`` that serves batches by step from its own randomness (e.g.
    :class:`wasserflow.paths.OTPairStream`): the loop calls ``seek(start)`` before the first
    step (0, or the step a resumed run continues from) and ``close()`` when training stops."""

    def __call__(self, n: int, generator: torch.Generator) -> Tensor: ...

    def seek(self, step: int) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    warmup: int = 100
    decay: str = "cosine"  # "cosine" or "none"
    min_lr_ratio: float = 0.05
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    weight_decay: float = 0.0
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    precision: str = "fp32"  # "fp32" or "bf16" (autocast of the network, :mod:`.acceleration`)
    channels_last: bool = False  # the network's 4-D weights in channels-last memory format
    compile: bool = False  # torch.compile the network (pays on GPUs for large networks)
    compile_mode: str = "default"  # torch.compile's mode (acc.COMPILE_MODES): reduce-overhead
    fused: bool = False  # Adam's fused kernel (one kernel for every parameter's update)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")
        if self.precision not in acc.PRECISIONS:
            raise ValueError(
                f"train.precision {self.precision!r}: choose one of {', '.join(acc.PRECISIONS)}"
            )
        if self.compile_mode not in acc.COMPILE_MODES:
            raise ValueError(
                f"train.compile_mode {self.compile_mode!r}: choose one of "
                f"{', '.join(acc.COMPILE_MODES)}"
            )
        if self.decay not in ("cosine", "none"):
            raise ValueError(f"decay {self.decay!r}: choose cosine or none")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive and finite, got {self.lr}")
        if self.grad_clip is not None and not (
            self.grad_clip > 0 and math.isfinite(self.grad_clip)
        ):
            raise ValueError(
                f"grad_clip must be a positive finite gradient norm, or null for none "
                f"(--grad-clip 0 on the command line), got {self.grad_clip}"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate for optimiser step ``step`` (0-based): warm-up, then decay."""
        w = min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else 1.0
        if self.decay == "none":
            return self.lr * w
        p = min(1.0, step / max(1, self.steps - 1))
        c = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))
        return self.lr * w * c


@dataclass
class _RunFiles:
    """What one training call writes: the checkpoint (None: nothing on disk), the metrics log
    (None: nothing on disk, or not the main rank, which alone writes), and the step of the last
    good checkpoint (``saved``), named when training diverges."""

    checkpoint: Path | None
    metrics: Path | None
    main: bool
    saved: int | None = None

    @classmethod
    def open(cls, run_dir: str | Path | None, main: bool) -> _RunFiles:
        if run_dir is None:
            return cls(None, None, main)
        run = Path(run_dir)
        if main:
            run.mkdir(parents=True, exist_ok=True)
        return cls(run / "checkpoint.safetensors", run / "metrics.jsonl" if main else None, main)

    def has_checkpoint(self) -> bool:
        return self.checkpoint is not None and self.checkpoint.exists()

    def start(self, step: int) -> None:
        """Training (re)starts at ``step``: metrics records past it are dropped."""
        self.saved = step if self.has_checkpoint() else None
        if self.metrics is not None:
            truncate_metrics(self.metrics, step)

    def save(self, step: int, model, ema, opt, rng: dict[str, Tensor], cfg: TrainConfig) -> None:
        if self.main:
            save_training_state(self.checkpoint, model, ema, opt, rng, step, cfg)
        self.saved = step

    def log(self, record: dict) -> None:
        with open(self.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")

    def diverged(self, value: float, step: int, lr: float) -> TrainingDiverged:
        kept = self.saved is not None
        where = f"; the last good checkpoint is {self.checkpoint}" if kept else ""
        return TrainingDiverged(
            f"loss became {value} at step {step}{where}: lower the learning rate "
            f"(now {lr:g}) or clip gradients",
            step=step,
            checkpoint=self.checkpoint if kept else None,
            checkpoint_step=self.saved,
            lr=lr,
        )


def train(
    model: nn.Module,
    loss_fn: LossFn,
    sample_data: Callable[[int, torch.Generator], Tensor],
    cfg: TrainConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: Callable[[int, dict], None] | None = None,
    may_differ: frozenset[str] = frozenset(),
    ranks: Ranks | None = None,
) -> TrainResult:
    """Train ``model`` by minimising mean(loss_fn(model, batch, generator)).

    Args:
        model: the network (its parameters are updated in place; ``run_dir/checkpoint
            .safetensors`` holds both the raw and the EMA weights).
        loss_fn: per-sample losses for a batch (an objective of :mod:`wasserflow.objectives`).
        sample_data: draws a batch ``(n, generator) -> (n, ...)``; a :class:`BatchStream` is
            told the start step and closed at the end.
        cfg: hyper-parameters; ``cfg.seed`` seeds the one generator.
        run_dir: where checkpoints and ``metrics.jsonl`` go (None: keep nothing on disk).
        resume: continue from ``run_dir/checkpoint.safetensors`` if it exists.
        progress: called as progress(step, metrics) after every step.
        may_differ: settings (``lr``) allowed to differ from the checkpoint's on resume: they
            were changed on purpose (:mod:`wasserflow.engine.folder`).
        ranks: this process's place in a data-parallel group (:mod:`.distributed`; None: one
            process). Every rank draws the global batch ``cfg.batch_size`` from the same
            generator and runs the network on its rows; rank 0 alone writes ``run_dir``;
            ``progress`` is called on every rank.

    A NaN or inf loss raises :class:`TrainingDiverged` (with the step, the last good
    checkpoint and its step) before the step is taken.
    """
    if ranks is not None:
        check_batch(cfg.batch_size, ranks.world)
    run = _Training.begin(model, cfg, run_dir, resume, may_differ, ranks)
    t0 = time.perf_counter()
    last = float("nan")
    losses: list[float] = []
    model.train()
    stream = sample_data if isinstance(sample_data, BatchStream) else None
    if stream is not None:
        stream.seek(run.start)
    try:
        for step in range(run.start, cfg.steps):
            last = run.step(step, loss_fn, sample_data)
            losses.append(last)
            done = step + 1
            record = {"step": done, "loss": last, "lr": run.lr, "grad_norm": run.grad_norm}
            run.finish_step(done, record, t0)
            if progress is not None:
                progress(done, record)
    finally:
        if stream is not None:
            stream.close()
    if ranks is not None:
        ranks.barrier()  # rank 0's last checkpoint is on disk before any rank goes on
    return TrainResult(
        steps=cfg.steps,
        final_loss=last,
        seconds=time.perf_counter() - t0,
        resumed_from=run.start,
        losses=losses,
    )


@dataclass
class _Training:
    """The state of one training call: the model and the network that runs it (DDP, compiled),
    the optimiser, the EMA, the generators, the run's files, the step it (re)starts at and the
    learning rate and gradient norm of the last step."""

    model: nn.Module
    net: nn.Module
    rows: slice | None
    params: list[Tensor]
    opt: torch.optim.Optimizer
    ema: EMA
    rand: acc.Randomness
    files: _RunFiles
    cfg: TrainConfig
    ranks: Ranks | None
    start: int
    lr: float = float("nan")
    grad_norm: float = float("nan")

    @classmethod
    def begin(
        cls,
        model: nn.Module,
        cfg: TrainConfig,
        run_dir: str | Path | None,
        resume: bool,
        may_differ: frozenset[str],
        ranks: Ranks | None,
    ) -> _Training:
        """Seed the generators, build the optimiser and the EMA, and restore them (resume)."""
        rand = acc.Randomness.seeded(cfg.seed, acc.model_device(model))
        opt = acc.optimizer(model, cfg.lr, cfg.weight_decay, cfg.fused)
        ema = EMA(model, cfg.ema_decay)
        files = _RunFiles.open(run_dir, ranks is None or ranks.main)
        start = 0
        if resume and files.has_checkpoint():
            start = load_training_state(files.checkpoint, model, ema, opt, rand, cfg, may_differ)
        files.start(start)
        rand.check_ranks(ranks)
        # after loading: DDP starts from the (equal) weights of every rank
        net, rows = acc.network(
            model,
            ranks,
            cfg.batch_size,
            channels_last=cfg.channels_last,
            compile=cfg.compile,
            compile_mode=cfg.compile_mode,
        )
        params = list(model.parameters())  # the objects the optimiser and the EMA hold
        return cls(model, net, rows, params, opt, ema, rand, files, cfg, ranks, start)

    def step(self, step: int, loss_fn: LossFn, sample_data: Callable) -> float:
        """One optimiser step; returns its loss (the mean over every rank's rows)."""
        cfg, rand, files, opt = self.cfg, self.rand, self.files, self.opt
        self.lr = cfg.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = self.lr
        # the checkpoint of step k is written in step k once its loss is known finite, so
        # every checkpoint kept is one a lower learning rate can continue from
        due = (
            files.checkpoint is not None and step > self.start and step % cfg.checkpoint_every == 0
        )
        rng = rand.state() if due else None
        batch = sample_data(cfg.batch_size, rand.data)
        if rand.resident:
            batch = batch.to(rand.device, non_blocking=True)
        with acc.step_context(rand, cfg.precision):
            per = loss_fn(self.net, batch, rand.objective, step)
        if self.rows is None:
            loss = per.mean()
            value = float(loss.detach())
        else:  # this rank's rows; DDP averages the gradients, the value over ranks
            loss = per[self.rows].mean()
            value = self.ranks.mean(loss)
        if not math.isfinite(value):
            raise files.diverged(value, step, cfg.lr)
        if due:
            files.save(step, self.model, self.ema, opt, rng, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.ranks is not None and step == self.start:
            self._check_synced()
        norm = None
        if cfg.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        opt.step()
        self.ema.update(self.model, step)
        # read once the update is queued: on an accelerator the host does not wait for it
        self.grad_norm = float("nan") if norm is None else float(norm)
        return value

    def _check_synced(self) -> None:
        """Every rank holds the same gradient after the first backward: a loss that ran the
        network outside the DistributedDataParallel module (``model.module``) would leave each
        rank its own, and the ranks would drift apart silently."""
        grads = [p.grad.reshape(-1) for p in self.params if p.grad is not None]
        if grads and not self.ranks.equal_everywhere(torch.cat(grads)):
            raise RuntimeError(
                "the gradients differ across ranks after the all-reduce: the loss ran the "
                "network outside DistributedDataParallel (the net it was given, not its module)"
            )

    def finish_step(self, done: int, record: dict, t0: float) -> None:
        """Log the metrics of step ``done`` when due, and write the last step's checkpoint."""
        files, cfg = self.files, self.cfg
        if files.metrics is not None and (done % cfg.log_every == 0 or done == cfg.steps):
            record["seconds"] = time.perf_counter() - t0
            files.log(record)
        if done == cfg.steps and files.checkpoint is not None:
            files.save(done, self.model, self.ema, self.opt, self.rand.state(), cfg)


def save_training_state(
    path, model, ema, opt, rng: dict[str, Tensor], step: int, cfg: TrainConfig
) -> None:
    """Write the state to continue from at ``step``: weights, EMA, Adam, the generators' states
    ``rng`` (as they were when step ``step`` began, :meth:`Randomness.state`) and the settings."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt_tensors, opt_meta = ckpt.optimizer_tensors(opt)
    tensors.update(opt_tensors)
    tensors.update(rng)
    ckpt.save(path, tensors, {"step": step, "optimizer": opt_meta, "train": asdict(cfg)})


def load_training_state(
    path,
    model,
    ema,
    opt,
    rand: acc.Randomness,
    cfg: TrainConfig,
    may_differ: frozenset[str] = frozenset(),
) -> int:
    """Restore model, EMA, optimiser and generators from ``path``; returns its step. Settings
    that shape the trajectory must equal the checkpoint's (but those in ``may_differ``); a
    checkpoint that does not fit the model raises :class:`RunFolderError` naming it."""
    tensors, meta = ckpt.load(path)
    saved = meta.get("train", {})
    for key in ("seed", "batch_size", "lr", "warmup", "decay", "ema_decay", "grad_clip"):
        if key in saved and saved[key] != getattr(cfg, key) and key not in may_differ:
            raise RunFolderError(
                f"cannot resume {path}: it was trained with {key} = {saved[key]!r}, now "
                f"{getattr(cfg, key)!r}; use the same settings or a new output folder"
            )
    try:
        model.load_state_dict(ckpt.split(tensors, "model"))
        ema.load_state_dict(ckpt.split(tensors, "ema"))
        own = acc.implementation(opt)
        ckpt.load_optimizer(opt, tensors, meta["optimizer"])
        acc.restore_implementation(opt, own)
        rand.load(tensors, path)
        return int(meta["step"])
    except RunFolderError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunFolderError(
            f"{path} does not fit the run's model and settings ({first}): restore the run's "
            "own checkpoint, or train into a new folder"
        ) from e


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the metric lines up to ``step`` (the checkpoint resumed from; 0 when fresh).

    A line that is not a JSON record, such as the torn last line of a write cut short by a
    crash or power loss, is dropped with a :class:`RuntimeWarning` naming the file.
    """
    if not path.exists():
        return
    keep, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            ok = isinstance(rec, dict) and isinstance(rec.get("step"), int)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            bad += bool(line.strip())
        elif rec["step"] <= step:
            keep.append(line)
    if bad:
        warnings.warn(
            f"{path}: dropped {bad} unreadable line{'s' * (bad > 1)} (a write cut short?)",
            RuntimeWarning,
            stacklevel=2,
        )
    write_text(path, "".join(k + "\n" for k in keep))


def load_weights(path: str | Path, *, ema: bool = True) -> dict[str, Tensor]:
    """The model weights of a checkpoint (EMA weights by default), for sampling."""
    tensors, _ = ckpt.load(path)
    return ckpt.split(tensors, "ema" if ema else "model")


__all__ = [
    "BatchStream",
    "LossFn",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "load_weights",
    "train",
]
