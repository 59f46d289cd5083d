"""Dynamic optimal transport on a regular grid: the Benamou-Brenier problem by proximal splitting.

Benamou & Brenier (2000): for probability densities rho_0, rho_1 on a box Omega,

    W2^2(rho_0, rho_1) = min  A(f, m),   A(f, m) = int_0^1 int_Omega |m|^2 / f  dx dt,

over density paths f(t, x) >= 0 and momenta m = f v with d_t f + div_x m = 0, f(0) = rho_0,
f(1) = rho_1 and no flux through the boundary (m . n = 0 on d Omega). With m = f v the
integrand is f |v|^2, the kinetic energy; A(f, m) is the action of docs/design.md section 1,
equal to W2^2 at the minimiser (not W2^2 / 2: Papadakis et al. minimise J = A / 2, the same
problem). The minimiser is the McCann interpolant f(t) = ((1 - t) id + t T)# rho_0, T the
optimal map, and v is constant along its straight trajectories.

Discretisation (Papadakis, Peyre & Oudet 2014, section 3; cells of width h_a along axis a,
P time steps of dt = 1 / P):

* staggered grid, U = (F, M_1, ..., M_d): F at the time nodes t_k = k dt (k = 0..P) and the
  cell centres; M_a at the time centres t_{k+1/2} and the cell faces normal to axis a
  (n_a + 1 of them along axis a). The boundary conditions are F_0 = rho_0, F_P = rho_1 and
  M_a = 0 on the outer faces; the free unknowns X are the interior nodes and faces;
* the continuity equation is the finite-volume divergence on the space-time cells,
  (F_{k+1} - F_k) / dt + sum_a (M_a(i + 1/2) - M_a(i - 1/2)) / h_a = 0, so sum_i F_k(i) is
  the same at every k, exactly: mass is conserved to round-off;
* centred grid, V = (f, m): the space-time cell centres (t_{k+1/2}, x_i), where the kinetic
  action is evaluated, A_h(V) = dt prod_a h_a sum |m|^2 / f. The interpolation I(U) = V
  averages F over its two time nodes and M_a over its two faces.

The discrete problem  min  sum_points J(V) + iota_K(X, V),  J(f, m) = |m|^2 / (2 f)
(A_h / (2 dt prod h): the same minimiser), K = {V = I(U), U = U(X) satisfies the continuity
equation}, is convex. It is solved by Douglas-Rachford splitting with G_1 = sum J (the X part
free) and G_2 = iota_K,

    Z = prox_{G_1}(W),   W <- W + alpha (prox_{G_2}(2 Z - W) - Z),   0 < alpha < 2,

which converges for every step (Lions & Mercier 1979; Combettes & Pesquet 2011), in the metric
eps |X|^2 + |V|^2 with the momentum components weighted by kappa against the density ones:

* prox of J, per centred point: m = f m~ / (f + g_m) and f the largest real root of the cubic
  (f - f~)(f + g_m)^2 = g_f |m~|^2 / 2 if positive, else (0, 0) (PPO 2014, proposition 1,
  there with g_f = g_m), in closed form (Cardano, or the trigonometric form when the cubic has
  three real roots) and one Newton step;
* projection on K: per component c, N_c X~_c = eps X_c + A_c^T (V_c - the boundary values'
  share), N_c = eps + A_c^T A_c and A_c the averaging along the component's own axis; then
  X_c = X~_c + N_c^-1 D_c^T q / (h_c w_c) with q solving the space-time equation
  L q = div U(X~). The difference D_c maps the sine (DST-I) basis of the interior nodes to the
  cosine (DCT-II) basis of the cells and N_c is diagonal in the former, so L = sum_c D_c
  N_c^-1 D_c^T / (h_c^2 w_c) is diagonal in the DCT-II basis of the space-time cells: one
  exact solve per iteration, O(N log N).

Steps. Lengths are measured in units of the box's longest side; v is the speed of the
transport in these units, the W2 distance between the Gaussians with the moments of rho_0 and
rho_1 (at least one cell width). The momentum weight is kappa / v^2, the steps g_f = gamma /
v^2 and g_m = gamma / kappa; by default kappa = 1, gamma = 6 (0.3 over the last quarter of the
budget, ``gamma_polish``), eps = 0.01, alpha = 1.98. Iterations to a frame error of 5e-3 (L1
at t = 1/4, 1/2, 3/4 against a 6,000-iteration solve) at gamma = 6, without the last quarter's
step, on seven problems: N(0, I) to gmm2d on 32 x 32 x 16 cells 275, 2-D Gaussians on
24 x 24 x 12 175, a 1-D split into two bumps 125, a 1-D two-bump translation 150 (275 with
bumps half as wide, 225 in a box twice as long), 1-D Gaussians 150; the best of gamma in
{1, 2, 4, 8} x kappa in {0.3, 1} and of gamma = 16, kappa = 1 was 100 to 275, at most 1.5x
fewer on each.

How the solver got faster, measured on the two problems of benchmarks/benamou_brenier.py
(iterations to a frame error of 5e-3; gmm2d against a 32,000-iteration solve, the translation
against the exact translate, at t = 1/2 only in these development runs):

* the earlier solver (the splitting above but with the continuity equation in G_1 and
  the interpolation alone in G_2, Euclidean metric, steps 1 then 0.03 relative to the largest
  density from half the budget): 2,552 on gmm2d, 5,136 on the translation (the benchmark);
* the momentum weight (kappa = 30, box units, steps 10 and 30 relative to the largest
  density): 725 and 275;
* the continuity equation and the interpolation projected together (K above), eps = 1: 475
  and 250; eps = 0.01: 275 and 150 (scaled by v as above: 275 and 150 at all three times);
* the last quarter at gamma = 0.3: 196 and 147 (the benchmark). On five of the seven
  problems it lowered the error after 300 iterations 1.8x to 3.6x, on the two slowest it
  raised it 1.3x and 1.9x (after 600 it lowered it on both), and it brings the action
  closer to the minimum: -2.0e-5 against -7.5e-5 relative to W2^2 after 4,000 iterations on
  1-D Gaussians, 128 cells x 64 steps, whose converged grid error is -8.6e-6;
* per iteration, dense products for the transforms along one axis (scipy.fft's DCT of the odd
  lengths 17 and 33 took most of the time) and the closed-form prox (Newton took 6 or 7
  steps): 1.9-2.3 against 2.4-2.7 ms of CPU on gmm2d (32 x 32 x 16, the benchmark).

What did not help (gmm2d and the translation unless said):

* over-relaxation: alpha = 1.98 is the best of 1, 1.5, 1.98 (gmm2d, kappa = 30: > 1,000,
  925 and 725 iterations);
* type-II Anderson acceleration of the fixed-point map (memory 5 and 10): slower, 7.5e-3 and
  1.3e-2 against 5.7e-3 after 600 iterations on gmm2d; inertial extrapolation (0.3 and 0.5)
  diverged;
* adaptive steps by residual balancing (x2 or /2 every 10 iterations): no better than the
  best fixed step (gmm2d 600 against 600 to 725, the translation 350 against 275), and it
  oscillated and diverged with a tight band;
* Chambolle-Pock's primal-dual iteration (PPO 2014, section 4.2): 2.2e-2 after 800
  iterations on gmm2d against 1.7e-2 for Douglas-Rachford with the same step;
* coarse-to-fine warm starts (the primal and the dual point prolonged from 16 x 16 x 8, or
  from 8 time steps; kappa = 30): 725 became 450 to 500 fine iterations, at most 1.25x once
  the coarse solve is counted. The coarse geodesics differ from the fine one by 0.3 (space)
  and 0.12 (time) in L1 at t = 1/4: at 32 x 32 x 16 the grid error is large;
* a metric that undoes the interpolation (A^T A + eps on the staggered unknowns: no change),
  pointwise steps proportional to the density (9.1e-2 against 1.7e-2 after 800 iterations),
  weighting V against U (no change, or 3x slower), geometric step schedules (at most 2x at a
  fixed budget, before the changes above).

Stopping. ``tol`` stops on the constraint residual |I(U) - V| / |V| and the change of the
iterate; ``frame_tol`` on the estimated L1 error of the density frames, e_k = max_t |F_k(t) -
F_s(t)| / (sqrt(k / s) - 1) with s the last of 25 * 2^j iterations <= k / 2 (it bounds the
error if the error decays like k^-p, p >= 1/2; measured on the seven problems, iterations 50
to 1,500: the true error against a 6,000-iteration solve was 0.02 to 0.58 of the estimate,
medians 0.09 to 0.35 per problem, while the change over a fixed 25 iterations scaled by k / 25
was up to 1.9x too small where the error stalled). :func:`benamou_brenier_reference`
certifies a path: it solves to ``frame_tol``, continues to ``factor`` times the iterations and
returns the L1 distance of the two paths at the compared times.

As a discretisation of the continuous problem the action converges to W2^2 at second order in
the grid size for smooth densities well inside the box (measured in
tests/geometry/test_benamou_brenier.py: order 2.0 from 48 to 96 cells on a 1-D problem where
the mass splits in two; between Gaussians the leading space term nearly cancels, order about
4 in h at fixed dt, and the time error is second order).

References: J.-D. Benamou & Y. Brenier (2000), "A computational fluid mechanics solution to the
Monge-Kantorovich mass transfer problem", Numer. Math. 84; N. Papadakis, G. Peyre & E. Oudet
(2014), "Optimal transport with proximal splitting", SIAM J. Imaging Sci. 7(1); P.-L. Lions &
B. Mercier (1979), "Splitting algorithms for the sum of two nonlinear operators", SIAM J.
Numer. Anal. 16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from ._dynamic_ops import DouglasRachford, Operators
from .gaussian import gaussian_w2_squared

__all__ = ["BenamouBrenierResult", "benamou_brenier", "benamou_brenier_reference"]

EPS = 0.01  # the weight of the staggered unknowns in the metric (eps above)


class GridLike(Protocol):
    """A box prod_a [lower_a, upper_a] cut into shape_a equal cells, e.g.
    :class:`wasserflow.geometry.RegularGrid` (from :func:`wasserflow.geometry.regular_grid`)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    shape: tuple[int, ...]


@dataclass(frozen=True)
class BenamouBrenierResult:
    """The grid W2 geodesic between two densities (:func:`benamou_brenier`).

    Attributes:
        density: the density path F, (P + 1, *grid.shape) at times ``times``, float64; each
            frame has sum * cell_volume = 1 (to round-off), frame 0 is rho_0 and frame P is
            rho_1 (both normalised to unit mass). Small negative values can occur where the
            density is near zero (the continuity constraint does not impose f >= 0; the
            proximal iterate where the action is evaluated has f >= 0).
        momentum: m = f v at the space-time cell centres (t_{k+1/2}, x_i), (P, *grid.shape, d):
            the interpolation I(U) of the staggered fluxes, which satisfy the continuity
            equation with ``density`` exactly.
        times: t_k = k / P, (P + 1,).
        action: int_0^1 int |m|^2 / f dx dt of the final iterate (the discrete A_h(V)); equal
            to W2^2(rho_0, rho_1) at convergence, up to the discretisation error.
        residual: the final constraint residual |I(U) - V| / |V|.
        action_history: the action after every iteration, (iterations,).
        residual_history: the constraint residual after every iteration, (iterations,).
        mass: sum density * cell_volume at every time, (P + 1,).
        iterations: the Douglas-Rachford iterations run.
        converged: whether the residual and the relative change of the iterate both fell
            below ``tol`` (``stop == "tol"``).
        gamma, gamma_polish, alpha, kappa: the parameters used (:func:`benamou_brenier`).
        lower, upper, shape: the grid.
        speed: v, the transport speed that scales the steps (grid units): the W2 distance
            between the Gaussians with the endpoints' moments, at least one cell width.
        stop: why the iteration stopped: "tol", "frame" (``frame_tol``) or "budget".
        frame_error: the last estimate of the L1 error of the density frames (nan if never
            estimated); ``frame_error_history`` at iterations ``checked_at``.
        reference_times, reference_l1: :func:`benamou_brenier_reference` only: the L1 distance
            between ``density`` and the density of the same solve stopped ``factor`` times
            earlier (after ``reference_iterations``), at the frames nearest reference_times.
    """

    density: np.ndarray
    momentum: np.ndarray
    times: np.ndarray
    action: float
    residual: float
    action_history: np.ndarray
    residual_history: np.ndarray
    mass: np.ndarray
    iterations: int
    converged: bool
    gamma: float
    gamma_polish: float
    alpha: float
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    shape: tuple[int, ...]
    kappa: float = 1.0
    speed: float = math.nan
    stop: str = "budget"
    frame_error: float = math.nan
    frame_error_history: np.ndarray = field(default_factory=lambda: np.zeros(0))
    checked_at: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    reference_times: tuple[float, ...] = ()
    reference_l1: tuple[float, ...] = ()
    reference_iterations: int = 0

    @property
    def w2_squared(self) -> float:
        return self.action

    @property
    def w2(self) -> float:
        return math.sqrt(max(self.action, 0.0))

    @property
    def cell_volume(self) -> float:
        return math.prod((u - lo) / n for lo, u, n in zip(self.lower, self.upper, self.shape))

    @property
    def grid_reference_l1(self) -> float:
        """max(reference_l1): the largest L1 change of a compared frame over the last
        (factor - 1) / factor of the iterations (nan without a reference)."""
        return max(self.reference_l1) if self.reference_l1 else math.nan


# ------------------------------------------------------------------------------------ helpers


def _as_density(rho, shape: tuple[int, ...], name: str) -> np.ndarray:
    if isinstance(rho, torch.Tensor):
        rho = rho.detach().cpu().to(torch.float64).numpy()
    rho = np.asarray(rho, dtype=np.float64)
    if rho.shape != shape:
        raise ValueError(
            f"{name} has shape {rho.shape}, the grid {shape}: evaluate it at the grid's cells"
        )
    if not np.isfinite(rho).all() or (rho < 0).any():
        raise ValueError(f"{name} must be finite and non-negative (a density at the cell centres)")
    if rho.sum() <= 0:
        raise ValueError(f"{name} has no mass: a density needs positive values")
    return rho


def _grid_geometry(grid) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]:
    try:
        lower = tuple(float(v) for v in grid.lower)
        upper = tuple(float(v) for v in grid.upper)
        shape = tuple(int(n) for n in grid.shape)
    except (AttributeError, TypeError):
        raise ValueError(
            "grid must have lower, upper and shape (use wasserflow.geometry.regular_grid)"
        ) from None
    if not (len(lower) == len(upper) == len(shape)) or not shape:
        raise ValueError(f"grid needs one lower, upper and shape entry per axis, got {grid}")
    if min(shape) < 2 or any(u <= lo for lo, u in zip(lower, upper)):
        raise ValueError(f"grid {grid} needs >= 2 cells per axis and upper > lower")
    return lower, upper, shape


def _check_options(
    n_times, max_iter, tol, gamma, kappa, gamma_polish, polish_from, alpha, frame_tol, check_every
):
    def positive_int(name, v, least):
        if isinstance(v, bool) or int(v) != v or v < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")

    positive_int("n_times", n_times, 2)
    positive_int("max_iter", max_iter, 1)
    positive_int("check_every", check_every, 1)
    if not 0.0 < alpha < 2.0:
        raise ValueError(f"alpha must lie in (0, 2) (Douglas-Rachford relaxation), got {alpha}")
    polish = gamma if gamma_polish is None else gamma_polish
    if not (gamma > 0 and polish > 0 and kappa > 0 and math.isfinite(gamma * polish * kappa)):
        raise ValueError(
            f"gamma, gamma_polish and kappa must be positive, got {gamma}, {gamma_polish}, {kappa}"
        )
    if not 0.0 <= polish_from <= 1.0:
        raise ValueError(f"polish_from is a fraction of max_iter in [0, 1], got {polish_from}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if frame_tol is not None and not frame_tol > 0:
        raise ValueError(
            f"frame_tol must be positive (an L1 error of the frames) or None, got {frame_tol}"
        )


def _speed(r0: np.ndarray, r1: np.ndarray, h: tuple[float, ...]) -> float:
    """The W2 distance between the Gaussians with the moments of rho_0 and rho_1 (unit-mass
    densities at the cell centres (i + 1/2) h), at least the smallest cell width."""
    axes = [(np.arange(n) + 0.5) * step for n, step in zip(r0.shape, h)]
    x = torch.tensor(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(h)))

    def moments(r):
        w = torch.tensor(r.reshape(-1) / r.sum())
        mean = w @ x
        return mean, ((x - mean) * w[:, None]).T @ (x - mean)

    w2sq = float(gaussian_w2_squared(*moments(r0), *moments(r1)))
    return max(math.sqrt(max(w2sq, 0.0)), min(h))


@dataclass(frozen=True)
class _Units:
    """The map between the grid's units and the internal ones (the box's longest side is 1)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    shape: tuple[int, ...]
    length: float
    speed: float


def _solver(rho0, rho1, grid, n_times: int, gamma: float, kappa: float, alpha: float):
    lower, upper, shape = _grid_geometry(grid)
    r0 = _as_density(rho0, shape, "rho0")
    r1 = _as_density(rho1, shape, "rho1")
    length = max(u - lo for lo, u in zip(lower, upper))
    h = tuple((u - lo) / n / length for lo, u, n in zip(lower, upper, shape))
    r0 = r0 / (r0.sum() * math.prod(h))
    r1 = r1 / (r1.sum() * math.prod(h))
    v = _speed(r0, r1, h)
    ops = Operators(r0, r1, h, int(n_times), kappa / v**2, EPS)
    solver = DouglasRachford(ops, gamma / v**2, gamma / kappa, alpha)
    return solver, _Units(lower, upper, shape, length, v)


def _result(solver: DouglasRachford, units: _Units, stop: str, options: dict, **reference):
    ops, d, length = solver.ops, len(units.shape), units.length
    density = solver.U[0] / length**d
    cell_volume = math.prod((u - lo) / n for lo, u, n in zip(units.lower, units.upper, units.shape))
    errors = solver.frame_errors
    return BenamouBrenierResult(
        density=density,
        momentum=np.stack(ops.interpolate(solver.U)[1:], axis=-1) * length ** (1 - d),
        times=np.linspace(0.0, 1.0, ops.P + 1),
        action=solver.actions[-1] * length**2,
        residual=solver.residuals[-1],
        action_history=np.asarray(solver.actions) * length**2,
        residual_history=np.asarray(solver.residuals),
        mass=density.reshape(ops.P + 1, -1).sum(1) * cell_volume,
        iterations=solver.iterations,
        converged=stop == "tol",
        lower=units.lower,
        upper=units.upper,
        shape=units.shape,
        speed=units.speed * length,
        stop=stop,
        frame_error=errors[-1] if errors else math.nan,
        frame_error_history=np.asarray(errors),
        checked_at=np.asarray(solver.checked_at, dtype=int),
        **options,
        **reference,
    )


def _run(solver, max_iter, tol, frame_tol, check_every, gamma, gamma_polish, polish_from) -> str:
    """Run to ``max_iter`` iterations in all, at ``gamma_polish`` from polish_from * max_iter."""
    if gamma_polish is not None and gamma_polish != gamma:
        stop = solver.run(int(polish_from * max_iter), tol, frame_tol, check_every)
        if stop != "budget":
            return stop
        scale = gamma_polish / gamma
        solver.set_steps(solver.gamma_f * scale, solver.gamma_m * scale)
    return solver.run(max_iter, tol, frame_tol, check_every)


# --------------------------------------------------------------------------------- the solver


def benamou_brenier(
    rho0,
    rho1,
    grid: GridLike,
    *,
    n_times: int = 32,
    max_iter: int = 1000,
    tol: float = 1e-6,
    frame_tol: float | None = None,
    check_every: int = 25,
    gamma: float = 6.0,
    kappa: float = 1.0,
    gamma_polish: float | None = 0.3,
    polish_from: float = 0.75,
    alpha: float = 1.98,
) -> BenamouBrenierResult:
    """The W2 geodesic between two densities on a regular grid (Benamou-Brenier, solved by
    Douglas-Rachford proximal splitting on a staggered grid; see the module docstring).

    Args:
        rho0, rho1: densities at the cell centres of ``grid`` (arrays or tensors of shape
            ``grid.shape``; 1-D and 2-D grids are tested, any d works), non-negative; each is
            normalised to unit mass (sum * cell_volume = 1). Keep their mass away from the
            boundary: the box has no-flux walls, so the answer is W2 on the box.
        grid: the box and its cells, e.g. ``wasserflow.geometry.regular_grid(-4, 4, (64, 64))``
            (anything with ``lower``, ``upper`` and ``shape``).
        n_times: P, the number of time steps (the density path has P + 1 frames).
        max_iter: the iteration budget.
        tol: stop once the constraint residual |I(U) - V| / |V| and the relative change of the
            iterate are both below it (where the densities nearly vanish on part of the box
            the residual decays slowly: stop on ``frame_tol`` instead).
        frame_tol: stop once the estimated L1 error of every density frame is at most this
            (checked every ``check_every`` iterations; the estimate is conservative: the
            measured error was 0.02 to 0.58 of it, see the module docstring); None: no such
            stop.
        gamma, kappa: the proximal step on the density and the weight of the momentum in the
            metric, both in units of 1 / v^2 (v the transport speed in units of the box's
            longest side; the result's ``speed`` is v in the grid's units); the step on the
            momentum is gamma / kappa.
        gamma_polish, polish_from: from ``polish_from * max_iter`` on, the step ``gamma_polish``
            (None: no switch); the primal and the dual point are kept at the switch.
        alpha: the relaxation, 0 < alpha < 2.

    Returns:
        :class:`BenamouBrenierResult` (density path, momentum, action ~ W2^2, history).

    Cost: O(P N log(P N)) per iteration for N cells (one space-time DCT pair, dense products
    along one axis per component, a closed-form cubic per centred point). N(0, I) to gmm2d on
    32 x 32 x 16 cells: 2 ms of CPU per iteration; a budget of 196 iterations gives frames
    within 5e-3 of a 16,000-iteration solve, where the earlier solver needed 2,552
    (benchmarks/benamou_brenier.py).
    """
    _check_options(
        n_times,
        max_iter,
        tol,
        gamma,
        kappa,
        gamma_polish,
        polish_from,
        alpha,
        frame_tol,
        check_every,
    )
    solver, units = _solver(rho0, rho1, grid, n_times, gamma, kappa, alpha)
    stop = _run(
        solver, int(max_iter), tol, frame_tol, int(check_every), gamma, gamma_polish, polish_from
    )
    options = {
        "gamma": float(gamma),
        "gamma_polish": float(gamma if gamma_polish is None else gamma_polish),
    }
    return _result(solver, units, stop, options | {"alpha": float(alpha), "kappa": float(kappa)})


def benamou_brenier_reference(
    rho0,
    rho1,
    grid: GridLike,
    *,
    n_times: int = 32,
    tol: float = 5e-3,
    times: tuple[float, ...] = (0.25, 0.5, 0.75),
    factor: int = 4,
    iterations: int | None = None,
    max_iter: int = 50_000,
    check_every: int = 25,
    gamma: float = 6.0,
    kappa: float = 1.0,
    alpha: float = 1.98,
) -> BenamouBrenierResult:
    """A grid geodesic certified against a longer solve: within ``tol`` in L1, at the frames
    nearest ``times``, of the same solve run ``factor`` times longer.

    Solves for ``iterations`` (None: until the frame error estimate of :func:`benamou_brenier`
    is at most ``tol``), n iterations, keeps those frames, continues the same iteration (the
    step ``gamma`` throughout) to factor * n and measures the L1 distances; while one exceeds
    ``tol`` it continues to factor times as many again (n <- factor * n), up to ``max_iter``
    in all. Returns the longest solve, with ``reference_l1`` (the distances, one per time; the
    report's ``grid_reference_l1`` is their maximum), ``reference_times`` (the frames' times)
    and ``reference_iterations`` (n); ``stop`` is "budget" if the distance was not reached.
    Other arguments as in :func:`benamou_brenier`. N(0, I) to gmm2d on 32 x 32 x 16 cells,
    tol = 5e-3: n = 1,025 by the estimate, 4,100 iterations in all, grid_reference_l1 1.7e-3
    (benchmarks/benamou_brenier.py has the seconds).
    """
    _check_options(n_times, max_iter, 1e-300, gamma, kappa, None, 0.5, alpha, tol, check_every)
    if isinstance(factor, bool) or int(factor) != factor or factor < 2:
        raise ValueError(
            f"factor must be an integer >= 2 (the longer solve's multiple), got {factor!r}"
        )
    if iterations is not None and (isinstance(iterations, bool) or int(iterations) < 1):
        raise ValueError(f"iterations must be a positive integer or None, got {iterations!r}")
    if not times or any(not 0.0 <= t <= 1.0 for t in times):
        raise ValueError(f"times must be a non-empty sequence in [0, 1], got {times!r}")
    solver, units = _solver(rho0, rho1, grid, n_times, gamma, kappa, alpha)
    frames = sorted({int(round(t * n_times)) for t in times})
    cell = math.prod(solver.ops.h)
    factor, max_iter, every = int(factor), int(max_iter), int(check_every)
    if iterations is None:
        solver.run(max_iter // factor, 1e-300, tol, every)
    else:
        solver.run(min(int(iterations), max_iter // factor), 1e-300, None, every)
    while True:
        n, kept = solver.iterations, [solver.U[0][k] for k in frames]
        solver.run(min(factor * n, max_iter), 1e-300, None, every)
        l1 = tuple(float(np.abs(solver.U[0][k] - f).sum() * cell) for k, f in zip(frames, kept))
        if max(l1) <= tol or factor * solver.iterations > max_iter:
            break
    reference = {
        "reference_times": tuple(k / n_times for k in frames),
        "reference_l1": l1,
        "reference_iterations": n,
    }
    options = {
        "gamma": float(gamma),
        "gamma_polish": float(gamma),
        "alpha": float(alpha),
        "kappa": float(kappa),
    }
    return _result(solver, units, "frame" if max(l1) <= tol else "budget", options, **reference)
