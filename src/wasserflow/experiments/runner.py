"""Run experiments into a run folder, resumably, writing the report after each one.

Run folder layout::

    config.json          the resolved config (a rerun must resolve to the same one)
    environment.json     versions, seed, device, wall times
    results/<name>.json  one atomic JSON per finished experiment (reused by a rerun)
    results.json         every number of every finished experiment
    report.md, report.html, figures/*.png
    runs/<data>/<method> the trained models of ``learned`` (resumable checkpoints)
    seed-<s>/            with several seeds (``full``): one such folder per seed; the files
                         above then hold the results joined over the seeds

Ctrl-C (KeyboardInterrupt) inside an experiment leaves the finished ones and a report marking
the rest as not run (:class:`~wasserflow.errors.Interrupted` names it); rerunning the same
command resumes. The folder is written under its lock (:mod:`wasserflow._lock`).
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import _atomic
from .._lock import folder_lock
from .._outputs import output_folder
from ..errors import Interrupted
from . import report
from .config import ReproduceConfig, config_difference
from .context import Context, ExperimentResult
from .records import to_json
from .registry import EXPERIMENTS, select
from .spread import across_seeds
from .workers import check_workers


def prepare(out: Path, config: ReproduceConfig) -> None:
    """Create the run folder or check that it holds a run of the same config."""
    cfg_path = out / "config.json"
    if not cfg_path.exists():
        _atomic.write_json(cfg_path, config.to_json())
        return
    try:
        old = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(
            f"{cfg_path} is not valid JSON ({e}): delete the folder or choose another --out"
        ) from e
    if not isinstance(old, dict) or "profile" not in old:
        raise ValueError(
            f"{cfg_path} is not the config of a reproduce run: delete the folder or "
            "choose another --out"
        )
    try:
        stored = ReproduceConfig.from_json(old).to_json()
    except ValueError as e:
        raise ValueError(
            f"{cfg_path} was written by another version of wasserflow ({e}): pass a new --out "
            "(or delete the folder) to start afresh"
        ) from e
    diff = config_difference(stored, config.to_json())
    if diff:
        raise ValueError(
            f"{out} holds a reproduce run with a different configuration "
            f"({diff}): rerun with the same options to resume, or pass a new "
            "--out (or delete the folder) to start afresh"
        )


def _read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None (with a warning) if it is damaged."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        warnings.warn(f"{path} is damaged ({e}): it is ignored", RuntimeWarning, stacklevel=2)
        return None
    return data if isinstance(data, dict) else None


def load_finished(out: Path) -> dict[str, ExperimentResult]:
    """The experiments finished in ``out`` (a damaged result file counts as not finished)."""
    done = {}
    for name in EXPERIMENTS:
        p = out / "results" / f"{name}.json"
        data = _read_json(p) if p.exists() else None
        if data is not None:
            try:
                done[name] = ExperimentResult.from_dict(data)
            except (ValueError, TypeError):
                warnings.warn(f"{p} is not a result: it is ignored", RuntimeWarning, stacklevel=2)
    return done


def _environment(ctx: Context, walls: dict[str, float], status: str) -> report.Environment:
    import matplotlib
    import numpy
    import ot
    import scipy
    import torch

    from .. import __version__

    return report.Environment(
        wasserflow=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        torch=torch.__version__,
        numpy=numpy.__version__,
        scipy=scipy.__version__,
        pot=ot.__version__,
        matplotlib=matplotlib.__version__,
        device=ctx.device,
        # the learned models' networks run on ctx.device; everything else on the CPU
        network_device=ctx.device,
        torch_threads=torch.get_num_threads(),
        workers=ctx.workers,
        seed=ctx.seed,
        profile=ctx.config.profile,
        wall_seconds=walls,
        status=status,
    )


def reproduce(
    out: str | Path,
    config: ReproduceConfig,
    *,
    experiments: list[str] | None = None,
    device: str = "cpu",
    progress: Callable[[str, str, float], None] | None = None,
    workers: int = 1,
) -> dict[str, ExperimentResult]:
    """Run ``experiments`` (default: all) into ``out``; skip those already finished there.

    ``progress(experiment, detail, fraction)`` is called as the work advances. Returns every
    finished experiment's result (including earlier runs'). ``out`` is checked writable before
    any work and written under its lock (a second reproduce into it is refused, naming the
    first's pid). When interrupted, raises :class:`~wasserflow.errors.Interrupted` (a
    KeyboardInterrupt) naming the partial report it wrote.

    With ``config.seeds > 1`` each experiment runs once per seed, each seed in its own folder
    ``out/seed-<s>`` (a complete one-seed run folder, resumable like this one), and ``out``
    holds the results joined over the seeds (:func:`.spread.across_seeds`): the verdict holds
    where it holds on every seed, with the spread of the numbers it compares.

    ``workers``: how many processes an experiment may train its models in at once
    (:mod:`.workers`; 1: this process alone; ``wasserflow reproduce`` passes one per core on
    the CPU, :func:`.workers.default_workers`). Workers are spawned, so a script that asks for
    several calls this under ``if __name__ == "__main__":``.
    """
    out = Path(out)
    workers = check_workers(workers)
    names = select(experiments)
    output_folder(out)
    with folder_lock(out):
        prepare(out, config)
        runs = [_SeedRun(ctx) for ctx in _contexts(out, config, device, workers)]
        try:
            _run(out, config, runs, names, progress)
        except KeyboardInterrupt as e:
            done = sum(all(n in r.ctx.results for r in runs) for n in names)
            raise Interrupted(
                f"interrupted: {done} of {len(names)} experiments finished; the partial "
                f"report is {out / 'report.html'}; rerun the same command to resume"
            ) from e
    return runs[0].ctx.results if len(runs) == 1 else _joined(out, runs)


@dataclass
class _SeedRun:
    """One seed's run folder (its context, with the results finished there) and the wall
    seconds of its experiments."""

    ctx: Context
    walls: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        env_path = self.ctx.out / "environment.json"
        env = _read_json(env_path) if env_path.exists() else None
        self.walls = dict((env or {}).get("wall_seconds", {}))


def _contexts(out: Path, config: ReproduceConfig, device: str, workers: int) -> list[Context]:
    """The run's one context (one seed: ``out`` itself) or one per seed folder."""
    if config.seeds == 1:
        ctxs = [Context(out=out, config=config, device=device, workers=workers)]
    else:
        ctxs = []
        for seed in config.seed_list:
            sub, cfg = out / f"seed-{seed}", config.single(seed)
            output_folder(sub)
            prepare(sub, cfg)
            ctxs.append(Context(out=sub, config=cfg, device=device, workers=workers))
    for ctx in ctxs:
        ctx.results = load_finished(ctx.out)
    return ctxs


def _run(out: Path, config: ReproduceConfig, runs: list[_SeedRun], names, progress) -> None:
    status = "complete"
    try:
        for name in names:
            for i, run in enumerate(runs):
                _run_one(run, name, _seed_progress(progress, name, i, len(runs), run.ctx.seed))
            if len(runs) > 1:
                _write_joined(out, config, runs, "partial")
            if progress:
                progress(name, "done", 1.0)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        for run in runs:
            st = status
            if st == "complete" and any(n not in run.ctx.results for n in EXPERIMENTS):
                st = "partial"
            _write_all(run.ctx, run.walls, st)
        if len(runs) > 1:
            _write_joined(out, config, runs, status)


def _seed_progress(progress, name: str, i: int, n: int, seed: int):
    """``progress`` for seed ``i`` of ``n`` of experiment ``name`` (its share of the bar)."""
    if progress is None or n == 1:
        return progress
    return lambda _, detail, frac: progress(
        name, f"seed {seed} ({i + 1} of {n}): {detail}", (i + frac) / n
    )


def _run_one(run: _SeedRun, name: str, progress) -> None:
    """Run experiment ``name`` in one seed's folder unless it finished there earlier."""
    ctx = run.ctx
    if name in ctx.results:
        if progress:
            progress(name, "finished earlier (skipped)", 1.0)
        return
    if progress:
        ctx.progress = lambda detail, frac: progress(name, detail, frac)
        progress(name, "starting", 0.0)
    t0 = time.perf_counter()
    res = EXPERIMENTS[name].run(ctx)
    res.seconds = time.perf_counter() - t0
    run.walls[name] = res.seconds
    _atomic.write_json(ctx.out / "results" / f"{name}.json", res.to_dict())
    ctx.results[name] = res
    _write_all(ctx, run.walls, "partial")


def _joined(out: Path, runs: list[_SeedRun]) -> dict[str, ExperimentResult]:
    """Each experiment finished on every seed, joined over the seeds."""
    seeds = [r.ctx.seed for r in runs]
    folders = [r.ctx.out.relative_to(out).as_posix() for r in runs]
    return {
        name: across_seeds(seeds, [r.ctx.results[name] for r in runs], folders)
        for name in EXPERIMENTS
        if all(name in r.ctx.results for r in runs)
    }


def _write_joined(out: Path, config: ReproduceConfig, runs: list[_SeedRun], status: str) -> None:
    """results.json, environment.json and the report of a run over several seeds."""
    joined = _joined(out, runs)
    if status == "complete" and len(joined) < len(EXPERIMENTS):
        status = "partial"
    walls = {n: sum(r.walls.get(n, 0.0) for r in runs) for n in joined}
    ctx = replace(runs[0].ctx, out=out, config=config, results=joined, progress=None)
    _atomic.write_json(
        out / "results.json",
        {
            "config": config.to_json(),
            "status": status,
            "seeds": list(config.seed_list),
            "experiments": {n: r.to_dict() for n, r in joined.items()},
        },
    )
    env = _environment(ctx, walls, status)
    _atomic.write_json(out / "environment.json", to_json(env))
    report.write_report(out, config, joined, env)


def _write_all(ctx: Context, walls: dict, status: str) -> None:
    results = {n: r.to_dict() for n, r in ctx.results.items()}
    _atomic.write_json(
        ctx.out / "results.json",
        {"config": ctx.config.to_json(), "status": status, "experiments": results},
    )
    env = _environment(ctx, walls, status)
    _atomic.write_json(ctx.out / "environment.json", to_json(env))
    report.write_report(ctx.out, ctx.config, ctx.results, env)
