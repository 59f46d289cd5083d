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

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import errors
from ..data import DataSource
from ..errors import InputError, Interrupted, RunFolderError, TrainingDiverged
from ..models import place, resolve_device
from ..models.jko_flow import JKOFlow
from ..samplers import Field, SamplingContext, get_sampler
from . import build, distributed, folder
from . import checkpoint as ckpt
from .blockwise import train_jko_flow
from .config import RunConfig, load_config
from .distributed import Ranks
from .loop import TrainResult, load_weights, train
from .results import RunSample
from .sampling import run_plan

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
    sees). The JKO flow and Energy Matching train in one process only.
    """
    out = Path(out)
    resolve_device(device)  # before anything is written
    if ranks is None:
        ranks = distributed.current(device)
    if changes and not resume:
        raise ValueError("changes apply to a resumed run: pass resume=True")
    if ranks is not None and not ranks.main:
        return _follow(out, ranks, progress, device)
    told = False

    def tell(msg: dict) -> None:
        nonlocal told
        if ranks is not None and not told:
            told = True
            ranks.broadcast_json(msg)

    try:
        prepared = None
        if not (resume and (out / folder.CONFIG).exists()):
            prepared = _new_run(cfg, changes)
            _check_ranks(prepared[0], ranks)
        with folder.writing(out):
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
            else:
                cfg, src = prepared or _new_run(cfg, changes)
                folder.start(out, cfg)
            may_differ = folder.changed_train_settings(out)
            tell({"config": cfg.to_dict(), "may_differ": sorted(may_differ)})
            try:
                return _train(cfg, out, src, progress, device, may_differ, ranks)
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
    except BaseException as e:
        tell(
            {
                "error": str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__,
                "kind": type(e).__name__,
            }
        )
        raise


def _check_ranks(cfg: RunConfig, ranks: Ranks | None) -> None:
    """What a data-parallel run needs: a network trained by one loss, a batch that splits."""
    if ranks is None:
        return
    if cfg.blockwise or cfg.energy:
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
    return _train(cfg, out, src, progress, device, frozenset(msg["may_differ"]), ranks)


def _train(
    cfg: RunConfig,
    out: Path,
    src: DataSource,
    progress: Progress | None,
    device: str,
    may_differ: frozenset[str],
    ranks: Ranks | None = None,
) -> list[TrainResult]:
    if cfg.blockwise:
        sc = build.scaler(cfg)
        cb = (lambda s, r: progress(out.name, s, r)) if progress else None
        return [train_jko_flow(cfg, out, lambda n, g: sc.transform(src.sample(n, g)), progress=cb)]
    results = []
    stages = folder.stage_dirs(out, cfg)
    model = place(build.build_network(cfg, seed=cfg.train.seed), device)
    for k, stage in enumerate(stages):
        if k > 0 and _complete(stage, cfg.train.steps):
            continue
        objective = build.build_objective(cfg, stage=k)
        if k == 0 and cfg.reflow.teacher:
            pairs = _teacher_pairs(cfg, cfg.train.seed, device)

            def sample_data(n, g, pairs=pairs):
                return pairs[torch.randint(0, len(pairs), (n,), generator=g)]
        elif k == 0:
            sample_data = build.data_stream(cfg, src)
        else:
            pairs = _reflow_pairs(cfg, stages[k - 1], cfg.train.seed + k, device, ranks)

            def sample_data(n, g, pairs=pairs):
                return pairs[torch.randint(0, len(pairs), (n,), generator=g)]

            # reflow starts from the previous stage's (EMA) weights
            model.load_state_dict(load_weights(stages[k - 1] / folder.CHECKPOINT))
        cb = (lambda s, r, name=stage.name: progress(name, s, r)) if progress else None
        results.append(
            train(
                model,
                objective,
                sample_data,
                cfg.train,
                stage,
                resume=True,
                progress=cb,
                may_differ=may_differ,
                ranks=ranks,
            )
        )
    return results


def _reflow_pairs(
    cfg: RunConfig, prev: Path, seed: int, device: str = "cpu", ranks: Ranks | None = None
) -> Tensor:
    """(N, 2, ...) pairs (noise, flow(noise)) of the previous stage, in training coordinates
    (the same on every rank, which share the flow's evaluations)."""
    run = TrainedRun.from_stage(cfg, prev, device, ranks)
    g = torch.Generator().manual_seed(seed)
    res = run.sample(
        cfg.reflow.pairs, sampler="euler", nfe=cfg.reflow.nfe, generator=g, data_space=False
    )
    return torch.stack([res.start, res.x], dim=1).detach().to(torch.float32)


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
    g = torch.Generator().manual_seed(seed)
    res = teacher.sample(
        cfg.reflow.pairs, sampler=spec.name, nfe=cfg.reflow.nfe, generator=g, data_space=True
    )
    std = 1.0 if teacher.path is None else teacher.path.reference_std
    own = build.build_path(cfg).reference_std
    x0 = res.start * (own / std)
    x1 = build.scaler(cfg).transform(res.x.to(torch.float64))
    return torch.stack([x0.reshape(res.x.shape), x1.reshape(res.x.shape)], 1).to(torch.float32)


class TrainedRun:
    """A trained model with its configuration, sampler defaults and data scaling.

    ``model`` is the network (sampled through :meth:`field`) or, for a run fitted block by
    block, the :class:`~wasserflow.models.JKOFlow` itself (its own registered sampler ``jko``
    inverts the blocks). ``ranks``: the process group whose ranks share the network's
    evaluations (module doc; every rank must then sample alike); None: one process. A JKO
    flow is inverted whole on every rank.
    """

    def __init__(self, cfg: RunConfig, model, run_dir: Path, ranks: Ranks | None = None):
        self.config = cfg
        self.ranks = ranks
        self.model = model.eval() if hasattr(model, "eval") else model
        self.run_dir = run_dir
        self.scaler = build.scaler(cfg)
        self.shape = tuple(cfg.model.shape) if cfg.model else (model.dim,)
        self.path = None if cfg.blockwise else build.build_path(cfg)

    @classmethod
    def from_stage(
        cls, cfg: RunConfig, stage: Path, device: str = "cpu", ranks: Ranks | None = None
    ) -> TrainedRun:
        path = stage / "checkpoint.safetensors"
        if cfg.blockwise:
            try:
                return cls(cfg, JKOFlow.from_tensors(ckpt.load(path)[0]), stage, ranks)
            except (KeyError, RuntimeError, TypeError) as e:
                raise RunFolderError(f"{path} is not a JKO-flow checkpoint ({e})") from e
        model = build.build_network(cfg, seed=0)
        try:
            model.load_state_dict(load_weights(path))
        except RuntimeError as e:
            raise ValueError(
                f"{path} does not match its config.json's model ({str(e).splitlines()[0]})"
            ) from e
        return cls(cfg, place(model, device), stage, ranks)

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def default_sampler(self) -> str:
        return self.config.sampler.name

    @property
    def ode_sampler(self) -> str:
        """The deterministic sampler to measure path geometry with (Euler on the
        probability-flow ODE; a JKO flow's own inversion)."""
        return self.default_sampler if self.config.blockwise else "euler"

    def context(self) -> SamplingContext:
        steps = self.model.times().flip(0) if self.config.blockwise else None
        return build.sampling_context(self.config, steps)

    def field(self) -> Field | JKOFlow:
        """What a sampler drives: the network as a :class:`~wasserflow.samplers.Field` on the t
        clock, or the block flow itself."""
        if self.config.blockwise:
            return self.model
        net = self.model if self.ranks is None else distributed.RowGather(self.model, self.ranks)
        return build.build_field(self.config, net)

    def supports(self, sampler: str) -> bool:
        """Whether ``sampler`` can drive this run (:meth:`SamplerSpec.check`)."""
        return get_sampler(sampler).supports(self.context())

    def budgets(self, nfes: list[int | None], sampler: str | None = None) -> list[int | None]:
        """The NFE budgets of ``nfes`` that ``sampler`` (default: the run's) can take here."""
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
    ) -> RunSample:
        """n samples with ``sampler`` (default: the method's) at about ``nfe`` evaluations."""
        name = sampler or self.default_sampler
        spec = get_sampler(name)
        opts = dict(self.config.sampler.options) if name == self.default_sampler else {}
        plan = spec.make_plan(nfe, self.context(), {**opts, **(options or {})})
        std = 1.0 if self.path is None else self.path.reference_std
        x0 = std * torch.randn((n, *self.shape), generator=generator, dtype=torch.float64)
        return run_plan(
            spec,
            self.field(),
            x0,
            plan,
            generator=generator,
            return_trajectory=return_trajectory,
            scaler=self.scaler if data_space else None,
        )


class JKOFlowRun(TrainedRun):
    """A trained JKO flow: a :class:`TrainedRun` with its exact log-density."""

    @property
    def flow(self) -> JKOFlow:
        return self.model

    @property
    def blocks(self) -> int:
        return len(self.model.maps)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact model log-density at data-space points x (the data scaling's Jacobian included)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        y = self.scaler.transform(x).reshape(x.shape[0], -1).to(torch.float64)
        return self.model.log_prob(y) + self.scaler.log_abs_det(x.shape[1:])


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
    cls = JKOFlowRun if cfg.blockwise else TrainedRun
    return cls.from_stage(cfg, done[-1], device, ranks)
