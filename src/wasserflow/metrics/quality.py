"""Sample quality and path geometry of a trained run at several NFE budgets.

For each budget: W2 (exact OT) between n generated points and n fresh data points, the NFE the
sampler used, and the geometry of the sampling trajectories (action, geodesic gap against the
exact W2^2 of their own endpoints, normalized path energy, straightness). For stochastic
samplers the trajectory includes the injected noise, whose action grows as the steps shrink:
compare path geometry between deterministic samplers.

A budget is an NFE count, None (the sampler's default, or a model's own fixed steps) or
:data:`ADAPTIVE` (the registered adaptive ODE solver, dopri5, whatever the run's sampler).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from ..data import make_source
from ..geometry import exact_ot, trajectory_geometry
from ..samplers import adaptive_sampler

ADAPTIVE = "adaptive"
Budget = int | str | None


@dataclass(frozen=True)
class Evaluation:
    sampler: str
    nfe_requested: int | None
    nfe: int
    w2: float
    action: float | None
    geodesic_gap: float | None
    normalized_path_energy: float | None
    straightness: float | None
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def fresh_data(run, n: int, seed: int) -> torch.Tensor:
    """n fresh draws of the run's data law, in data space, float64."""
    src = make_source(run.config.data.spec)
    return src.sample(n, torch.Generator().manual_seed(seed)).to(torch.float64).reshape(n, -1)


def evaluate_run(
    run,
    nfes: list[Budget],
    *,
    n: int = 2000,
    seed: int = 0,
    sampler: str | None = None,
    geometry: bool = True,
) -> list[Evaluation]:
    """Evaluate ``run`` (an engine.TrainedRun) at each NFE budget (module doc)."""
    if n < 2:
        raise ValueError("n must be at least 2")
    data = fresh_data(run, n, seed + 1)
    rows = []
    for nfe in nfes:
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        name, k = (adaptive_sampler(), None) if nfe == ADAPTIVE else (sampler, nfe)
        out = run.sample(n, sampler=name, nfe=k, generator=g, return_trajectory=geometry)
        seconds = time.perf_counter() - t0
        x = out.x.reshape(n, -1).to(torch.float64)
        if not torch.isfinite(x).all():
            raise ValueError(
                f"the sampler {out.sampler} diverged at nfe={nfe} (NaN or inf samples)"
            )
        w2 = exact_ot(x, data).w2
        geo = None
        if geometry and out.trajectory is not None and out.times is not None:
            geo = trajectory_geometry(
                out.trajectory.reshape(out.trajectory.shape[0], n, -1), out.times
            )
        rows.append(
            Evaluation(
                sampler=out.sampler,
                nfe_requested=k,
                nfe=out.nfe,
                w2=w2,
                action=geo.action if geo else None,
                geodesic_gap=geo.geodesic_gap if geo else None,
                normalized_path_energy=geo.normalized_path_energy if geo else None,
                straightness=geo.straightness if geo else None,
                seconds=seconds,
            )
        )
    return rows
