"""``wasserflow flow``: Fokker-Planck and JKO gradient flows of KL(rho || pi) on a potential.

``flow fp`` integrates d_t rho = div(rho grad V) + Laplace(rho) on a grid (Scharfetter-Gummel
finite volumes, implicit in time) from a Gaussian start; ``flow jko`` runs the JKO scheme
rho_{k+1} = argmin F(rho) + W2^2(rho, rho_k) / (2h) with the closed-form (Gaussian), entropic
grid or mesh-free particle solver. Both print F = KL(rho || pi) per step and draw the flow.

The target pi ∝ exp(-V) is a built-in name (``gaussian``: N(0, I); ``double-well``:
V = (x_1^2 - 1)^2 + |x_rest|^2 / 2; ``gmm``: two Gaussians at ±1.5 e_1 with variance 0.3), a
Python expression in ``x`` of shape (n, d), e.g. ``"0.5*sum(x**2) + sin(3*x[:, 0])"``, or a
file holding such an expression. Expressions go through the bounded sandbox of
:mod:`wasserflow.cli.expressions` (a whitelist of syntax, names and functions, bounded
integers, a timed probe evaluation); the names are listed by ``wasserflow flow fp --help``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import typer

from .app import Group, UsageError, app, console
from .expressions import CONSTANTS, FUNCTIONS, PROBE_SECONDS, compile_expression, probe_expression
from .output import print_table

flow_app = typer.Typer(
    help="Wasserstein gradient flows of KL(rho || pi): Fokker-Planck and JKO.",
    no_args_is_help=True,
    cls=Group,
)
app.add_typer(flow_app, name="flow")

BUILTINS = ("gaussian", "double-well", "gmm")
POTENTIAL_HELP = (
    "gaussian, double-well, gmm, a Python expression in x (n, d) such as "
    f"'0.5*sum(x**2) + sin(3*x[:, 0])' (functions: {', '.join(FUNCTIONS)}; constants "
    f"{', '.join(CONSTANTS)}), or a file holding such an expression"
)


def make_potential(spec: str, dim: int):
    """The target Potential for a built-in name, an expression or a file of one, in R^dim."""
    from ..geometry import (
        GaussianMixture,
        function_potential,
        mixture_potential,
        standard_gaussian_potential,
    )

    if dim not in (1, 2):
        raise UsageError(f"--dim {dim}: the flow commands work in 1-D or 2-D")
    if spec == "gaussian":
        return standard_gaussian_potential(dim)
    if spec == "gmm":
        means = torch.zeros(2, dim, dtype=torch.float64)
        means[:, 0] = torch.tensor([-1.5, 1.5])
        return mixture_potential(GaussianMixture.create([0.5, 0.5], means, 0.3))
    if spec == "double-well":
        # log Z = log int exp(-(u^2 - 1)^2) du + (d - 1)/2 log(2 pi), the integral by quadrature
        u = np.linspace(-4, 4, 40001)
        z1 = float(np.exp(-((u**2 - 1) ** 2)).sum() * (u[1] - u[0]))

        def dw(x: torch.Tensor) -> torch.Tensor:
            return (x[:, 0] ** 2 - 1) ** 2 + 0.5 * (x[:, 1:] ** 2).sum(-1)

        return function_potential(
            dw,
            dim=dim,
            name="double well",
            log_normalizer=math.log(z1) + 0.5 * (dim - 1) * math.log(2 * math.pi),
        )
    text, name = spec, "user potential"
    path = Path(spec)
    if len(spec) < 256 and path.suffix in (".txt", ".py", ".expr") and path.is_file():
        text, name = path.read_text(), f"potential from {path}"
    elif len(spec) < 256 and path.suffix in (".txt", ".py", ".expr"):
        raise UsageError(f"potential file {spec} does not exist")
    energy = compile_expression(text)
    probe_expression(energy, text, dim, seconds=PROBE_SECONDS)
    return function_potential(energy, dim=dim, name=name)


def _check(box: float, cells: int, start_std: float) -> None:
    if not (math.isfinite(box) and box > 0):
        raise UsageError(f"--box {box}: give the half-width L > 0 of the square [-L, L]^d")
    if cells < 8:
        raise UsageError(f"--cells {cells}: use at least 8 cells per axis")
    if not (math.isfinite(start_std) and start_std > 0):
        raise UsageError(f"--start-std {start_std}: the initial Gaussian needs a std > 0")


def _start(dim: int, mean: float, std: float):
    from ..geometry import Gaussian

    return Gaussian(
        mean=torch.full((dim,), float(mean), dtype=torch.float64),
        cov=std**2 * torch.eye(dim, dtype=torch.float64),
    )


def _gaussian_pdf(points: torch.Tensor, g) -> torch.Tensor:
    mvn = torch.distributions.MultivariateNormal(g.mean, covariance_matrix=g.cov)
    return mvn.log_prob(points).exp()


def _report(title: str, times, F, as_json: bool, extra: dict, out: Path) -> None:
    times, F = [float(t) for t in times], [float(f) for f in F]
    if as_json:
        typer.echo(json.dumps({"t": times, "F": F, "out": str(out), **extra}))
        return
    rows = [
        (str(k), f"{t:.4g}", f"{f:.6g}", "" if k == 0 else f"{f - F[k - 1]:+.3e}")
        for k, (t, f) in enumerate(zip(times, F, strict=True))
    ]
    columns = ("step", "t", "F = KL(rho || pi)", "F_k - F_{k-1}")
    print_table(console, title, columns, rows, justify=["right"] * 4)
    console.print(f"picture written to {out}")


def _draw(panels, kind: str, out: Path, title: str, extent=None) -> None:
    """panels: (label, array) with kind 'curve' (x, y), 'image' (2-D density) or 'points'."""
    from .._atomic import atomic_path
    from .._plot import pyplot

    plt = pyplot()
    if kind == "curve":
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for i, (label, (x, y)) in enumerate(panels):
            ax.plot(
                x,
                y,
                label=label,
                ls="--" if label == "pi" else "-",
                color="k" if label == "pi" else plt.cm.viridis(i / max(len(panels) - 1, 1)),
            )
        ax.legend(fontsize=7)
        ax.set_xlabel("x")
    else:
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8), squeeze=False)
        for ax, (label, a) in zip(axes[0], panels, strict=True):
            if kind == "image":
                ax.imshow(np.asarray(a).T, origin="lower", extent=extent, cmap="viridis")
            elif a.shape[1] == 1:
                ax.hist(a[:, 0].numpy(), bins=40, range=extent[:2], density=True, color="C0")
            else:
                ax.scatter(a[:, 0], a[:, 1], s=3, alpha=0.5, linewidths=0)
                ax.set_xlim(*extent[:2])
                ax.set_ylim(*extent[2:])
                ax.set_aspect("equal", adjustable="box")
            ax.set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)


def _pick(n: int, frames: int) -> list[int]:
    return sorted({round(i * n / (frames - 1)) for i in range(frames)})


def _density_panels(axes, states, times, idx, pi_values):
    if len(axes) == 1:
        x = axes[0].numpy()
        panels = [(f"t = {times[k]:.3g}", (x, np.asarray(states[k]))) for k in idx]
        return panels + [("pi", (x, pi_values))], "curve"
    return [(f"t = {times[k]:.3g}", np.asarray(states[k])) for k in idx] + [
        ("pi", pi_values)
    ], "image"


Potential_ = typer.Option("gaussian", "--potential", "-p", help=POTENTIAL_HELP)


@flow_app.command("fp")
def fp_command(
    potential: str = Potential_,
    dim: int = typer.Option(1, help="dimension: 1 or 2"),
    t_final: float = typer.Option(1.0, help="final time T"),
    steps: int = typer.Option(20, min=1, help="implicit time steps"),
    cells: int = typer.Option(0, help="cells per axis (default 400 in 1-D, 64 in 2-D)"),
    box: float = typer.Option(5.0, help="the grid is the square [-box, box]^d"),
    start_mean: float = typer.Option(2.0, help="rho_0 = N(start_mean * 1, start_std^2 I)"),
    start_std: float = typer.Option(0.5),
    scheme: str = typer.Option("backward_euler", help="backward_euler or crank_nicolson"),
    frames: int = typer.Option(5, min=2, max=10, help="snapshots drawn"),
    out: Path = typer.Option(Path("fokker_planck.png"), "--out", "-o", help="PNG to write"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead"),
) -> None:
    """Fokker-Planck flow on a grid from a Gaussian start; prints F = KL per step."""
    from ..geometry import regular_grid, solve_fokker_planck_grid

    cells = cells or (400 if dim == 1 else 64)
    _check(box, cells, start_std)
    if not (math.isfinite(t_final) and t_final > 0):
        raise UsageError(f"--t-final {t_final}: give a positive final time")
    target = make_potential(potential, dim)
    grid = regular_grid(-box, box, (cells,) * dim)
    rho0 = (
        _gaussian_pdf(grid.points(), _start(dim, start_mean, start_std)).numpy().reshape(grid.shape)
    )
    r = solve_fokker_planck_grid(rho0, grid, target, t_final, steps, scheme=scheme, save_every=1)
    axes = [torch.as_tensor(a) for a in grid.axes]
    panels, kind = _density_panels(
        axes, r.densities, list(r.times), _pick(steps, frames), r.stationary
    )
    _draw(
        panels,
        kind,
        out,
        f"Fokker-Planck flow of KL(. || pi), {target.name}",
        extent=(-box, box, -box, box),
    )
    _report(
        f"Fokker-Planck ({scheme}, {cells}^{dim} cells)",
        r.step_times,
        r.kl,
        as_json,
        {"mass": [float(m) for m in r.mass]},
        out,
    )


@flow_app.command("jko")
def jko_command(
    potential: str = Potential_,
    solver: str = typer.Option("grid", help="gaussian (closed form), grid (entropic), particles"),
    dim: int = typer.Option(1, help="dimension: 1 or 2"),
    h: float = typer.Option(0.1, help="JKO step h"),
    steps: int = typer.Option(10, min=1, help="JKO steps"),
    cells: int = typer.Option(0, help="grid cells per axis (default 200 in 1-D, 40 in 2-D)"),
    box: float = typer.Option(5.0, help="the grid is the square [-box, box]^d"),
    particles: int = typer.Option(2000, help="particles of the mesh-free solver"),
    start_mean: float = typer.Option(2.0, help="rho_0 = N(start_mean * 1, start_std^2 I)"),
    start_std: float = typer.Option(0.5),
    seed: int = typer.Option(0, help="seed of the particle solver"),
    frames: int = typer.Option(5, min=2, max=10, help="iterates drawn"),
    out: Path = typer.Option(Path("jko.png"), "--out", "-o", help="PNG to write"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead"),
) -> None:
    """JKO scheme for KL(. || pi) from a Gaussian start; prints F per step (never increasing)."""
    from ..geometry import GaussianMixture, gaussian_jko, jko_grid, jko_particles

    if solver not in ("gaussian", "grid", "particles"):
        raise UsageError(f"--solver {solver!r}: choose gaussian, grid or particles")
    if not (isinstance(h, float) and math.isfinite(h) and h > 0):
        raise UsageError(f"-h / --h {h}: the JKO step must be a positive number")
    cells = cells or (200 if dim == 1 else 40)
    _check(box, cells, start_std)
    target = make_potential(potential, dim)
    g0 = _start(dim, start_mean, start_std)
    idx = _pick(steps, frames)
    axis = torch.linspace(-box, box, cells, dtype=torch.float64)
    mesh = torch.stack(torch.meshgrid(*([axis] * dim), indexing="ij"), -1).reshape(-1, dim)
    shape = (cells,) * dim
    extent = (-box, box, -box, box)
    if solver == "particles":
        if particles < 10:
            raise UsageError(f"--particles {particles}: use at least 10 particles")
        init = GaussianMixture.create([1.0], g0.mean, g0.cov)
        r = jko_particles(
            init,
            target,
            h,
            steps,
            n_particles=particles,
            generator=torch.Generator().manual_seed(seed),
        )
        panels = [(f"t = {float(r.times[k]):.3g}", r.states[k]) for k in idx]
        kind = "points"
    else:
        if solver == "gaussian":
            if target.gaussian is None:
                raise UsageError(
                    f"--solver gaussian needs a Gaussian target (--potential gaussian), not "
                    f"{target.name}: use --solver grid or particles"
                )
            r = gaussian_jko(g0, target, h, steps)
            states = [_gaussian_pdf(mesh, s).reshape(shape) for s in r.states]
        else:
            r = jko_grid([axis] * dim, _gaussian_pdf(mesh, g0).reshape(shape), target, h, steps)
            states = list(r.states)
        pi = torch.exp(-(target.V(mesh) - target.V(mesh).min())).reshape(shape)
        pi = (pi / (pi.sum() * (float(axis[1] - axis[0]) ** dim))).numpy()
        times = [float(t) for t in r.times]
        panels, kind = _density_panels([axis] * dim, states, times, idx, pi)
    _draw(panels, kind, out, f"JKO ({solver}), h = {h:g}, {target.name}", extent=extent)
    _report(
        f"JKO ({r.method}), h = {h:g}",
        r.times,
        r.free_energy,
        as_json,
        {"converged": bool(r.converged), "method": r.method},
        out,
    )
