"""The learned side of ``paths``: trained flows and a diffusion model on ``gmm2d``, whose
probability-flow ODE marginals meet the grid Benamou-Brenier geodesic.

The oracle paths of :mod:`.paths_exp` answer "which path is the geodesic" with exact fields; this
module asks the paper's open question of trained models: how close do a flow-matching ODE's
marginals rho_t stay to the Benamou-Brenier geodesic between the same densities? Each method of
the profile's ``paths.learned.methods`` trains on ``gmm2d`` (resumably, under
``<out>/runs/paths-gmm2d/<method>``), then samples from N(0, I) with its deterministic ODE
sampler, and the frames at t = 1/4, 1/2, 3/4 are compared with the grid geodesic by
:func:`.paths_grid.grid_geodesic_comparison`, like the oracle paths' particles. Minibatch-OT
training (OT-CFM, Tong et al. 2023) and reflow (rectified flow, Liu et al. 2023) couple noise
and data nearly as the Brenier map does, so their marginals should sit near the McCann
interpolant; independent pairs (I-CFM) and the VP diffusion path pass elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .context import Context
from .learned import family
from .training import MLPBudget, profile_config, train_and_load
from .workers import run_jobs

DATA = "gmm2d"


@dataclass(frozen=True)
class PathsLearnedProfile(MLPBudget):
    """The methods trained on gmm2d, their MLP budget, the ODE's NFE, and the reflow pairs."""

    methods: tuple[str, ...]
    nfe: int
    reflow_pairs: int
    reflow_nfe: int


@dataclass(frozen=True)
class LearnedPath:
    """What the report says of a trained model beside its W2 to the grid geodesic."""

    method: str
    family: str
    sampler: str
    nfe: int
    train_seconds: float


@dataclass(frozen=True)
class LearnedTrajectory:
    """A trained model's ODE trajectories: (F, n, 2) and their F times, float64."""

    traj: torch.Tensor
    times: torch.Tensor
    info: LearnedPath


def learned_trajectories(
    ctx: Context, cfg: PathsLearnedProfile, n: int, frac: tuple[float, float]
) -> dict[str, LearnedTrajectory]:
    """Train each method of ``cfg`` (the profile's ``paths.learned``) on gmm2d and sample n
    ODE trajectories from N(0, I), keyed "<method> (learned)"; in ``ctx.workers`` processes
    at once (:mod:`.workers`), within the experiment's progress fraction ``frac``."""
    lo, hi = frac

    def within(detail: str, f: float) -> None:
        ctx.report(detail, lo + (hi - lo) * f)

    jobs = [_Job(m, i, cfg, n) for i, m in enumerate(cfg.methods)]
    labels = [f"{DATA}: training {m} for the grid geodesic" for m in cfg.methods]
    sub = replace(ctx, progress=within if ctx.progress is not None else None)
    return {
        f"{j.method} (learned)": t for j, t in zip(jobs, run_jobs(sub, _trajectory, jobs, labels))
    }


@dataclass(frozen=True)
class _Job:
    """One method (the ``index``-th: its sampling noise stream), its budget, n trajectories."""

    method: str
    index: int
    cfg: PathsLearnedProfile
    n: int


def _trajectory(ctx: Context, job: _Job, frac: tuple[float, float]) -> LearnedTrajectory:
    m, cfg, n = job.method, job.cfg, job.n
    over = {"reflow.pairs": cfg.reflow_pairs, "reflow.nfe": cfg.reflow_nfe}
    rc = profile_config(m, DATA, cfg, ctx.seed, over)
    run, seconds = train_and_load(
        ctx,
        rc,
        ctx.out / "runs" / f"paths-{DATA}" / m,
        f"{DATA}: training {m} for the grid geodesic",
        frac,
    )
    sampler = run.ode_sampler
    s = run.sample(
        n,
        sampler=sampler,
        nfe=cfg.nfe,
        generator=ctx.generator(400 + job.index),
        return_trajectory=True,
    )
    traj = s.trajectory.reshape(s.trajectory.shape[0], n, -1).to(torch.float64)
    if not bool(torch.isfinite(traj).all()):
        raise ValueError(
            f"the {m} model trained on {DATA} sampled non-finite points; lower the "
            "profile's paths.learned.lr or raise its steps"
        )
    info = LearnedPath(m, family(run.config), sampler, s.nfe, seconds)
    return LearnedTrajectory(traj, s.times.to(torch.float64), info)
