"""Grid Benamou-Brenier benchmark: the W2 geodesic between two 2-D Gaussians on a 64 x 64 grid
with 32 time steps (`wasserflow.geometry.benamou_brenier`, Douglas-Rachford proximal splitting).

rho_0 = N((-1, 0.5), [[0.6, 0.2], [0.2, 0.4]]), rho_1 = N((1, -0.5), [[0.5, -0.1], [-0.1, 0.9]])
evaluated at the cell centres of [-5, 5]^2. Printed, as medians over the repeats: seconds per
iteration and in total, the action against the closed-form W2^2 (Bures, `gaussian_w2_squared`),
and the largest L1 distance between a density frame and the exact McCann interpolant
(`gaussian_geodesic`) over the P + 1 frames. With --pot, POT's exact network simplex
(`ot.emd2`) on the same two grid histograms (n^2 x n^2 cost matrix) gives the static W2^2 of the
discretised densities and its time, for scale.

    python benchmarks/benamou_brenier.py                  # 64 x 64 x 32, 1000 iterations, 3 runs
    python benchmarks/benamou_brenier.py --pot            # and POT's emd2 on the same grid
    python benchmarks/benamou_brenier.py --quick          # 32 x 32 x 16, 300 iterations, 1 run
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from scipy import stats

from wasserflow.geometry import (
    benamou_brenier,
    gaussian_geodesic,
    gaussian_w2_squared,
    regular_grid,
)

M0, C0 = np.array([-1.0, 0.5]), np.array([[0.6, 0.2], [0.2, 0.4]])
M1, C1 = np.array([1.0, -0.5]), np.array([[0.5, -0.1], [-0.1, 0.9]])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64, help="cells per axis")
    p.add_argument("--times", type=int, default=32, help="time steps P")
    p.add_argument("--iters", type=int, default=1000, help="Douglas-Rachford iterations")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pot", action="store_true", help="also time POT's emd2 on the grid")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.n, args.times, args.iters, args.repeats = 32, 16, 300, 1
    n = args.n
    grid = regular_grid(-5.0, 5.0, (n, n))
    pts = grid.points().numpy()
    r0 = stats.multivariate_normal(M0, C0).pdf(pts).reshape(n, n)
    r1 = stats.multivariate_normal(M1, C1).pdf(pts).reshape(n, n)
    ends = [torch.tensor(a) for a in (M0, C0, M1, C1)]
    w2sq = float(gaussian_w2_squared(*ends))

    walls, res = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = benamou_brenier(r0, r1, grid, n_times=args.times, max_iter=args.iters, tol=1e-12)
        walls.append(time.perf_counter() - t0)
    wall = statistics.median(walls)
    l1 = 0.0
    for f, t in zip(res.density, res.times):
        g = gaussian_geodesic(*ends, float(t))
        exact = stats.multivariate_normal(g.mean.numpy(), g.cov.numpy()).pdf(pts).reshape(n, n)
        l1 = max(l1, float(np.abs(f - exact).sum() * grid.cell_volume))
    print(
        f"grid {n} x {n} x {args.times} time steps, {res.iterations} iterations, "
        f"{args.repeats} run(s): {wall:.2f} s total (median; runs {', '.join(f'{w:.2f}' for w in walls)}), "
        f"{1e3 * wall / res.iterations:.2f} ms per iteration"
    )
    print(
        f"action {res.action:.6f}  W2^2 (Bures) {w2sq:.6f}  relative error "
        f"{(res.action - w2sq) / w2sq:+.2e}  residual {res.residual:.1e}"
    )
    print(
        f"max over frames of L1(density, McCann interpolant) {l1:.2e}; "
        f"mass error {np.abs(res.mass - 1).max():.1e}"
    )
    if args.pot:
        import ot

        a = r0.reshape(-1) / r0.sum()
        b = r1.reshape(-1) / r1.sum()
        t0 = time.perf_counter()
        cost = ot.dist(pts, pts)
        emd = ot.emd2(a, b, cost, numItermax=10**8)
        print(
            f"POT emd2 on the same {n * n}-cell histograms: W2^2 {emd:.6f} "
            f"(relative {(emd - w2sq) / w2sq:+.2e}) in {time.perf_counter() - t0:.2f} s"
        )


if __name__ == "__main__":
    main()
