"""Training a report's model with progress lines, resumably (shared by ``learned`` and
``images``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..engine import RunConfig, load_run, make_config, train_run
from ..engine.build import with_block_steps
from ..objectives import objective_spec
from .context import Context


@dataclass(frozen=True)
class MLPBudget:
    """The training budget of a profile that trains MLPs (``learned``, ``paths.learned``)."""

    steps: int
    warmup: int
    width: int
    depth: int
    batch_size: int
    lr: float


def train_and_load(
    ctx: Context, rc: RunConfig, run_dir: Path, label: str, frac: tuple[float, float]
):
    """Train ``rc`` into ``run_dir`` (resuming what is there) while reporting progress within
    the experiment's fraction ``frac`` (training takes its first 70 %), then load it.
    Returns (the run, training seconds)."""
    lo, hi = frac
    total = rc.train.steps * rc.stages
    every = max(1, min(25, total // 40))  # progress lines, also for a few JKO blocks
    done = 0

    def progress(stage: str, step: int, record: dict) -> None:
        nonlocal done
        done += 1
        if done % every == 0:
            ctx.report(
                f"{label} ({stage}, step {step})",
                lo + 0.7 * (hi - lo) * min(1.0, done / total),
            )

    t0 = time.perf_counter()
    train_run(rc, run_dir, resume=True, progress=progress, device=ctx.device)
    seconds = time.perf_counter() - t0
    ctx.report(f"{label}: sampling", lo + 0.75 * (hi - lo))
    return load_run(run_dir, device=ctx.device), seconds


def profile_config(method: str, data: str, cfg: MLPBudget, seed: int, overrides: dict) -> RunConfig:
    """The run configuration of ``method`` on ``data`` at a profile's MLP budget, with the
    ``overrides`` the run has (dotted keys; others skipped) and the JKO flow's block steps."""
    rc = make_config(
        method,
        data,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup=cfg.warmup,
        seed=seed,
        width=cfg.width,
        depth=cfg.depth,
    )
    return with_block_steps(rc.with_overrides({k: v for k, v in overrides.items() if rc.has(k)}))


def report_teacher(rc: RunConfig) -> str | None:
    """The method whose report run ``rc`` distils from (a flow-map distillation whose teacher
    would otherwise be trained first with the run's settings), or None."""
    spec = objective_spec(rc.objective)
    if not spec.flow_map:
        return None
    teacher = spec.teacher(rc.objective)
    if teacher is not None and teacher.source is None and teacher.steps is None:
        return teacher.method
    return None


def flow_map_config(rc: RunConfig, steps: int | None, runs: Path) -> RunConfig:
    """``rc`` of a flow-map method (unchanged for any other) with a profile's flow-map ``steps``
    (None: the profile's steps) and, for a distillation whose teacher would be trained first
    with the run's settings, the report's finished run of that method in ``runs`` (the data
    set's run folders) as its teacher instead: the same model, trained once."""
    if not objective_spec(rc.objective).flow_map:
        return rc
    over: dict = {} if steps is None else {"train.steps": steps}
    teacher = report_teacher(rc)
    if teacher is not None and (runs / teacher / "reproduce.json").is_file():
        over["objective.teacher"] = str(runs / teacher)
    return rc.with_overrides(over) if over else rc
