"""Write docs/paths.png, the README's picture: three paths from N(0, I) to the same 2-D mixture.

Each panel moves the same 64 noise points to the mixture ``gmm2d``: along the probability-flow
ODE of the VP diffusion path and of the independent linear path (I-CFM), both with their exact
(oracle) fields, integrated by RK4, and along the OT geodesic (displacement interpolation of
the exact OT plan between the noise and as many samples). Only the last is straight.

    PYTHONPATH=src python scripts/readme_figure.py        # under a minute on one CPU core
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from wasserflow.data import get_mixture
from wasserflow.experiments.figures import Panel, trajectory_panels
from wasserflow.geometry import exact_ot
from wasserflow.paths import AffinePath, LinearSchedule, MixtureOracle, VPSchedule
from wasserflow.samplers import Field, rk4, uniform_grid

N, STEPS = 64, 60
VP_END = 1.0 - 1e-4  # the VP field's d sigma / dt is unbounded at t = 1 (sigma = 0)


def _oracle_path(mix, schedule, x0: torch.Tensor, t_end: float) -> torch.Tensor:
    field = Field.from_oracle(MixtureOracle(mix, AffinePath(schedule)))
    return rk4(field, x0, uniform_grid(STEPS, 0.0, t_end), return_trajectory=True).trajectory


def main(out: Path) -> None:
    g = torch.Generator().manual_seed(0)
    mix = get_mixture("gmm2d")
    x0 = torch.randn(N, 2, generator=g, dtype=torch.float64)
    y = mix.sample(N, g).to(torch.float64)
    data = mix.sample(600, g).to(torch.float64)
    perm = exact_ot(x0, y).plan.argmax(1)  # uniform n-to-n: the plan is a permutation / n
    geodesic = torch.stack([(1 - t) * x0 + t * y[perm] for t in uniform_grid(STEPS).tolist()])
    paths = {
        "diffusion (VP probability flow)": _oracle_path(mix, VPSchedule(), x0, VP_END),
        "independent linear path (I-CFM)": _oracle_path(mix, LinearSchedule(), x0, 1.0),
        "OT geodesic (OT-CFM's target)": geodesic,
    }
    every = torch.cat([data, *(p.reshape(-1, 2) for p in paths.values())])
    lo, hi = every.min(0).values.tolist(), every.max(0).values.tolist()
    box = [lo[0] - 0.2, hi[0] + 0.2, lo[1] - 0.2, hi[1] + 0.2]
    panels = [Panel(k, v.tolist(), data.tolist(), box) for k, v in paths.items()]
    trajectory_panels(out.parent, out.stem, "", panels)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/paths.png"))
