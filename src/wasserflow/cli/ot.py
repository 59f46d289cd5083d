"""``wasserflow ot``: W2 between two point-cloud files, and the geodesic between them as a picture."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path

import torch
import typer

from .._outputs import output_file
from .app import Group, UsageError, app, console
from .output import print_table

ot_app = typer.Typer(
    help="Optimal transport between point clouds (.npy, .csv, .pt).",
    no_args_is_help=True,
    cls=Group,
)
app.add_typer(ot_app, name="ot")


class Method(str, Enum):
    exact = "exact"
    sinkhorn = "sinkhorn"
    gaussian = "gaussian"
    sliced = "sliced"
    one_d = "1d"


def load_pair(x_path: Path, y_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Load two clouds; any problem is a ValueError naming the file (exit code 2 in the CLI)."""
    from ..data.files import load_points

    x = load_points(x_path, torch.float64)
    y = load_points(y_path, torch.float64)
    if x.shape[1] != y.shape[1]:
        raise UsageError(
            f"{y_path}: points have d = {y.shape[1]} but {x_path} has d = {x.shape[1]}; "
            "both clouds must live in the same R^d"
        )
    return x, y


@ot_app.command("w2")
def w2_command(
    x_path: Path = typer.Argument(
        ..., metavar="X", help="source points: .npy, .csv or .pt, shape (n, d)"
    ),
    y_path: Path = typer.Argument(..., metavar="Y", help="target points, shape (m, d)"),
    method: Method = typer.Option(Method.exact, help="solver"),
    epsilon: float = typer.Option(
        None, help="entropic regularisation (sinkhorn), in squared-distance units"
    ),
    n_projections: int = typer.Option(256, help="directions for the sliced W2"),
    seed: int = typer.Option(0, help="seed of the sliced W2's directions"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """W2 between the uniform empirical measures of two point clouds."""
    from ..geometry import w2

    x, y = load_pair(x_path, y_path)
    options: dict = {}
    if method is Method.sinkhorn and epsilon is not None:
        options["epsilon"] = epsilon
    if method is Method.sliced:
        options = {"n_projections": n_projections, "generator": torch.Generator().manual_seed(seed)}
    start = time.perf_counter()
    r = w2(x, y, method=method.value, **options)
    seconds = time.perf_counter() - start
    out = {
        "w2": r.w2,
        "w2_squared": r.w2_squared,
        "method": r.method,
        "converged": r.converged,
        "status": r.status,
        "marginal_error": r.marginal_error,
        "n": x.shape[0],
        "m": y.shape[0],
        "d": x.shape[1],
        "seconds": seconds,
    }
    if as_json:
        typer.echo(json.dumps(out))
        return
    keys = ("w2", "w2_squared", "converged", "status", "marginal_error", "n", "m", "d", "seconds")
    rows = [(k, f"{out[k]:.6g}" if isinstance(out[k], float) else str(out[k])) for k in keys]
    print_table(console, f"W2 ({r.method})", ("", ""), rows, justify=("left", "left"))


@ot_app.command("interpolate")
def interpolate_command(
    x_path: Path = typer.Argument(..., metavar="X", help="source points (.npy, .csv, .pt)"),
    y_path: Path = typer.Argument(..., metavar="Y", help="target points"),
    out: Path = typer.Option(Path("geodesic.png"), "--out", "-o", help="PNG to write"),
    frames: int = typer.Option(5, min=2, max=12, help="number of times in [0, 1] to draw"),
    dims: str = typer.Option("0,1", help="the two coordinates to draw"),
) -> None:
    """Draw the displacement (McCann) interpolation between two clouds: the W2 geodesic."""
    from ..geometry import displacement_interpolation, exact_ot
    from .plots import geodesic_figure

    output_file(out)
    x, y = load_pair(x_path, y_path)
    try:
        i, j = (int(v) for v in dims.split(","))
    except ValueError:
        raise UsageError(f"--dims {dims!r}: give two coordinate indices such as 0,1") from None
    d = x.shape[1]
    if d == 1:
        x, y = torch.cat([x, torch.zeros_like(x)], 1), torch.cat([y, torch.zeros_like(y)], 1)
        i, j = 0, 1
    elif not (0 <= i < d and 0 <= j < d):
        raise UsageError(f"--dims {dims!r}: coordinates must lie in 0..{d - 1}")
    r = exact_ot(x, y)
    times = torch.linspace(0, 1, frames).tolist()
    clouds = [displacement_interpolation(x, y, r, t) for t in times]
    geodesic_figure(clouds, times, (i, j), out, title=f"W2 geodesic, W2 = {r.w2:.4g}")
    console.print(f"W2 = {r.w2:.6g} ({r.status}); geodesic written to {out}")
