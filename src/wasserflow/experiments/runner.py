"""Run experiments into a run folder, resumably, writing the report after each one.

Run folder layout::

    config.json          the resolved config (a rerun must resolve to the same one)
    environment.json     versions, seed, device, wall times
    results/<name>.json  one atomic JSON per finished experiment (reused by a rerun)
    results.json         every number of every finished experiment
    report.md, report.html, figures/*.png
    runs/<data>/<method> the trained models of ``learned`` (resumable checkpoints)

Ctrl-C (KeyboardInterrupt) inside an experiment leaves the finished ones and a report marking
the rest as not run; rerunning the same command resumes.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

from .. import _atomic
from . import denoise_jko, free_energy_exp, learned, paths_exp, report, steps
from .config import EXPERIMENTS, config_difference
from .context import Context, ExperimentResult

RUNNERS: dict[str, Callable[[Context], ExperimentResult]] = {
    "paths": paths_exp.run,
    "learned": learned.run,
    "steps": steps.run,
    "free-energy": free_energy_exp.run,
    "denoise-jko": denoise_jko.run,
}
REQUIRES = {"steps": ("learned",)}


def select(names: list[str] | None) -> list[str]:
    """The experiments to run, with their prerequisites, in run order."""
    if not names:
        return list(EXPERIMENTS)
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad:
        raise ValueError(
            f"unknown experiment(s) {', '.join(bad)}: choose from {', '.join(EXPERIMENTS)}"
        )
    want = set(names)
    for n in names:
        want.update(REQUIRES.get(n, ()))
    return [n for n in EXPERIMENTS if n in want]


def prepare(out: Path, config: dict) -> None:
    """Create the run folder or check that it holds a run of the same config."""
    cfg_path = out / "config.json"
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{cfg_path} is not valid JSON ({e}): delete the folder or choose another --out"
            ) from e
        diff = config_difference(old, config)
        if diff:
            raise ValueError(
                f"{out} holds a reproduce run with a different configuration "
                f"({diff}): rerun with the same options to resume, or pass a new "
                "--out (or delete the folder) to start afresh"
            )
    else:
        _atomic.write_json(cfg_path, config)


def load_finished(out: Path) -> dict[str, ExperimentResult]:
    done = {}
    for name in EXPERIMENTS:
        p = out / "results" / f"{name}.json"
        if p.exists():
            done[name] = ExperimentResult.from_dict(json.loads(p.read_text()))
    return done


def _environment(ctx: Context, walls: dict[str, float], status: str) -> dict:
    import matplotlib
    import numpy
    import ot
    import scipy
    import torch

    from .. import __version__

    return {
        "wasserflow": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pot": ot.__version__,
        "matplotlib": matplotlib.__version__,
        "device": ctx.device,
        # the learned models' networks run on ctx.device; everything else on the CPU
        "network_device": ctx.device,
        "torch_threads": torch.get_num_threads(),
        "seed": ctx.seed,
        "profile": ctx.config["profile"],
        "wall_seconds": walls,
        "status": status,
    }


def reproduce(
    out: str | Path,
    config: dict,
    *,
    experiments: list[str] | None = None,
    device: str = "cpu",
    progress: Callable[[str, str, float], None] | None = None,
) -> dict[str, ExperimentResult]:
    """Run ``experiments`` (default: all) into ``out``; skip those already finished there.

    ``progress(experiment, detail, fraction)`` is called as the work advances. Returns every
    finished experiment's result (including earlier runs'). Raises KeyboardInterrupt after
    writing a partial report when interrupted.
    """
    out = Path(out)
    names = select(experiments)
    prepare(out, config)
    ctx = Context(out=out, config=config, device=device)
    ctx.results = load_finished(out)
    env_path = out / "environment.json"
    walls = json.loads(env_path.read_text()).get("wall_seconds", {}) if env_path.exists() else {}
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
            res = RUNNERS[name](ctx)
            res.seconds = time.perf_counter() - t0
            walls[name] = res.seconds
            _atomic.write_json(out / "results" / f"{name}.json", res.to_dict())
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
    return ctx.results


def _write_all(ctx: Context, walls: dict, status: str) -> None:
    results = {n: r.to_dict() for n, r in ctx.results.items()}
    _atomic.write_json(
        ctx.out / "results.json", {"config": ctx.config, "status": status, "experiments": results}
    )
    env = _environment(ctx, walls, status)
    _atomic.write_json(ctx.out / "environment.json", env)
    report.write_report(ctx.out, ctx.config, ctx.results, env)
