"""Grid Benamou-Brenier benchmark: the solver before issue 20 (Papadakis-Peyre-Oudet
Douglas-Rachford, steps 1 then 0.03 relative to the largest density, switched at half the
budget) against `wasserflow.geometry.benamou_brenier` (the current one), to the same frame error.

Problems (``--problem``):

* ``gmm``: the report's reference path, N(0, I) to gmm2d on [-5, 5]^2 with 32 x 32 cells and 16
  time steps (densities at the cell centres, as experiments/paths_grid.py builds them). Frame
  error: the largest L1 distance at t = 1/4, 1/2, 3/4 to a long solve of the current solver
  (``--ref-iters``, 16,000 by default; its distance to a 32,000-iteration solve of the old one
  is printed).
* ``translate``: a two-bump density, 0.5 N(-1, 0.3^2) + 0.5 N(1, 0.5^2), translated from -1 to
  +1 on [-6, 6] with 128 cells and 32 time steps. Frame error: the largest L1 distance at
  t = 1/4, 1/2, 3/4 to the exact translate (the grid error of a converged solve is printed).
* ``gaussians``: the 2-D Gaussian pair on 64 x 64 x 32 cells of the earlier version of this
  benchmark, both solvers at ``--iters`` iterations: the action against the Bures W2^2 and every
  frame against the McCann interpolant (closed forms); ``--pot`` adds POT's emd2.

For each target frame error (``--targets``) the fewest iterations each solver needs is found on
a grid of budgets (ratio ``--ratio``; both solvers change step at a fixed fraction of the budget,
so a budget is one run), then that run is timed ``--repeats`` times: median wall-clock and CPU
(process) seconds. The current solver is also run with its stopping rule (frame_tol = target).

    python benchmarks/benamou_brenier.py                          # gmm and translate, 3 repeats
    python benchmarks/benamou_brenier.py --problem gaussians --pot
    python benchmarks/benamou_brenier.py --quick                  # one target, 1 repeat
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from functools import partial

import numpy as np
import torch
from scipy import fft as sfft
from scipy import stats

from wasserflow.data.mixtures import gmm2d
from wasserflow.geometry import (
    benamou_brenier,
    benamou_brenier_reference,
    gaussian_geodesic,
    gaussian_w2_squared,
    regular_grid,
)
from wasserflow.geometry.ot._dynamic_ops import _average, _take

TIMES = (0.25, 0.5, 0.75)


# ------------------------------------------------------------ the solver before issue 20


class _OldProblem:
    """The operators of the earlier solver (a faithful copy of its algorithm): Douglas-Rachford
    on G1 = iota_C(U) + sum J(V), G2 = iota_{V = I(U)}, Euclidean metric, DCT solves."""

    def __init__(self, rho0, rho1, h, n_times):
        self.d, self.h, self.dt, self.P = len(h), h, 1.0 / n_times, n_times
        self.shape, self.rho0, self.rho1 = rho0.shape, rho0, rho1
        self.weight = self.dt * math.prod(h)
        cells = (n_times, *self.shape)
        lap = np.zeros(cells)
        for ax, (n, step) in enumerate(zip(cells, (self.dt, *h))):
            ev = (2.0 - 2.0 * np.cos(np.pi * np.arange(n) / n)) / step**2
            lap = lap + ev.reshape([-1 if j == ax else 1 for j in range(len(cells))])
        lap.flat[0] = np.inf
        self.inv_lap = 1.0 / lap
        self.normal = []
        for n in cells:
            k = np.arange(n + 1)
            inv = 1.0 / (1.0 + (2.0 - 2.0 * np.cos(np.pi * k / (n + 1))) / 4.0)
            self.normal.append((np.where(k % 2 == 0, 1.0, -1.0), inv))

    def interpolate(self, U):
        return [_average(u, ax) for ax, u in enumerate(U)]

    def project_continuity(self, U):
        U = [u.copy() for u in U]
        U[0][0], U[0][-1] = self.rho0, self.rho1
        for a in range(self.d):
            _take(U[1 + a], 1 + a, slice(0, 1))[...] = 0.0
            _take(U[1 + a], 1 + a, slice(-1, None))[...] = 0.0
        steps = (self.dt, *self.h)
        r = sum(np.diff(u, axis=ax) / s for ax, (u, s) in enumerate(zip(U, steps)))
        q = sfft.idctn(sfft.dctn(r, type=2, norm="ortho") * self.inv_lap, type=2, norm="ortho")
        for ax, (u, s) in enumerate(zip(U, steps)):
            _take(u, ax, slice(1, -1))[...] += np.diff(q, axis=ax) / s
        return U

    def project_interpolation(self, U, V):
        out = []
        for ax, (u, v) in enumerate(zip(U, V)):
            shape = list(v.shape)
            shape[ax] += 1
            b = u.copy()
            _take(b, ax, slice(None, -1))[...] += 0.5 * v
            _take(b, ax, slice(1, None))[...] += 0.5 * v
            sign, inv = (
                a.reshape([-1 if j == ax else 1 for j in range(b.ndim)]) for a in self.normal[ax]
            )
            c = sfft.dct(b * sign, type=2, norm="ortho", axis=ax) * inv
            out.append(sfft.idct(c, type=2, norm="ortho", axis=ax) * sign)
        return out, self.interpolate(out)


def _old_prox(V, gamma, warm):
    """The earlier solver's prox of |m|^2 / (2 f): Newton on the cubic, warm-started."""
    f_t, m2 = V[0], sum(m * m for m in V[1:])
    c, lo = 0.5 * gamma * m2, np.maximum(V[0], 0.0)
    f = lo if warm is None else np.maximum(warm, 0.0)
    for _ in range(100):
        u = f + gamma
        f_new = np.maximum(f - (f - f_t - c / (u * u)) / (1.0 + 2.0 * c / (u * u * u)), lo)
        done = np.max(np.abs(f_new - f)) <= 1e-13 * (1.0 + np.max(np.abs(f_new)))
        f = f_new
        if done:
            break
    f = np.where(f_t + m2 / (2.0 * gamma) > 0, f, 0.0)
    return [f] + [f / (f + gamma) * m for m in V[1:]]


def old_benamou_brenier(rho0, rho1, grid, n_times, max_iter, gamma=1.0, polish=0.03, alpha=1.98):
    """The density path (P + 1, *shape) of the earlier solver after ``max_iter`` iterations."""
    length = max(u - lo for lo, u in zip(grid.lower, grid.upper))
    h = tuple(s / length for s in grid.spacing)
    r0 = rho0 / (rho0.sum() * math.prod(h))
    r1 = rho1 / (rho1.sum() * math.prod(h))
    prob = _OldProblem(r0, r1, h, n_times)
    step, d = gamma * max(r0.max(), r1.max()), len(h)
    t = np.linspace(0.0, 1.0, n_times + 1).reshape([-1] + [1] * d)
    W_U = [(1.0 - t) * r0 + t * r1]
    W_U += [np.zeros((n_times, *[n + (j == a) for j, n in enumerate(r0.shape)])) for a in range(d)]
    W_V, warm = prob.interpolate(W_U), None
    for it in range(max_iter):
        Z_U = prob.project_continuity(W_U)
        Z_V = _old_prox(W_V, step, warm)
        warm = Z_V[0]
        if it == max_iter // 2 and polish != gamma:  # keep the primal and the dual point
            ratio = polish / gamma
            W_U = [z + ratio * (w - z) for z, w in zip(Z_U, W_U)]
            W_V = [z + ratio * (w - z) for z, w in zip(Z_V, W_V)]
            step *= ratio
        Y_U, Y_V = prob.project_interpolation(
            [2 * z - w for z, w in zip(Z_U, W_U)], [2 * z - w for z, w in zip(Z_V, W_V)]
        )
        W_U = [w + alpha * (y - z) for w, y, z in zip(W_U, Y_U, Z_U)]
        W_V = [w + alpha * (y - z) for w, y, z in zip(W_V, Y_V, Z_V)]
    return Z_U[0] / length**d


# ----------------------------------------------------------------------------- problems


def gmm_problem():
    n = 32
    grid = regular_grid(-5.0, 5.0, (n, n))
    pts = grid.points()
    rho0 = torch.exp(-0.5 * (pts**2).sum(1)).reshape(n, n).numpy()
    rho1 = gmm2d().log_prob(pts).exp().reshape(n, n).numpy()
    return grid, rho0, rho1, 16


def two_bumps(x):
    return 0.5 * stats.norm.pdf(x, -1.0, 0.3) + 0.5 * stats.norm.pdf(x, 1.0, 0.5)


def translate_problem():
    grid = regular_grid(-6.0, 6.0, 128)
    x = np.asarray(grid.axes[0])
    exact = [two_bumps(x - (2.0 * t - 1.0)) for t in TIMES]
    return (
        grid,
        two_bumps(x + 1.0),
        two_bumps(x - 1.0),
        32,
        [e / (e.sum() * grid.cell_volume) for e in exact],
    )


def frame_error(density, reference, grid, n_times) -> float:
    frames = [int(round(t * n_times)) for t in TIMES]
    return max(
        float(np.abs(density[k] - r).sum() * grid.cell_volume) for k, r in zip(frames, reference)
    )


def timed(fn, repeats):
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return out, statistics.median(walls), statistics.median(cpus)


def fewest_iterations(solve, error, targets, start, ratio, limit):
    """{target: budget}: the smallest budget on the grid start * ratio^j whose run meets it."""
    found, budget = {}, start
    while budget <= limit and len(found) < len(targets):
        e = error(solve(budget))
        for t in targets:
            if t not in found and e <= t:
                found[t] = budget
        budget = int(math.ceil(budget * ratio))
    return found


# ---------------------------------------------------------------------------------- runs


def race(name, grid, rho0, rho1, n_times, reference, args):
    """Both solvers to every target: iterations (the budget grid), median seconds, speed-up."""
    targets = sorted(args.targets, reverse=True)

    def err(density):
        return frame_error(density, reference, grid, n_times)

    def old(budget):
        return old_benamou_brenier(rho0, rho1, grid, n_times, budget)

    def new(budget):
        return benamou_brenier(
            rho0, rho1, grid, n_times=n_times, max_iter=budget, tol=1e-300
        ).density

    budgets = {
        "old": fewest_iterations(old, err, targets, 100, args.ratio, args.limit),
        "new": fewest_iterations(new, err, targets, 25, args.ratio, args.limit),
    }
    rows = []
    for t in targets:
        row = [name, f"{t:.0e}"]
        times = {}
        for label, solve in (("old", old), ("new", new)):
            budget = budgets[label].get(t)
            if budget is None:
                row += [f"> {args.limit}", "-", "-"]
                continue
            density, wall, cpu = timed(partial(solve, budget), args.repeats)
            times[label] = (wall, cpu)
            row += [str(budget), f"{wall:.2f}", f"{cpu:.2f}"]
        if len(times) == 2:
            row += [
                f"{times['old'][0] / times['new'][0]:.1f}",
                f"{times['old'][1] / times['new'][1]:.1f}",
            ]
        else:
            row += ["-", "-"]
        stop = partial(benamou_brenier, rho0, rho1, grid, n_times=n_times, max_iter=args.limit)
        stopped, wall, cpu = timed(partial(stop, frame_tol=t), args.repeats)
        row += [f"{stopped.iterations} ({err(stopped.density):.1e}, {cpu:.2f})"]
        rows.append(row)
        print(" | ".join(row), flush=True)
    return rows


def run_gmm(args):
    grid, rho0, rho1, P = gmm_problem()
    long = benamou_brenier(rho0, rho1, grid, n_times=P, max_iter=args.ref_iters, tol=1e-300)
    reference = [long.density[int(round(t * P))] for t in TIMES]
    check = "skipped (--old-ref 0)"
    if args.old_ref:
        old = old_benamou_brenier(rho0, rho1, grid, P, args.old_ref)
        check = f"{frame_error(old, reference, grid, P):.1e}"
    print(
        f"gmm: reference {args.ref_iters} iterations (residual {long.residual:.1e}); distance "
        f"of its frames to the old solver's {args.old_ref} iterations: {check}",
        flush=True,
    )
    rows = race("gmm2d 32x32x16", grid, rho0, rho1, P, reference, args)
    for iterations in (None, 500):
        call = partial(benamou_brenier_reference, rho0, rho1, grid, n_times=P, tol=5e-3)
        certified, wall, cpu = timed(partial(call, iterations=iterations), args.repeats)
        print(
            f"gmm: benamou_brenier_reference(tol=5e-3, iterations={iterations}): "
            f"{certified.reference_iterations} then {certified.iterations} iterations, "
            f"grid_reference_l1 {certified.grid_reference_l1:.1e}, "
            f"{frame_error(certified.density, reference, grid, P):.1e} from the reference; "
            f"{wall:.2f} s wall, {cpu:.2f} s CPU (median of {args.repeats})",
            flush=True,
        )
    return rows


def run_translate(args):
    grid, rho0, rho1, P, exact = translate_problem()
    converged = benamou_brenier(rho0, rho1, grid, n_times=P, max_iter=args.ref_iters, tol=1e-300)
    print(
        f"translate: grid error of a {args.ref_iters}-iteration solve against the exact translate "
        f"{frame_error(converged.density, exact, grid, P):.1e}",
        flush=True,
    )
    return race("translate 128x32", grid, rho0, rho1, P, exact, args)


HEADER = (
    "problem | frame error | old iterations | old wall s | old CPU s | new iterations | new wall s "
    "| new CPU s | speed-up wall | speed-up CPU | new, frame_tol stop: iterations (error, CPU s)"
)

M0, C0 = np.array([-1.0, 0.5]), np.array([[0.6, 0.2], [0.2, 0.4]])
M1, C1 = np.array([1.0, -0.5]), np.array([[0.5, -0.1], [-0.1, 0.9]])


def run_gaussians(args):
    """The 2-D Gaussians against the closed forms, both solvers at ``--iters`` iterations."""
    n, P = 64, 32
    grid = regular_grid(-5.0, 5.0, (n, n))
    pts = grid.points().numpy()
    r0 = stats.multivariate_normal(M0, C0).pdf(pts).reshape(n, n)
    r1 = stats.multivariate_normal(M1, C1).pdf(pts).reshape(n, n)
    ends = [torch.tensor(a) for a in (M0, C0, M1, C1)]
    w2sq = float(gaussian_w2_squared(*ends))
    exact = []
    for t in np.linspace(0.0, 1.0, P + 1):
        g = gaussian_geodesic(*ends, float(t))
        exact.append(
            stats.multivariate_normal(g.mean.numpy(), g.cov.numpy()).pdf(pts).reshape(n, n)
        )
    new, wall, cpu = timed(
        lambda: benamou_brenier(r0, r1, grid, n_times=P, max_iter=args.iters), args.repeats
    )
    old, owall, ocpu = timed(lambda: old_benamou_brenier(r0, r1, grid, P, args.iters), args.repeats)
    for label, density, w, c in (("old", old, owall, ocpu), ("new", new.density, wall, cpu)):
        l1 = max(float(np.abs(f - e).sum() * grid.cell_volume) for f, e in zip(density, exact))
        print(
            f"gaussians {n}x{n}x{P}, {args.iters} iterations, {label}: {w:.2f} s wall, "
            f"{c:.2f} s CPU (median of {args.repeats}); max over frames of L1(density, McCann) "
            f"{l1:.2e}"
        )
    relative = (new.action - w2sq) / w2sq
    print(
        f"new: action {new.action:.6f}, W2^2 (Bures) {w2sq:.6f}, relative {relative:+.2e}, "
        f"residual {new.residual:.1e}, mass error {np.abs(new.mass - 1).max():.1e}"
    )
    if args.pot:
        import ot

        t0 = time.perf_counter()
        emd = ot.emd2(
            r0.reshape(-1) / r0.sum(),
            r1.reshape(-1) / r1.sum(),
            ot.dist(pts, pts),
            numItermax=10**8,
        )
        print(
            f"POT emd2 on the same {n * n}-cell histograms: W2^2 {emd:.6f} (relative "
            f"{(emd - w2sq) / w2sq:+.2e}) in {time.perf_counter() - t0:.2f} s"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", choices=["all", "gmm", "translate", "gaussians"], default="all")
    p.add_argument(
        "--targets", type=lambda s: [float(v) for v in s.split(",")], default=[2e-2, 5e-3, 2e-3]
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ratio", type=float, default=1.15, help="the budget grid's ratio")
    p.add_argument("--limit", type=int, default=20_000, help="the largest budget tried")
    p.add_argument(
        "--ref-iters", type=int, default=16_000, help="the reference solve (current solver)"
    )
    p.add_argument(
        "--old-ref",
        type=int,
        default=32_000,
        help="old-solver check of the gmm reference (0: skip)",
    )
    p.add_argument("--iters", type=int, default=1000, help="iterations of the gaussians problem")
    p.add_argument("--pot", action="store_true", help="gaussians: also POT's emd2 on the grid")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.targets, args.repeats, args.ref_iters, args.old_ref, args.iters = (
            [2e-2],
            1,
            3000,
            0,
            300,
        )
    if args.problem in ("all", "gmm", "translate"):
        print(HEADER)
    rows = []
    if args.problem in ("all", "gmm"):
        rows += run_gmm(args)
    if args.problem in ("all", "translate"):
        rows += run_translate(args)
    if rows:
        print("\n| " + HEADER + " |\n|" + "---|" * len(rows[0]))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    if args.problem in ("all", "gaussians"):
        run_gaussians(args)


if __name__ == "__main__":
    main()
