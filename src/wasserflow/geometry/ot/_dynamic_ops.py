"""The discrete operators and the Douglas-Rachford iteration of :mod:`.dynamic` (see its
docstring for the mathematics; internal units: the box's longest side is 1, time runs over
[0, 1]).

Unknowns: U = [F (P + 1, *n), M_a (P, ..., n_a + 1, ...)] on the staggered grid and V = [f, m_a]
(P, *n) at the space-time cell centres. Every map here is the proximal map of its function in
the metric |F|^2 + kappa sum_a |M_a|^2 (and |f|^2 + kappa sum_a |m_a|^2 on V), kappa the
momentum weight of :func:`~wasserflow.geometry.benamou_brenier`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft

# axes at most this long are transformed by a dense matrix product, longer ones by scipy.fft
# (measured on 16 x 32 x 32 cells: 0.10-0.15 ms against 0.2-0.4 ms for scipy.fft.dctn)
_DENSE_MAX = 32
_GEMM_MNK = 131072  # OpenBLAS threads a product above 4 * 65536 multiply-adds


def _take(a: np.ndarray, axis: int, sl: slice) -> np.ndarray:
    idx = [slice(None)] * a.ndim
    idx[axis] = sl
    return a[tuple(idx)]


def _average(a: np.ndarray, axis: int) -> np.ndarray:
    """The interpolation from nodes to centres along ``axis`` (n + 1 values -> n)."""
    return 0.5 * (_take(a, axis, slice(None, -1)) + _take(a, axis, slice(1, None)))


def _average_adjoint(v: np.ndarray, axis: int) -> np.ndarray:
    """The adjoint of :func:`_average` (n values -> n + 1)."""
    shape = list(v.shape)
    shape[axis] += 1
    out = np.zeros(shape)
    _take(out, axis, slice(None, -1))[...] += 0.5 * v
    _take(out, axis, slice(1, None))[...] += 0.5 * v
    return out


def _along(mat: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
    """mat applied to every line of x along ``axis``, in matrix products of at most _GEMM_MNK
    multiply-adds each: OpenBLAS runs larger ones on several threads, which on a loaded 2-core
    machine made one 32 x 32 x 16 iteration 13x slower (26 ms against 2 ms)."""
    last = x.shape[-1]
    if 0 < axis == x.ndim - 2 and mat.size * last <= _GEMM_MNK:
        return mat @ x  # one small product per leading index
    if axis == x.ndim - 1:
        lines = x.reshape(-1, last)
        rows = max(1, _GEMM_MNK // mat.size)
        out = np.concatenate([lines[s : s + rows] @ mat.T for s in range(0, len(lines), rows)])
        return out.reshape(*x.shape[:-1], mat.shape[0])
    xm = np.moveaxis(x, axis, 0)
    cols = xm.reshape(xm.shape[0], -1)
    width = max(1, _GEMM_MNK // mat.size)
    out = np.concatenate([mat @ cols[:, s : s + width] for s in range(0, cols.shape[1], width)], 1)
    return np.moveaxis(out.reshape(mat.shape[0], *xm.shape[1:]), 0, axis)


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix, C[k, i] = c_k cos(pi k (i + 1/2) / n)."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    c = np.cos(np.pi * k * (i + 0.5) / n) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


def _interior_inverse(n: int, eps: float) -> np.ndarray:
    """(eps Id + A^T A)^-1 on the n - 1 interior nodes of n cells, A the averaging to the cell
    centres with the two end nodes held at zero: A^T A = (2 Id + T) / 4, T the tridiagonal
    matrix of ones off the diagonal, is diagonal in the orthonormal DST-I basis S (S = S^T =
    S^-1) with eigenvalues (2 + 2 cos(pi j / n)) / 4, j = 1..n-1. Built as S diag S (not by
    numpy.linalg.inv, whose threaded LAPACK took 0.3 s at n = 128 on the loaded machine)."""
    j = np.arange(1, n)
    sine = np.sin(np.pi * np.outer(j, j) / n) * math.sqrt(2.0 / n)
    inverse_eigen = 1.0 / (eps + (2.0 + 2.0 * np.cos(np.pi * j / n)) / 4.0)
    return _along(sine * inverse_eigen, sine, 0)


class Operators:
    """The discrete operators on one grid, in the metric |F|^2 + kappa sum_a |M_a|^2 (the same on
    V), with the staggered unknowns weighted by ``eps`` against the centred ones."""

    def __init__(self, rho0, rho1, h: tuple[float, ...], n_times: int, kappa: float, eps: float):
        self.d, self.h, self.P, self.dt = len(h), h, n_times, 1.0 / n_times
        self.shape = rho0.shape
        self.rho0, self.rho1 = rho0, rho1
        self.kappa, self.eps = kappa, eps
        self.weight = self.dt * math.prod(h)  # dt * cell volume
        self.cells = (n_times, *self.shape)
        self.steps = (self.dt, *h)
        self.metric = (1.0,) + (kappa,) * self.d
        lap = np.zeros(self.cells)
        for ax, (n, step, w) in enumerate(zip(self.cells, self.steps, self.metric)):
            c = np.cos(np.pi * np.arange(n) / n)
            ev = (2.0 - 2.0 * c) / ((eps + (2.0 + 2.0 * c) / 4.0) * step**2 * w)
            lap = lap + ev.reshape(_axis_shape(ax, len(self.cells)))
        lap.flat[0] = np.inf  # the constant mode: solvable because the masses are equal
        self.inv_lap = 1.0 / lap
        self.dct = [_dct_matrix(n) if n <= _DENSE_MAX else None for n in self.cells]
        self.inverse = [_interior_inverse(n, eps) for n in self.cells]

    def full(self, X: list[np.ndarray]) -> list[np.ndarray]:
        """The staggered field U from its interior unknowns X and the boundary conditions."""
        U = [np.concatenate([self.rho0[None], X[0], self.rho1[None]], 0)]
        for a in range(self.d):
            zero = np.zeros_like(_take(X[1 + a], 1 + a, slice(0, 1)))
            U.append(np.concatenate([zero, X[1 + a], zero], 1 + a))
        return U

    def interpolate(self, U: list[np.ndarray]) -> list[np.ndarray]:
        return [_average(u, ax) for ax, u in enumerate(U)]

    def divergence(self, U: list[np.ndarray]) -> np.ndarray:
        div = np.diff(U[0], axis=0) / self.dt
        for a in range(self.d):
            div += np.diff(U[1 + a], axis=1 + a) / self.h[a]
        return div

    def _poisson(self, r: np.ndarray) -> np.ndarray:
        """L^-1 r for the weighted space-time operator L of :meth:`project`, by DCT-II."""
        for ax, c in enumerate(self.dct):
            r = _along(c, r, ax) if c is not None else sfft.dct(r, 2, axis=ax, norm="ortho")
        r *= self.inv_lap
        for ax, c in enumerate(self.dct):
            r = _along(c.T, r, ax) if c is not None else sfft.idct(r, 2, axis=ax, norm="ortho")
        return r

    def project(self, X: list[np.ndarray], V: list[np.ndarray]):
        """The nearest feasible point: V' = I(U'), U' = full(X') satisfying the continuity
        equation, minimising eps |X' - X|^2 + |V' - V|^2 (metric weights per component).

        Per component c: N_c X~_c = eps X_c + A_c^T (V_c - boundary values), N_c = eps + A_c^T A_c;
        then X'_c = X~_c - N_c^-1 D_c^T q / (h_c w_c) with L q = div U~, L = sum_c D_c N_c^-1
        D_c^T / (h_c^2 w_c). D_c maps the DST-I basis of the interior nodes to the DCT-II basis
        of the cells and N_c is diagonal in the former, so L is diagonal in the DCT-II basis.
        Returns (X', U', V').
        """
        rhs = [v.copy() for v in V]
        rhs[0][0] -= 0.5 * self.rho0
        rhs[0][-1] -= 0.5 * self.rho1
        Xt = [
            _along(self.inverse[c], self.eps * x + _average(r, c), c)
            for c, (x, r) in enumerate(zip(X, rhs))
        ]
        q = self._poisson(self.divergence(self.full(Xt)))
        Xn = []
        for c, (x, inv) in enumerate(zip(Xt, self.inverse)):
            grad = np.diff(q, axis=c) / (self.steps[c] * self.metric[c])
            Xn.append(x + _along(inv, grad, c))
        U = self.full(Xn)
        return Xn, U, self.interpolate(U)

    def action(self, V: list[np.ndarray]) -> float:
        f = V[0]
        m2 = sum(m * m for m in V[1:])
        pos = f > 0
        return float(self.weight * np.sum(m2[pos] / f[pos]))


def _axis_shape(axis: int, ndim: int) -> list[int]:
    return [-1 if j == axis else 1 for j in range(ndim)]


def prox_kinetic(V: list[np.ndarray], gamma_f: float, gamma_m: float) -> list[np.ndarray]:
    """The prox of J(f, m) = |m|^2 / (2 f) per point in the metric (f: 1 / gamma_f, m: 1 / gamma_m).

    Minimising J + (f - f~)^2 / (2 gamma_f) + |m - m~|^2 / (2 gamma_m): m = f m~ / (f + gamma_m)
    and f the largest real root of (f - f~) (f + gamma_m)^2 = gamma_f |m~|^2 / 2 if it is
    positive, else (0, 0) (PPO 2014, proposition 1, for gamma_f = gamma_m). With y = f + gamma_m,
    a = f~ + gamma_m and c = gamma_f |m~|^2 / 2 the cubic is y^2 (y - a) = c, whose largest root
    is, when 4 D = c (c + 4 a^3 / 27) >= 0, y = t + a / 3 + a^2 / (9 t) with t^3 = a^3 / 27 +
    c / 2 + sqrt(D) (Cardano's formula, written without the cancelling second cube root), and
    otherwise (a < 0, three real roots) y = a / 3 + 2 (|a| / 3) cos(arccos(27 c / (2 |a|^3) - 1)
    / 3); one Newton step then removes the round-off. Against Newton's iteration to 1e-13 the
    root agrees to 2e-16 (relative) and costs 2 to 4 times less on 32 x 64 x 64 points.
    """
    f_t = V[0]
    m2 = sum(m * m for m in V[1:])
    c = 0.5 * gamma_f * m2
    a = f_t + gamma_m
    a3 = a * a * a / 27.0
    disc = c * (c + 4.0 * a3)
    three = disc < 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.cbrt(a3 + 0.5 * c + 0.5 * np.sqrt(np.maximum(disc, 0.0)))
        y = np.where(t != 0.0, t + a / 3.0 + a * a / (9.0 * t), a)
    if three.any():
        r = -a[three] / 3.0  # > 0
        cos = np.clip(c[three] / (2.0 * r**3) - 1.0, -1.0, 1.0)
        y[three] = 2.0 * r * np.cos(np.arccos(cos) / 3.0) - r
    y -= (y * y * (y - a) - c) / np.maximum(y * (3.0 * y - 2.0 * a), 1e-300)
    f = np.maximum(y - gamma_m, 0.0)
    f[f_t + c / (gamma_m * gamma_m) <= 0.0] = 0.0  # the root is <= 0: the prox is (0, 0)
    scale = f / (f + gamma_m)
    return [f] + [scale * m for m in V[1:]]


def norm(xs: list[np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum(x * x)) for x in xs))  # not vdot: a threaded BLAS call


class DouglasRachford:
    """Douglas-Rachford on G1(X, V) = sum J(V) and G2 = the indicator of the feasible set (see
    :meth:`Operators.project`), resumable: ``run`` continues where the previous call stopped.
    ``gamma_f``, ``gamma_m`` are the proximal steps of J on f and on m (absolute)."""

    def __init__(self, ops: Operators, gamma_f: float, gamma_m: float, alpha: float):
        self.ops, self.gamma_f, self.gamma_m, self.alpha = ops, gamma_f, gamma_m, alpha
        t = np.linspace(0.0, 1.0, ops.P + 1)[1:-1].reshape([-1] + [1] * ops.d)
        X = [(1.0 - t) * ops.rho0 + t * ops.rho1]  # the linear interpolation, no momentum
        X += [np.zeros(_interior_face_shape(ops, a)) for a in range(ops.d)]
        self.W_X, self.W_V = X, ops.interpolate(ops.full(X))
        self.U, self.Z_V = ops.full(X), None
        self.actions: list[float] = []
        self.residuals: list[float] = []
        self.frame_errors: list[float] = []
        self.checked_at: list[int] = []
        self._snapshots: dict[int, np.ndarray] = {}
        self._prev = None

    @property
    def iterations(self) -> int:
        return len(self.actions)

    def set_steps(self, gamma_f: float, gamma_m: float) -> None:
        """Change the steps keeping the primal point Z_V = prox(W_V) and the dual point
        (W_V - Z_V) / step: Z_V = prox_{s' J}(Z_V + (s' / s)(W_V - Z_V)) (per component)."""
        Z_V = prox_kinetic(self.W_V, self.gamma_f, self.gamma_m)
        ratios = [gamma_f / self.gamma_f] + [gamma_m / self.gamma_m] * self.ops.d
        self.W_V = [z + r * (w - z) for z, w, r in zip(Z_V, self.W_V, ratios)]
        self.gamma_f, self.gamma_m = gamma_f, gamma_m

    def step(self) -> None:
        """Z = prox_{G1}(W) (the X part is free: Z_X = W_X), Y = prox_{G2}(2 Z - W),
        W <- W + alpha (Y - Z)."""
        self._prev = (self.U, self.Z_V)
        Z_V = prox_kinetic(self.W_V, self.gamma_f, self.gamma_m)
        Y_X, self.U, Y_V = self.ops.project(self.W_X, [2.0 * z - w for z, w in zip(Z_V, self.W_V)])
        a = self.alpha
        self.W_X = [w + a * (y - w) for w, y in zip(self.W_X, Y_X)]
        self.W_V = [w + a * (y - z) for w, y, z in zip(self.W_V, Y_V, Z_V)]
        self.Z_V = Z_V
        self.residuals.append(norm([y - z for y, z in zip(Y_V, Z_V)]) / max(norm(Z_V), 1e-300))
        self.actions.append(self.ops.action(Z_V))

    def change(self) -> float:
        """The relative change of (U, Z_V) in the last iteration."""
        if self._prev is None or self._prev[1] is None:
            return math.inf
        now, prev = self.U + self.Z_V, self._prev[0] + self._prev[1]
        return norm([a - b for a, b in zip(now, prev)]) / max(norm(now), 1e-300)

    def run(self, max_iter: int, tol: float, frame_tol: float | None, check_every: int) -> str:
        """Iterate until ``max_iter`` iterations in all or a stopping rule holds: "tol" (the
        residual and the change of the iterate below ``tol``), "frame" (the frame error
        estimate of :meth:`frame_error`, taken every ``check_every`` iterations, at most
        ``frame_tol``) or "budget"."""
        while self.iterations < max_iter:
            self.step()
            k = self.iterations
            if self.residuals[-1] < tol and self.change() < tol:
                return "tol"
            if frame_tol is not None and k % check_every == 0:
                if self.frame_error(check_every) <= frame_tol:
                    return "frame"
        return "budget"

    def frame_error(self, every: int) -> float:
        """The estimate e_k = max_t |F_k(t) - F_s(t)|_L1 / (sqrt(k / s) - 1) of the L1 distance
        of the density frames F_k to those of the converged solution, s the last snapshot
        iteration every * 2^j <= k / 2 (inf before there is one).

        If e_k = c k^-p, |F_k - F_s| >= e_s - e_k = e_k ((k / s)^p - 1), so the estimate bounds
        e_k for every p >= 1/2. Measured on seven problems of 1-D and 2-D grids (N(0, I) to
        gmm2d at 32 x 32 x 16, translations, Gaussians, a split into two bumps), iterations 50
        to 1,500: the true error against a 6,000-iteration solve was 0.02 to 0.58 of the
        estimate (the frame change over a fixed 25 iterations, scaled by k / 25, was up to 1.9
        times too small where the error stalled for 200 iterations).
        """
        k, F = self.iterations, self.U[0]
        if k % every == 0 and (k // every) & (k // every - 1) == 0:  # k = every * 2^j
            self._snapshots[k] = F
        s = max((j for j in self._snapshots if 2 * j <= k), default=None)
        if s is None:
            estimate = math.inf
        else:
            for j in [j for j in self._snapshots if j < s]:
                del self._snapshots[j]
            change = np.abs(F - self._snapshots[s]).reshape(F.shape[0], -1).sum(1).max()
            estimate = float(change * math.prod(self.ops.h)) / (math.sqrt(k / s) - 1.0)
        self.frame_errors.append(estimate)
        self.checked_at.append(k)
        return estimate


def _interior_face_shape(ops: Operators, a: int) -> tuple[int, ...]:
    s = list(ops.shape)
    s[a] -= 1
    return (ops.P, *s)
