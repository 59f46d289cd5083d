"""``wasserflow demo``: the W2 geometry between two built-in 2-D sets, as a table and a picture.

Eight Gaussians -> moons: exact W2 and its optimal plan, the other W2 estimators beside it, the
displacement interpolation, and the geodesic gap of straight paths along the optimal pairing
(zero: a Benamou-Brenier geodesic) against straight paths along an independent pairing (what
flow matching without OT coupling follows: positive).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import typer

from .. import _atomic
from .._outputs import output_folder
from .app import app, console
from .output import print_table


def run_demo(n: int, seed: int, out: Path) -> dict:
    from ..data.toy2d import get_dataset
    from ..geometry import displacement_interpolation, exact_ot, trajectory_geometry, w2

    output_folder(out)
    g = torch.Generator().manual_seed(seed)
    x = get_dataset("8gaussians")(n, generator=g, dtype=torch.float64)
    y = get_dataset("moons")(n, generator=g, dtype=torch.float64)
    rows = []
    for method, opts in [
        ("exact", {}),
        ("sinkhorn", {}),  # debiased Sinkhorn divergence
        ("gaussian", {}),
        ("sliced", {"n_projections": 512, "generator": torch.Generator().manual_seed(seed)}),
    ]:
        t0 = time.perf_counter()
        r = w2(x, y, method=method, **opts)
        rows.append(
            {
                "method": method,
                "w2": r.w2,
                "w2_squared": r.w2_squared,
                "converged": r.converged,
                "seconds": time.perf_counter() - t0,
            }
        )
    exact = exact_ot(x, y)
    perm = exact.plan.argmax(1)
    times = torch.linspace(0, 1, 21, dtype=torch.float64)
    straight_ot = torch.stack([(1 - t) * x + t * y[perm] for t in times])
    shuffled = y[torch.randperm(n, generator=g)]
    straight_ind = torch.stack([(1 - t) * x + t * shuffled for t in times])
    geo_ot = trajectory_geometry(straight_ot, times, endpoint_w2_squared=exact.cost)
    geo_ind = trajectory_geometry(straight_ind, times, endpoint_w2_squared=exact.cost)
    paths = [
        {
            "pairing": "optimal (OT geodesic)",
            "action": geo_ot.action,
            "geodesic_gap": geo_ot.geodesic_gap,
            "normalized_path_energy": geo_ot.normalized_path_energy,
        },
        {
            "pairing": "independent",
            "action": geo_ind.action,
            "geodesic_gap": geo_ind.geodesic_gap,
            "normalized_path_energy": geo_ind.normalized_path_energy,
        },
    ]
    frames = [0.0, 0.25, 0.5, 0.75, 1.0]
    clouds = [displacement_interpolation(x, y, exact, t) for t in frames]
    from .plots import geodesic_figure

    geodesic_figure(
        clouds,
        frames,
        (0, 1),
        out / "geodesic.png",
        title=f"8 Gaussians -> moons: W2 geodesic (W2 = {exact.w2:.3f})",
    )
    result = {"n": n, "seed": seed, "w2": rows, "paths": paths, "figure": str(out / "geodesic.png")}
    _atomic.write_json(out / "demo.json", result)
    return result


@app.command("demo")
def demo_command(
    n: int = typer.Option(1000, min=2, help="points per cloud"),
    seed: int = typer.Option(0, help="seed of the draws"),
    out: Path = typer.Option(Path("wasserflow-out/demo"), "--out", "-o", help="output folder"),
) -> None:
    """W2, optimal plan, displacement interpolation and geodesic gap between 8 Gaussians and moons."""
    res = run_demo(n, seed, out)
    rows = [
        (r["method"], f"{r['w2']:.4f}", f"{r['w2_squared']:.4f}", str(r["converged"]))
        + (f"{r['seconds']:.3f}",)
        for r in res["w2"]
    ]
    title = f"W2 between 8 Gaussians and moons ({n} points each)"
    print_table(console, title, ("method", "W2", "W2^2", "converged", "seconds"), rows)
    rows = [
        (r["pairing"], f"{r['action']:.4f}", f"{r['geodesic_gap']:.4g}")
        + (f"{r['normalized_path_energy']:.4g}",)
        for r in res["paths"]
    ]
    columns = ("pairing", "action", "geodesic gap", "normalized path energy")
    print_table(console, "Straight paths with the same endpoints", columns, rows)
    console.print(f"figure: {res['figure']}\nnumbers: {out / 'demo.json'}")
