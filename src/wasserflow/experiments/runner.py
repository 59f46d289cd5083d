"""Run experiments into a run folder, resumably, writing the report after each one.

Run folder layout::

    config.json          the resolved config (a rerun must resolve to the same one)
    environment.json     versions, seed, device, wall times
    results/<name>.json  one atomic JSON per finished experiment (reused by a rerun)
    results.json         every number of every finished experiment
    report.md, report.html, figures/*.png
    runs/<data>/<method> the trained models of ``learned`` (resumable checkpoints)

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
) -> dict[str, ExperimentResult]:
    """Run ``experiments`` (default: all) into ``out``; skip those already finished there.

    ``progress(experiment, detail, fraction)`` is called as the work advances. Returns every
    finished experiment's result (including earlier runs'). ``out`` is checked writable before
    any work and written under its lock (a second reproduce into it is refused, naming the
    first's pid). When interrupted, raises :class:`~wasserflow.errors.Interrupted` (a
    KeyboardInterrupt) naming the partial report it wrote.
    """
    out = Path(out)
    names = select(experiments)
    output_folder(out)
    with folder_lock(out):
        prepare(out, config)
        ctx = Context(out=out, config=config, device=device)
        ctx.results = load_finished(out)
        try:
            _run(ctx, names, progress)
        except KeyboardInterrupt as e:
            done = sum(n in ctx.results for n in names)
            raise Interrupted(
                f"interrupted: {done} of {len(names)} experiments finished; the partial "
                f"report is {out / 'report.html'}; rerun the same command to resume"
            ) from e
    return ctx.results


def _run(ctx: Context, names: list[str], progress) -> None:
    env_path = ctx.out / "environment.json"
    env = _read_json(env_path) if env_path.exists() else None
    walls = dict((env or {}).get("wall_seconds", {}))
    status = "complete"
    try:
        for name in names:
            if name in ctx.results:
                if progress:
                    progress(name, "finished earlier (skipped)", 1.0)
                continue
            if progress:
                ctx.progress = lambda detail, frac, name=name: progress(name, detail, frac)
                progress(name, "starting", 0.0)
            t0 = time.perf_counter()
            res = EXPERIMENTS[name].run(ctx)
            res.seconds = time.perf_counter() - t0
            walls[name] = res.seconds
            _atomic.write_json(ctx.out / "results" / f"{name}.json", res.to_dict())
            ctx.results[name] = res
            _write_all(ctx, walls, "partial")
            if progress:
                progress(name, "done", 1.0)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if status == "complete" and any(n not in ctx.results for n in EXPERIMENTS):
            status = "partial"
        _write_all(ctx, walls, status)


def _write_all(ctx: Context, walls: dict, status: str) -> None:
    results = {n: r.to_dict() for n, r in ctx.results.items()}
    _atomic.write_json(
        ctx.out / "results.json",
        {"config": ctx.config.to_json(), "status": status, "experiments": results},
    )
    env = _environment(ctx, walls, status)
    _atomic.write_json(ctx.out / "environment.json", to_json(env))
    report.write_report(ctx.out, ctx.config, ctx.results, env)
