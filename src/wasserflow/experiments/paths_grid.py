"""The reference path of ``paths``: the Benamou-Brenier geodesic on a grid, and every path's
marginals against it.

Between the densities of N(0, I) and a 2-D mixture on a grid over [-5, 5]^2, the geodesic is
solved by proximal splitting and certified against a 4x longer solve
(:func:`~wasserflow.geometry.benamou_brenier_reference`: ``grid_reference_l1``, the largest L1
change of a compared frame, is printed and checked against the profile's tolerance; the grid
action is W2^2 of the two grid densities, not of the continuous laws). At t = 1/4, 1/2, 3/4
each path's particles (the oracle paths', the OT geodesic's, the trained models' of
:mod:`.paths_learned`) are compared with the grid density by exact W2 (the particles against
the cell centres weighted by the density), beside the floor of that measure (as many samples of
the grid density itself); the paths whose marginal density is closed form
(:meth:`~wasserflow.paths.MixtureOracle.marginal`) also by L1 on the grid.

The W2 of each path is the mean over ``replicates`` independent draws of ``n_w2`` particles,
with the Student-t interval of that mean (:func:`~wasserflow.metrics.replicate_interval`). The
central-limit interval of one draw (:func:`~wasserflow.metrics.quality.w2_interval`) is not
calibrated here: near the floor it was 1.3-2.0x wider than the spread of 20 independent draws
of 1,000 particles (the default profile's grid, gmm2d; the OT geodesic at t = 3/4: half-width
0.16 against 1.96 sd = 0.08), so the OT geodesic and its nearest rival, 0.14 apart in W2 on
average, were "not measurably" ordered (W2 0.309 +- 0.17 against 0.427 +- 0.087). The mean of
the default profile's ten draws has a half-width of t_9 sd / sqrt(10) = 0.71 sd (sd: one draw's
spread), against 2.5-3.9 sd for one draw's central-limit interval, and the comparison decides
(0.238 +- 0.02 against 0.353 +- 0.015). The oracle paths' particles are drawn from their
closed-form marginals (the law their exact ODE carries the noise to), the OT geodesic's by
displacement interpolation of exact OT draw by draw, the trained models' by their ODE sampler.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .._plot import pyplot
from ..geometry import benamou_brenier_reference, exact_ot, regular_grid
from ..metrics.interval import Interval, replicate_interval
from ..paths import AffinePath, MixtureOracle
from . import figures
from .context import Check, Context, Figure, Table, table
from .paths_learned import LearnedPath

GRID_TIMES = (0.25, 0.5, 0.75)  # where the paths' marginals meet the grid geodesic
GRID_HALF_WIDTH = 5.0  # the grid covers [-5, 5]^2: N(0, I) and gmm2d to 1e-6 of their mass


@dataclass(frozen=True)
class GridProfile:
    """An n x n grid and n_times time steps of the grid geodesic, solved for ``iterations``
    (None: until its frame-error estimate reaches ``tol``) and certified within ``tol`` in L1
    of a 4x longer solve; ``replicates`` independent draws of n_w2 particles of each path
    compared with it (at least 2: the interval is their spread)."""

    n: int
    n_times: int
    iterations: int | None
    n_w2: int
    replicates: int
    tol: float = 5e-3

    def __post_init__(self) -> None:
        if self.replicates < 2 or self.n_w2 < 2:
            raise ValueError(
                f"the grid comparison needs replicates >= 2 draws of n_w2 >= 2 particles, got "
                f"{self.replicates} of {self.n_w2}"
            )

    @property
    def particles(self) -> int:
        """The particles of each path the comparison reads: its replicates' draws side by side."""
        return self.replicates * self.n_w2


@dataclass(frozen=True)
class GridBox:
    lower: list[float]
    upper: list[float]
    shape: list[int]


@dataclass(frozen=True)
class GridComparison:
    """The grid geodesic (its grid, time steps, the times compared, its action, the solver's
    residual, iterations, ``grid_reference_l1`` against a 4x longer solve and the tolerance it
    was solved to, largest mass error and seconds) and, at each compared time, every path's W2
    to it (the mean over ``replicates`` draws of n_w2 particles, with its Student-t interval),
    the closed-form marginals' L1 to it, the floor of that W2 (the mean over as many draws of
    the grid density itself), and the trained models compared."""

    grid: GridBox
    n_times: int
    times: list[float]
    action: float
    residual: float
    iterations: int
    grid_reference_l1: float
    reference_tol: float
    max_mass_error: float
    seconds: float
    n_w2: int
    replicates: int
    w2: dict[str, list[Interval]]
    l1: dict[str, list[float]]
    floor_w2: list[float]
    learned: dict[str, LearnedPath] = field(default_factory=dict)


@dataclass(frozen=True)
class GridPlot:
    """The figure's arrays: the density frames at t = 0, GRID_TIMES, 1 on ``extent``, the OT
    geodesic's particles and each trained model's particles at GRID_TIMES."""

    extent: list[float]
    frames: list[np.ndarray]
    particles: list[np.ndarray]
    learned: dict[str, list[np.ndarray]] = field(default_factory=dict)


def _grid_atoms_w2(x: torch.Tensor, points: torch.Tensor, density) -> float:
    """Exact W2 between particles x and the cell centres weighted by a grid density (cells
    below 1e-9 of the largest weight dropped)."""
    w = torch.as_tensor(density, dtype=torch.float64).reshape(-1).clamp_min(0.0)
    keep = w > 1e-9 * w.max()
    return exact_ot(x.to(torch.float64), points[keep], b=w[keep] / w[keep].sum()).w2


def replicated_w2(x: torch.Tensor, points: torch.Tensor, density, m: int) -> Interval:
    """W2 of each draw of m particles (x: (R m, 2), the R draws side by side) to the grid
    density, as the mean of the R values with its Student-t interval (module doc)."""
    draws = x.split(m)
    if len(draws) < 2 or draws[-1].shape[0] != m:
        raise ValueError(f"replicated_w2 needs R >= 2 draws of {m} particles, got {x.shape[0]}")
    return replicate_interval([_grid_atoms_w2(d, points, density) for d in draws])


def _sample_grid(points, spacing, density, m: int, g: torch.Generator) -> torch.Tensor:
    """m samples of a grid density, constant on each cell."""
    w = torch.as_tensor(density, dtype=torch.float64).reshape(-1).clamp_min(0.0)
    idx = torch.multinomial(w / w.sum(), m, replacement=True, generator=g)
    jitter = torch.rand(m, points.shape[1], generator=g, dtype=torch.float64) - 0.5
    return points[idx] + jitter * torch.tensor(spacing, dtype=torch.float64)


def grid_geodesic_comparison(
    mix, paths: dict[str, AffinePath], trajs: dict, gcfg: GridProfile, g: torch.Generator
) -> tuple[GridComparison, GridPlot]:
    """The Benamou-Brenier geodesic from N(0, I) to ``mix`` on a grid, and each path's marginal
    at GRID_TIMES against it: W2 of the particles (``trajs``: name -> (trajectory, times), each
    with the ``gcfg.particles`` of its replicates' independent draws side by side) to the grid
    density, the floor of that W2 (draws of the grid density itself), and L1 on the grid for
    the paths with a closed-form marginal density."""
    n, P = gcfg.n, gcfg.n_times
    grid = regular_grid(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, (n, n))
    pts = grid.points()
    rho0 = torch.exp(-0.5 * (pts**2).sum(1)).reshape(n, n).numpy()
    rho1 = mix.log_prob(pts).exp().reshape(n, n).numpy()
    t0 = time.perf_counter()
    bb = benamou_brenier_reference(
        rho0, rho1, grid, n_times=P, tol=gcfg.tol, times=GRID_TIMES, iterations=gcfg.iterations
    )
    seconds = time.perf_counter() - t0
    m = gcfg.n_w2
    frames, w2, l1, floor = [], {p: [] for p in trajs}, {p: [] for p in paths}, []
    for t in GRID_TIMES:
        k = int(round(t * P))
        f = bb.density[k]
        frames.append(f)
        for p, (traj, times) in trajs.items():
            j = int(torch.argmin((times - t).abs()))
            w2[p].append(replicated_w2(traj[j, : gcfg.particles], pts, f, m))
        for p, path in paths.items():
            exact = MixtureOracle(mix, path).marginal(float(bb.times[k])).log_prob(pts).exp()
            diff = (torch.as_tensor(f).reshape(-1) - exact).abs().sum()
            l1[p].append(float(diff * grid.cell_volume))
        own = _sample_grid(pts, grid.spacing, f, gcfg.particles, g)
        floor.append(replicated_w2(own, pts, f, m).value)
    comparison = GridComparison(
        grid=GridBox(grid.lower, grid.upper, grid.shape),
        n_times=P,
        times=[float(bb.times[int(round(t * P))]) for t in GRID_TIMES],
        action=bb.action,
        residual=bb.residual,
        iterations=bb.iterations,
        grid_reference_l1=bb.grid_reference_l1,
        reference_tol=gcfg.tol,
        max_mass_error=float(abs(bb.mass - 1.0).max()),
        seconds=seconds,
        n_w2=m,
        replicates=gcfg.replicates,
        w2=w2,
        l1=l1,
        floor_w2=floor,
    )
    plot = GridPlot(
        extent=[grid.lower[0], grid.upper[0], grid.lower[1], grid.upper[1]],
        frames=[bb.density[0], *frames, bb.density[-1]],
        particles=frames_near(*trajs["OT geodesic"]),
    )
    return comparison, plot


def frames_near(traj: torch.Tensor, times: torch.Tensor) -> list[np.ndarray]:
    """The first 200 particles of the trajectory frame nearest each of GRID_TIMES."""
    return [traj[int(torch.argmin((times - t).abs())), :200].numpy() for t in GRID_TIMES]


def _nearest(w2: dict, names: list[str], n: int) -> list[Interval]:
    """At each of the n compared times, the smallest W2 to the grid geodesic among ``names``."""
    return [min((w2[p][i] for p in names), key=lambda iv: iv.value) for i in range(n)]


def _certified(gg: GridComparison) -> Check:
    """The reference itself: its compared frames within the tolerance of a 4x longer solve."""
    return Check(
        "grid_reference_l1 (the frames against a 4x longer solve)",
        gg.grid_reference_l1,
        "<=",
        gg.reference_tol,
    )


def _closer(what: str, times: list[float], a: list[float], b: list[float]) -> list[Check]:
    """a[i] < b[i] at every compared time."""
    return [Check(f"{what} at t = {t:g}", x, "<", y) for t, x, y in zip(times, a, b)]


def grid_verdict(gg: GridComparison) -> tuple[list[Check], str]:
    """The OT geodesic's particles are the closest to the grid geodesic at every GRID_TIMES."""
    ot = gg.w2["OT geodesic"]
    oracle = [p for p in gg.w2 if p not in gg.learned and p != "OT geodesic"]
    rivals = _nearest(gg.w2, oracle, len(ot))
    checks = _closer(
        "W2 to the grid geodesic, OT geodesic vs the next oracle path", gg.times, ot, rivals
    )
    holds = all(c.holds for c in checks)
    fmt = ", ".join
    return [_certified(gg), *checks], (
        f"at t = {fmt(f'{t:g}' for t in gg.times)} the OT geodesic's particles are "
        f"{'' if holds else 'not measurably '}the closest to the grid Benamou-Brenier geodesic "
        f"(W2, the mean of {gg.replicates} draws of {gg.n_w2} particles: {fmt(map(str, ot))}; "
        f"the next closest oracle path {fmt(map(str, rivals))}; "
        f"samples of the grid density itself {fmt(f'{v:.3f}' for v in gg.floor_w2)}; the grid "
        f"geodesic within L1 {gg.grid_reference_l1:.1e} of a 4x longer solve, tolerance "
        f"{gg.reference_tol:g})"
    )


def learned_verdict(gg: GridComparison) -> tuple[list[Check], str]:
    """At every compared time, the closest learned OT-coupled flow ("ot-flow" family) is nearer
    the grid geodesic than every learned independent-coupling flow and diffusion model."""
    learned = gg.learned
    ot = [p for p, r in learned.items() if r.family == "ot-flow"]
    rest = [p for p, r in learned.items() if r.family in ("independent-flow", "diffusion")]
    if not ot or not rest:
        return [], "too few learned families to compare"
    best = _nearest(gg.w2, ot, len(gg.times))
    rival = _nearest(gg.w2, rest, len(gg.times))
    checks = _closer(
        "W2 to the grid geodesic, learned OT-coupled vs the rest", gg.times, best, rival
    )
    holds = all(c.holds for c in checks)
    fmt = ", ".join
    methods = fmt(learned[p].method for p in ot)
    return checks, (
        f"the learned OT-coupled flows ({methods}) are {'' if holds else 'not measurably '}"
        "closer to it than the learned independent-coupling and diffusion models (W2 "
        f"{fmt(map(str, best))} against {fmt(map(str, rival))})"
    )


GEODESIC_COLUMNS = [
    "grid",
    "time steps",
    "iterations",
    "grid_reference_l1 (vs 4x longer)",
    "residual",
    "action (grid W2^2)",
    "W2^2 ends (exact OT, particles)",
    "mass error",
    "seconds",
]


def grid_tables(target: str, gg: GridComparison, ends_w2_squared: float) -> list[Table]:
    """Each path's W2 (and L1) to the grid geodesic, and the grid geodesic itself (beside the
    OT geodesic particles' W2^2 of the ends, ``ends_w2_squared``)."""
    ts = gg.times
    rows = []
    for p, w2 in gg.w2.items():
        l1 = gg.l1.get(p)
        info = gg.learned.get(p)
        label = f"{p}: {info.sampler}, {info.nfe} NFE" if info is not None else p
        rows.append([label, *w2, *(l1 if l1 is not None else ["-"] * len(ts))])
    rows.append(["samples of the grid density (floor)", *gg.floor_w2, *["-"] * len(ts)])
    cols = ["path", *(f"W2 at t = {t:g}" for t in ts), *(f"L1 at t = {t:g}" for t in ts)]
    geodesic = [
        " x ".join(str(v) for v in gg.grid.shape),
        gg.n_times,
        gg.iterations,
        gg.grid_reference_l1,
        gg.residual,
        gg.action,
        ends_w2_squared,
        gg.max_mass_error,
        gg.seconds,
    ]
    return [
        table(f"N(0, I) to {target}: each path's marginal against the grid geodesic", cols, rows),
        table(
            f"The grid Benamou-Brenier geodesic N(0, I) to {target} (reference path)",
            GEODESIC_COLUMNS,
            [geodesic],
        ),
    ]


def grid_figures(
    ctx: Context, target: str, gg: GridComparison, plot: GridPlot | None
) -> list[Figure]:
    """Each path's W2 to the grid geodesic against t; the geodesic's density frames with the
    OT geodesic's and the trained models' particles."""
    ts = gg.times
    series = [
        figures.Series(ts, w2, p, "--o" if p in gg.learned else "-o") for p, w2 in gg.w2.items()
    ]
    series.append(figures.Series(ts, gg.floor_w2, "floor (grid samples)", "k--"))
    figs = [
        figures.curves(
            ctx.figures,
            f"paths-{target}-grid-w2",
            f"W2 between each path's marginal and the grid Benamou-Brenier geodesic to {target}",
            series,
            xlabel="t",
            ylabel="W2 to the grid geodesic",
        )
    ]
    if plot is not None:
        figs.append(_density_panels(ctx, target, plot, ts))
        if plot.learned:
            figs.append(learned_panels(ctx, target, plot, ts))
    return figs


def _panel(ax, frame, extent: list[float], particles, title: str) -> None:
    """One density frame of the grid geodesic, with particles (white) when given."""
    ax.imshow(frame.T, origin="lower", extent=extent, cmap="viridis")
    if particles is not None:
        ax.plot(particles[:, 0], particles[:, 1], ".", color="w", markersize=1.5, alpha=0.8)
    ax.set_xlim(extent[:2])  # particles outside the grid stay out of view
    ax.set_ylim(extent[2:])
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _density_panels(ctx: Context, target: str, plot: GridPlot, ts: list[float]) -> Figure:
    plt = pyplot()
    times = [0.0, *ts, 1.0]
    fig, axes = plt.subplots(1, len(times), figsize=(2.4 * len(times), 2.6))
    for i, (ax, f, t) in enumerate(zip(axes, plot.frames, times)):
        q = plot.particles[i - 1] if 0 < i < len(times) - 1 else None
        _panel(ax, f, plot.extent, q, f"t = {t:g}")
    return figures.save(
        fig,
        ctx.figures,
        f"paths-{target}-grid-geodesic",
        f"The grid Benamou-Brenier geodesic from N(0, I) to {target} (density), with the OT "
        "geodesic's particles (white) at the same times",
    )


def learned_panels(ctx: Context, target: str, plot: GridPlot, ts: list[float]) -> Figure:
    """One row per learned model: the grid geodesic's density at ``ts`` with the model's ODE
    particles at the same times (``plot.learned``: name -> particles per time)."""
    plt = pyplot()
    names = list(plot.learned)
    fig, axes = plt.subplots(
        len(names), len(ts), figsize=(2.4 * len(ts), 2.4 * len(names)), squeeze=False
    )
    for r, name in enumerate(names):
        for c, t in enumerate(ts):
            q = plot.learned[name][c]
            _panel(axes[r][c], plot.frames[c + 1], plot.extent, q, f"{name}, t = {t:g}")
    return figures.save(
        fig,
        ctx.figures,
        f"paths-{target}-grid-geodesic-learned",
        f"The grid Benamou-Brenier geodesic to {target} (density) with each trained model's "
        "ODE particles (white) at the same times",
    )
