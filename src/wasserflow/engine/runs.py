"""Run folders: train a method on a data source, reload it, sample it with its own settings.

A run folder holds ``config.json`` (the :class:`~wasserflow.engine.config.RunConfig`),
``checkpoint.safetensors``, ``metrics.jsonl`` and the ``history.jsonl`` of settings changed on
resume; a rectified flow with reflow adds ``reflow-<k>/`` stages. Its life (lock, resume,
changes) is :mod:`.folder`'s.

    cfg = make_config("otcfm", "moons", steps=2000)
    train_run(cfg, "runs/otcfm")
    run = load_run("runs/otcfm")
    res = run.sample(2000, nfe=2, generator=torch.Generator().manual_seed(0))

Every trained run, network-trained or fitted block by block (the JKO flow), is a
:class:`TrainedRun`: its model is driven by registered samplers through the same
``sample`` call, with the grid its sampler's policy makes from the run's
:class:`~wasserflow.samplers.SamplingContext`. In a process group (torchrun) every rank
samples the one-process trajectory with the network's evaluations split over the ranks
(:class:`~wasserflow.engine.distributed.RowGather`): every rank gets the same samples.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import errors
from ..data import DataSource
from ..errors import InputError, Interrupted, RunFolderError, TrainingDiverged
from ..models import WithLabels, place, resolve_device
from ..objectives import TeacherSpec, TrainResult, drop_labels, objective_spec
from ..paths import LabelledBatch
from ..samplers import Field, SamplingContext, get_sampler
from . import build, distributed, folder, teachers
from . import checkpoint as ckpt
from .build import DataFn
from .config import RunConfig, load_config
from .distributed import Ranks
from .loop import load_weights, train, truncate_metrics
from .model import GenerativeModel

Progress = Callable[[str, int, dict], None]


def _complete(stage: Path, steps: int) -> bool:
    step = folder.checkpoint_step(stage)
    return step is not None and step >= steps


def _new_run(cfg: RunConfig, changes: Mapping[str, Any] | None) -> tuple[RunConfig, DataSource]:
    """A new run's validated, data-fitted config and its data source (nothing is written)."""
    if changes:
        cfg = cfg.with_overrides(dict(changes))
    src = _checked_source(cfg)
    return build.finalise(cfg, src), src


def _checked_source(cfg: RunConfig) -> DataSource:
    """Build the run's parts and its data source, and check that they fit together."""
    build.validate(cfg)
    src = build.source(cfg)
    if cfg.model is not None and tuple(src.shape) != tuple(cfg.model.shape):
        raise InputError(
            f"the model is configured for data of shape {list(cfg.model.shape)} but "
            f"{cfg.data.spec} has shape {list(src.shape)}"
        )
    return src


def train_run(
    cfg: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    changes: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    device: str = "cpu",
    ranks: Ranks | None = None,
) -> list[TrainResult]:
    """Train the run described by ``cfg`` (see :func:`build.make_config`) into the folder ``out``.

    A new run (``resume`` False) is refused where ``out`` holds a trained run (a stage with a
    checkpoint); a config.json alone, left by a start stopped before its first checkpoint, is
    replaced. With ``resume`` the run in ``out`` continues from its own config.json and last
    checkpoint (``cfg`` starts one where ``out`` holds none); ``changes`` sets keys of
    :data:`folder.RESUMABLE` (steps, learning rate) from there on, each recorded in
    history.jsonl. Everything is validated and the model built before anything is written,
    and the folder is written only under its lock (:func:`folder.writing`: a second writer
    gets :class:`RunInUse`). ``device`` runs the network there (the JKO flow always fits on
    the CPU in float64). Ctrl-C raises :class:`Interrupted` saying where the last checkpoint
    is; a NaN loss raises :class:`TrainingDiverged` saying how to resume at a lower rate.

    In a process group (``ranks``, by default :func:`distributed.current`: a torchrun launch)
    the run is trained data-parallel with the one-process objective (:mod:`.distributed`):
    rank 0 prepares and writes the folder and sends the final config to the other ranks, which
    read nothing but the checkpoint to resume from (``out`` must be on a filesystem every rank
    sees). Objectives without a data-parallel version (the JKO flow, Energy Matching) train in
    one process only.
    """
    out = Path(out)
    resolve_device(device)  # before anything is written
    if ranks is None:
        ranks = distributed.current(device)
    if changes and not resume:
        raise ValueError("changes apply to a resumed run: pass resume=True")
    if ranks is not None and not ranks.main:
        return _follow(out, ranks, progress, device)
    tell = _Teller(ranks)
    try:
        prepared = None
        if not (resume and (out / folder.CONFIG).exists()):
            prepared = _new_run(cfg, changes)
            _check_ranks(prepared[0], ranks)
        with folder.writing(out):
            cfg, src = _open_folder(out, cfg, resume, changes, prepared, ranks)
            may_differ = folder.changed_train_settings(out)
            tell({"config": cfg.to_dict(), "may_differ": sorted(may_differ)})
            return _train_in_folder(_Job(cfg, out, src, progress, device, may_differ, ranks))
    except BaseException as e:
        tell(
            {
                "error": str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__,
                "kind": type(e).__name__,
            }
        )
        raise


class _Teller:
    """Sends rank 0's first word (the config, or the error that stopped it) to the other ranks,
    once; nothing without a process group."""

    def __init__(self, ranks: Ranks | None):
        self.ranks, self.told = ranks, False

    def __call__(self, msg: dict) -> None:
        if self.ranks is not None and not self.told:
            self.told = True
            self.ranks.broadcast_json(msg)


def _open_folder(
    out: Path,
    cfg: RunConfig,
    resume: bool,
    changes: Mapping[str, Any] | None,
    prepared: tuple[RunConfig, DataSource] | None,
    ranks: Ranks | None,
) -> tuple[RunConfig, DataSource]:
    """Under the folder's lock: the stored run with its changes recorded (``resume``), or the
    new run's config written (a trained run is refused)."""
    cfg_path = out / folder.CONFIG
    if not resume and folder.trained(out):
        raise RunFolderError(
            f"{out} already holds a run: pass --resume to continue it, or choose "
            "a new output folder"
        )
    if resume and cfg_path.exists():
        cfg = load_config(cfg_path)
        cfg, diff = folder.with_changes(out, cfg, changes or {})
        src = _checked_source(cfg)
        _check_ranks(cfg, ranks)
        folder.record(out, cfg, diff)
        return cfg, src
    cfg, src = prepared or _new_run(cfg, changes)
    folder.start(out, cfg)
    return cfg, src


def _train_in_folder(job: _Job) -> list[TrainResult]:
    """Train, turning Ctrl-C and a divergence into errors that say how to continue."""
    out, cfg = job.out, job.cfg
    try:
        return _train(job)
    except KeyboardInterrupt as e:
        raise Interrupted(folder.interrupted_message(out, cfg)) from e
    except TrainingDiverged as e:
        raise TrainingDiverged(
            folder.diverged_message(out, e),
            step=e.step,
            checkpoint=e.checkpoint,
            checkpoint_step=e.checkpoint_step,
            lr=e.lr,
        ) from e


def _check_ranks(cfg: RunConfig, ranks: Ranks | None) -> None:
    """What a data-parallel run needs: an objective trained by the batch loop in parallel, a
    batch that splits."""
    if ranks is None:
        return
    if not objective_spec(cfg.objective).data_parallel:
        raise InputError(
            f"method {cfg.method} trains in one process only (no data-parallel version): "
            "run it without torchrun / --nproc"
        )
    distributed.check_batch(cfg.train.batch_size, ranks.world)


def _follow(out: Path, ranks: Ranks, progress: Progress | None, device: str) -> list[TrainResult]:
    """A rank other than 0: train the config rank 0 prepared, writing nothing."""
    msg = ranks.broadcast_json()
    if "error" in msg:
        kind = getattr(errors, msg.get("kind", ""), None)
        if not (isinstance(kind, type) and issubclass(kind, errors.WasserflowError)):
            kind = InputError
        raise kind(f"rank 0 stopped: {msg['error']}")
    cfg = RunConfig.from_dict(msg["config"])
    src = _checked_source(cfg)
    return _train(_Job(cfg, out, src, progress, device, frozenset(msg["may_differ"]), ranks))


def _train(job: _Job) -> list[TrainResult]:
    """Train by the objective's trainer (:meth:`ObjectiveSpec.train`), through the job."""
    return objective_spec(job.cfg.objective).train(job.cfg.objective, job)


class _Job:
    """A run's training job (:class:`~wasserflow.objectives.TrainJob`): its data, the batch
    loop over its stages, and the first stage's checkpoint and metrics log."""

    def __init__(
        self,
        cfg: RunConfig,
        out: Path,
        src: DataSource,
        progress: Progress | None,
        device: str,
        may_differ: frozenset[str],
        ranks: Ranks | None,
    ):
        self.cfg, self.out, self.src, self.device = cfg, out, src, device
        self.progress, self.may_differ, self.ranks = progress, may_differ, ranks
        self.seed = cfg.train.seed
        self.checkpoint_path = out / folder.CHECKPOINT
        self.scaler = build.scaler(cfg)

    def data(self, n: int, generator: torch.Generator) -> Tensor:
        return self.scaler.transform(self.src.sample(n, generator))

    @property
    def num_classes(self) -> int | None:
        return None if self.cfg.condition is None else self.cfg.condition.num_classes

    def labels(self, n: int, generator: torch.Generator) -> Tensor | None:
        cond = self.cfg.condition
        if cond is None:
            return None
        y = self.src.sample_labelled(n, generator)[1]
        return drop_labels(y, cond.num_classes, cond.label_dropout, generator)

    def load_checkpoint(self) -> dict[str, Tensor] | None:
        if not self.checkpoint_path.exists():
            return None
        return ckpt.load(self.checkpoint_path)[0]

    def save_checkpoint(self, tensors: dict[str, Tensor], metadata: dict) -> None:
        ckpt.save(self.checkpoint_path, tensors, metadata)

    def restart(self, step: int) -> None:
        truncate_metrics(self.out / folder.METRICS, step)

    def log(self, step: int, record: dict) -> None:
        with open(self.out / folder.METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.progress is not None:
            self.progress(self.out.name, step, record)

    def teacher(self, spec: TeacherSpec) -> GenerativeModel:
        """The teacher ``spec`` names, or the one trained first in ``teacher/`` (resumed where
        it stopped), checked against this run (:func:`teachers.check_teacher`)."""
        cfg = self.cfg
        if spec.source is None:
            where = self.out / TEACHER
            train_run(
                teacher_config(cfg, spec),
                where,
                resume=True,
                progress=self.progress,
                device=self.device,
                ranks=self.ranks,
            )
            model = load_run(where, self.device, ranks=None)
        else:
            model = teachers.load_teacher(spec, tuple(cfg.model.shape), self.device)
        std = build.build_path(cfg).reference_std
        teachers.check_teacher(model, tuple(cfg.model.shape), std, self.scaler)
        return model

    def train_network(
        self, data: DataFn | None = None, init: Callable[[nn.Module], None] | None = None
    ) -> list[TrainResult]:
        """The batch loop over the run's stages: the first on the data (``data``, or a
        teacher's pairs), each reflow stage on the previous stage's pairs from its (EMA)
        weights; ``init`` sets the built network's first weights (a checkpoint replaces
        them when training resumes)."""
        cfg, progress = self.cfg, self.progress
        stages = folder.stage_dirs(self.out, cfg)
        model = build.build_network(cfg, seed=cfg.train.seed)
        if init is not None:
            init(model)
        model = place(model, self.device)
        results = []
        for k, stage in enumerate(stages):
            if k > 0 and _complete(stage, cfg.train.steps):
                continue
            objective = build.build_objective(cfg, stage=k)
            batches = data if k == 0 and data is not None else self._stage_data(k, stages)
            if k > 0:  # reflow starts from the previous stage's (EMA) weights
                model.load_state_dict(load_weights(stages[k - 1] / folder.CHECKPOINT))
            cb = (lambda s, r, name=stage.name: progress(name, s, r)) if progress else None
            results.append(
                train(
                    model,
                    objective,
                    batches,
                    cfg.train,
                    stage,
                    resume=True,
                    progress=cb,
                    may_differ=self.may_differ,
                    ranks=self.ranks,
                )
            )
        return results

    def _stage_data(self, k: int, stages: list[Path]) -> DataFn:
        """Stage k's batches: the data stream, a teacher's pairs, or the previous stage's."""
        cfg = self.cfg
        if k == 0 and not cfg.reflow.teacher:
            return build.data_stream(cfg, self.src)
        if k == 0:
            pairs = _teacher_pairs(cfg, cfg.train.seed, self.device)
        else:
            pairs = _reflow_pairs(cfg, stages[k - 1], cfg.train.seed + k, self.device, self.ranks)

        def sample_pairs(n: int, g: torch.Generator) -> Tensor:
            return pairs[torch.randint(0, len(pairs), (n,), generator=g)]

        return sample_pairs


TEACHER = "teacher"
"""The folder, inside a run folder, of the teacher a distillation trains first."""


def teacher_config(cfg: RunConfig, spec: TeacherSpec) -> RunConfig:
    """The run of a teacher trained first: ``spec.method``'s recipe on the student's data, data
    scaling, classes (``condition``) and model (its options, without the student's extra
    inputs), with the student's training settings for ``spec.steps`` steps (the student's when
    None)."""
    model = cfg.model
    t = build.make_config(
        spec.method,
        cfg.data.spec,
        scale=cfg.data.scale,
        model=model.name if model else "mlp",
        model_options=dict(model.options) if model else None,
    )
    train = dataclasses.replace(cfg.train, steps=spec.steps or cfg.train.steps)
    return build.with_block_steps(dataclasses.replace(t, train=train, condition=cfg.condition))


def _reflow_pairs(
    cfg: RunConfig, prev: Path, seed: int, device: str = "cpu", ranks: Ranks | None = None
) -> Tensor | LabelledBatch:
    """(N, 2, ...) pairs (noise, flow(noise)) of the previous stage, in training coordinates
    (the same on every rank, which share the flow's evaluations); a class-conditional run's
    pairs are drawn class by class, the classes in the data's proportions, and keep them."""
    run = TrainedRun.from_stage(cfg, prev, device, ranks)
    g = torch.Generator().manual_seed(seed)
    y = _pair_labels(cfg, g)
    res = run.sample(
        cfg.reflow.pairs,
        sampler="euler",
        nfe=cfg.reflow.nfe,
        generator=g,
        data_space=False,
        labels=y,
    )
    pairs = torch.stack([res.start, res.x], dim=1).detach().to(torch.float32)
    return pairs if y is None else LabelledBatch(pairs, y)


def _pair_labels(cfg: RunConfig, g: torch.Generator) -> Tensor | None:
    """The classes of a class-conditional run's reflow pairs: those of ``reflow.pairs`` data
    draws (None for an unconditional run)."""
    if cfg.condition is None:
        return None
    return build.source(cfg).sample_labelled(cfg.reflow.pairs, g)[1]


def _teacher_pairs(cfg: RunConfig, seed: int, device: str = "cpu") -> Tensor:
    """(N, 2, ...) pairs (x0, ODE(x0)) of the teacher run ``cfg.reflow.teacher`` (its
    probability-flow ODE by ``reflow.teacher_sampler`` at ``reflow.nfe`` evaluations), in this
    run's training coordinates: the teacher's noise over its reference std, its samples
    through the data scalings (teacher's out, this run's in)."""
    teacher = load_run(cfg.reflow.teacher, device, ranks=None)
    tc = teacher.config
    if tc.data.spec != cfg.data.spec or teacher.shape != tuple(cfg.model.shape):
        raise InputError(
            f"reflow.teacher {cfg.reflow.teacher} was trained on {tc.data.spec!r} "
            f"{list(teacher.shape)}, this run on {cfg.data.spec!r} {list(cfg.model.shape)}: "
            "train the student on the teacher's data"
        )
    spec = get_sampler(cfg.reflow.teacher_sampler)
    if spec.stochastic:
        raise InputError(
            f"reflow.teacher_sampler {spec.name} is stochastic: the pairs must be the "
            "probability-flow ODE's (use dpm_solver, unipc, heun or euler)"
        )
    if cfg.condition is not None and teacher.num_classes != cfg.condition.num_classes:
        raise InputError(
            f"reflow.teacher {cfg.reflow.teacher} is not class-conditional on this run's "
            f"{cfg.condition.num_classes} classes: train the student without --conditional, "
            "or take a conditional teacher"
        )
    g = torch.Generator().manual_seed(seed)
    y = _pair_labels(cfg, g)
    res = teacher.sample(
        cfg.reflow.pairs,
        sampler=spec.name,
        nfe=cfg.reflow.nfe,
        generator=g,
        data_space=True,
        labels=y,
    )
    std = 1.0 if teacher.path is None else teacher.path.reference_std
    own = build.build_path(cfg).reference_std
    x0 = res.start * (own / std)
    x1 = build.scaler(cfg).transform(res.x.to(torch.float64))
    pairs = torch.stack([x0.reshape(res.x.shape), x1.reshape(res.x.shape)], 1)
    pairs = pairs.to(torch.float32)
    return pairs if y is None else LabelledBatch(pairs, y)


class TrainedRun(GenerativeModel):
    """A trained model with its configuration, sampler defaults and data scaling: a
    :class:`~wasserflow.engine.model.GenerativeModel`.

    ``model`` is what the run's objective trained (:meth:`ObjectiveSpec.load`): a network,
    sampled through :meth:`field` as the objective says, or a model a registered sampler drives
    itself (the JKO flow, inverted by ``jko``). ``ranks``: the process group whose ranks share
    the network's evaluations (module doc; every rank must then sample alike); None: one
    process. A model without a network config (the JKO flow) is sampled whole on every rank.
    A run whose objective adds methods (:attr:`ObjectiveSpec.run_mixin`) is loaded as a
    subclass with them (:func:`run_class`).
    """

    def __init__(self, cfg: RunConfig, model, run_dir: Path, ranks: Ranks | None = None):
        self.config = cfg
        self.ranks = ranks
        self.model = model.eval() if hasattr(model, "eval") else model
        self.run_dir = run_dir
        self.scaler = build.scaler(cfg)
        self.objective_spec = objective_spec(cfg.objective)
        shape = None if cfg.model is None else cfg.model.shape
        self.shape = self.objective_spec.sample_shape(cfg.objective, model, shape)
        self.path = None if cfg.path is None else build.build_path(cfg)

    @classmethod
    def from_stage(
        cls, cfg: RunConfig, stage: Path, device: str = "cpu", ranks: Ranks | None = None
    ) -> TrainedRun:
        """The run trained in the folder ``stage`` (its checkpoint's EMA weights)."""
        spec = objective_spec(cfg.objective)
        model = spec.load(cfg.objective, _Checkpoint(cfg, stage / folder.CHECKPOINT, device))
        return run_class(cls, spec.run_mixin)(cfg, model, stage, ranks)

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def default_sampler(self) -> str:
        return self.config.sampler.name

    @property
    def default_options(self) -> Mapping[str, Any]:
        return self.config.sampler.options

    @property
    def data_spec(self) -> str:
        """The data the run was trained on."""
        return self.config.data.spec

    @property
    def ode_sampler(self) -> str:
        """The deterministic sampler to measure path geometry with (Euler on the
        probability-flow ODE; the objective's own, a JKO flow's inversion)."""
        return self.objective_spec.ode_sampler or self.default_sampler

    def context(self) -> SamplingContext:
        return build.sampling_context(self.config, self.model)

    def velocity_network(self) -> nn.Module | None:
        """The trained network when it is the velocity (``net(x, t)`` on the t clock, the
        objective says: :meth:`ObjectiveSpec.velocity_network`), else None."""
        obj = self.config.objective
        return self.model if self.objective_spec.velocity_network(obj) else None

    @property
    def num_classes(self) -> int | None:
        """K of a class-conditional run (labels in [0, K), K the null class), else None."""
        c = self.config.condition
        return None if c is None else c.num_classes

    def field(self) -> Field | Any:
        """What a sampler drives: the network as a :class:`~wasserflow.samplers.Field` on the t
        clock (its evaluations shared by the ranks), or the model itself (a block flow). A
        class-conditional run's field is its unconditional model (the null class)."""
        if self.num_classes is not None:
            return self.labelled_field(self.num_classes)
        return build.build_field(self.config, self._network())

    def labelled_field(self, labels: Tensor | int) -> Field:
        """The class-conditional network as a Field for rows carrying ``labels`` (n,) (or one
        int for every row; K the null class)."""
        if self.num_classes is None:
            return super().labelled_field(labels)
        return build.build_field(self.config, WithLabels(self._network(), labels))

    def _network(self) -> Any:
        """The model, its evaluations shared by the ranks of a process group."""
        if self.ranks is not None and self.config.model is not None:
            return distributed.RowGather(self.model, self.ranks)
        return self.model


@functools.cache
def run_class(base: type[TrainedRun], mixin: type | None) -> type[TrainedRun]:
    """``base`` with the methods of an objective's run mixin (``base`` itself without one)."""
    if mixin is None:
        return base
    return type(mixin.__name__, (mixin, base), {"__doc__": mixin.__doc__})


class _Checkpoint:
    """A stage's checkpoint as an objective loads it (:class:`~wasserflow.objectives.Checkpoint`)."""

    def __init__(self, cfg: RunConfig, path: Path, device: str):
        self.cfg, self.path, self.device = cfg, path, device

    def tensors(self) -> dict[str, Tensor]:
        return ckpt.load(self.path)[0]

    def network(self) -> torch.nn.Module:
        model = build.build_network(self.cfg, seed=0)
        try:
            model.load_state_dict(load_weights(self.path))
        except RuntimeError as e:
            raise ValueError(
                f"{self.path} does not match its config.json's model ({str(e).splitlines()[0]})"
            ) from e
        return place(model, self.device)


def load_run(out: str | Path, device: str = "cpu", ranks: Ranks | None = None) -> TrainedRun:
    """The trained model of a run folder (its last completed stage, EMA weights); ``device``
    runs the network there, samples come back on the CPU. In a process group (``ranks``, by
    default :func:`distributed.current`: a torchrun launch) the ranks share its sampling
    (:class:`TrainedRun`): call ``sample`` on every rank alike."""
    out = Path(out)
    resolve_device(device)
    if ranks is None:
        ranks = distributed.current(device)
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise ValueError(
            f"{out} is not a wasserflow run folder (no config.json): train one with "
            "'wasserflow train --out DIR'"
        )
    cfg = load_config(cfg_path)
    done = [s for s in folder.stage_dirs(out, cfg) if (s / folder.CHECKPOINT).exists()]
    if not done:
        raise ValueError(f"{out} has no checkpoint yet: training has not saved one")
    return TrainedRun.from_stage(cfg, done[-1], device, ranks)
