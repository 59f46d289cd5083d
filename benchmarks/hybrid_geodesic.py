"""Measured and not kept in the library (benchmarks/README.md, hybrid samplers: it loses to the
best pure sampler at every NFE); registered only when benchmarks/hybrids.py imports it.

A geodesic time grid: steps of equal W2 length along the model's own probability-flow curve.

A W2 geodesic moves at constant speed: |rho'|_{W2}(t) = W2(rho_t, rho_{t+dt}) / dt is constant
(Benamou & Brenier 2000; Ambrosio, Gigli & Savare 2008, Theorem 8.3.1: the metric derivative
is ||v_t||_{L2(rho_t)} for the tangent velocity field). A diffusion path is no geodesic, and its
speed on the t clock varies by orders of magnitude (slow near the noise, fast near the data on
VP paths). Reparametrising time by arc length,

    L(t) = int_0^t ||v_s||_{L2(rho_s)} ds,    t_k = L^{-1}(k L(1) / K),

gives every step of a K-step solver the same W2 length L(1) / K: the curve is traversed at
constant speed, as a geodesic is. The probability-flow velocity of an affine Gaussian path,
v = (alpha'/alpha) x - sigma (alpha' sigma / alpha - sigma') s_t, is a gradient (x and the
score are), so ||v_t||_{L2(rho_t)} is exactly the metric speed of the marginals, not an upper
bound.

L is estimated from the model's own field on a pilot batch (:func:`geodesic_grid`): the first
``pilot_size`` start points are integrated by the same solver (``inner``) on ``pilot_steps``
uniform steps, and L(t_j) is the polygon of chord lengths
sqrt(mean_i |x_i(t_{j+1}) - x_i(t_j)|^2) (each chord is the W2 cost of the flow's own coupling
of consecutive marginals, which tends to W2 as the steps shrink), interpolated linearly in t
and inverted. The K + 1 grid times keep the inner solver's end points (its plan's t_0 and t_K;
dpm_solver and unipc end at t = 1 with the data prediction) and interior times are kept below
the pilot's last evaluation time.

Cost: ``nfe`` counts the evaluations of the sampled batch only (the inner solver's K);
the pilot adds ``pilot_steps`` evaluations (``pilot_steps * nfe_per_step`` for heun) of
``pilot_size`` points each, a fixed cost per call (and per model: compute the grid once with
:func:`geodesic_grid` and pass it to the inner sampler to amortise it).

Measured (benchmarks/README.md, "Hybrid samplers", benchmarks/hybrids.py, 3 seeds,
2026-12-04): the sampler does NOT help, and is kept as that measured result (the estimator
:func:`geodesic_grid` is exact against closed forms and measures a model's W2 arc length).
dpm_solver on the geodesic grid against its own grid, VP models, NFE 2 / 4 / 8: moons W2
1.40 / 0.85 / 0.60 against 1.34 / 0.67 / 0.36, gmm2d 1.32 / 0.89 / 0.64 against
1.11 / 0.50 / 0.36, digits FD 460 / 132 / 46 against 374 / 88 / 25. A VP curve is slow in W2
near the noise (moons: 2 % of the length in t <= 1/4), so equal length puts the first
evaluation after t = 0 near t = 0.5 and the first (first-order) step runs that far on the
data prediction at t = 0: equal W2 length is not the error measure of an exponential
integrator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from wasserflow.samplers.field import Field, FieldFn, as_field
from wasserflow.samplers.grids import uniform_grid
from wasserflow.samplers.registry import get_sampler, register
from wasserflow.samplers.result import SampleResult, check_start, grid_steps

INNER = ("dpm_solver", "unipc", "euler", "heun")
"""The solvers a geodesic grid can drive (chained 1-D grids)."""


@dataclass(frozen=True)
class GeodesicGrid:
    """Equal-W2-length times of a model's probability-flow curve (:func:`geodesic_grid`).

    Attributes:
        grid: (K + 1,) float64 times, t_0 and t_K those of the grid asked for.
        pilot_times: (P + 1,) float64 times of the pilot solve.
        length: (P + 1,) float64 cumulative W2 length L(t_j) of the pilot curve (L(t_0) = 0).
        pilot_nfe: field evaluations of the pilot solve.
        pilot_size: points of the pilot batch.
    """

    grid: Tensor
    pilot_times: Tensor
    length: Tensor
    pilot_nfe: int
    pilot_size: int


def _inner(name: str):
    if name not in INNER:
        raise ValueError(f"geodesic grid: inner solver {name!r} is not one of {', '.join(INNER)}")
    return get_sampler(name)


def geodesic_grid(
    field: Field | FieldFn,
    x_pilot: Tensor,
    grid: Tensor,
    *,
    inner: str = "dpm_solver",
    pilot_steps: int = 32,
) -> GeodesicGrid:
    """The grid of ``grid``'s length K with steps of equal W2 length (module doc).

    ``x_pilot``: (m, ...) start points of the pilot solve (samples of the reference at
    ``grid[0]``); ``grid``: (K + 1,) increasing times whose end points are kept; ``inner``
    integrates the pilot on ``pilot_steps`` uniform steps between them.
    """
    spec = _inner(inner)
    x_pilot = check_start(x_pilot)
    g = torch.as_tensor(grid, dtype=torch.float64)
    if g.dim() != 1:
        raise ValueError("a geodesic grid replaces a 1-D grid of times, not (t_from, t_to) steps")
    grid_steps(g)
    if int(pilot_steps) != pilot_steps or pilot_steps < 2:
        raise ValueError(f"pilot_steps must be an integer >= 2, got {pilot_steps!r}")
    k = g.shape[0] - 1
    start, end = float(g[0]), float(g[-1])
    pilot = uniform_grid(int(pilot_steps), start, end)
    with torch.no_grad():
        res = spec(field, x_pilot, pilot, return_trajectory=True)
    frames = res.trajectory.reshape(res.trajectory.shape[0], x_pilot.shape[0], -1)
    frames = frames.to(torch.float64)
    chords = (frames[1:] - frames[:-1]).pow(2).sum(-1).mean(-1).sqrt()
    if not torch.isfinite(chords).all():
        raise ValueError("the pilot solve diverged (NaN or inf): try more pilot_steps")
    length = torch.cat([torch.zeros(1, dtype=torch.float64), chords.cumsum(0)])
    times = res.times.to(torch.float64)
    total = float(length[-1])
    if not total > 0:
        return GeodesicGrid(g.clone(), times, length, res.nfe, x_pilot.shape[0])
    targets = np.linspace(0.0, total, k + 1)
    # L is non-decreasing; np.interp needs increasing abscissae: drop flat pieces
    keep = np.concatenate([[True], np.diff(length.numpy()) > 0])
    new = np.interp(targets, length.numpy()[keep], times.numpy()[keep])
    new[0], new[-1] = start, end
    # interior times stay below the pilot's last evaluation time (and strictly increasing)
    cap = float(pilot[-2])
    for i in range(k - 1, 0, -1):
        cap = min(new[i], cap)
        new[i] = cap
        cap = np.nextafter(cap, -np.inf) - 1e-9
    out = torch.tensor(new, dtype=torch.float64)
    if not (torch.diff(out) > 0).all():
        return GeodesicGrid(g.clone(), times, length, res.nfe, x_pilot.shape[0])
    return GeodesicGrid(out, times, length, res.nfe, x_pilot.shape[0])


def _geodesic_plan(spec, nfe, ctx, options):
    """The inner solver's own plan (its grid's size and end points; its checks); the sampler
    moves the interior times to equal W2 length. Registered with ``needs_path`` (a diffusion
    or independent-coupling path: not offered to OT-coupled flows, which are near-geodesics
    already); the function itself takes any field with ``inner`` euler or heun."""
    inner = _inner(str(spec.option(options, "inner")))
    return inner.make_plan(nfe, ctx).grid, options


@register(
    "geodesic",
    order=2,
    needs_path=True,
    nfe_per_step=None,
    plan=_geodesic_plan,
    about="an ODE solver on a grid of equal W2 length",
)
def geodesic(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    inner: str = "dpm_solver",
    pilot_size: int = 256,
    pilot_steps: int = 32,
) -> SampleResult:
    """``inner`` (dpm_solver by default, order 2) on the geodesic grid of ``grid``'s size,
    estimated on the first ``pilot_size`` start points (module doc). Deterministic. ``nfe``:
    the inner solver's evaluations of the batch; the pilot's are not counted (module doc)."""
    if int(pilot_size) != pilot_size or pilot_size < 2:
        raise ValueError(f"pilot_size must be an integer >= 2, got {pilot_size!r}")
    spec = _inner(inner)
    field = as_field(field)
    x0 = check_start(x0)
    geo = geodesic_grid(field, x0[: int(pilot_size)], grid, inner=inner, pilot_steps=pilot_steps)
    return spec(field, x0, geo.grid, return_trajectory=return_trajectory)
