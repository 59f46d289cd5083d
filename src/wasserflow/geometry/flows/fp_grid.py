"""Finite-volume Fokker-Planck solver on a regular grid (1-D, 2-D, ...), implicit in time.

Solves d_t rho = div(rho grad V + grad rho) = div(pi grad(rho / pi)) on a box with no-flux
boundaries. Cells of width h_a along axis a; on the face between neighbours i, j the
Scharfetter-Gummel flux (V linear across the face, the 1-D flux problem solved exactly) is

    J_ij = [B(V_j - V_i) rho_i - B(V_i - V_j) rho_j] / h_a,   B(z) = z / (e^z - 1),

and d rho_i / dt = -sum_faces J / h_a, i.e. d rho / dt = L rho with a sparse L whose columns
sum to zero. Consequences, exact in exact arithmetic and to round-off in floating point:

* mass sum_i rho_i |cell| is conserved (1^T L = 0, the no-flux boundary);
* pi_h = exp(-V) / Z_h is a fixed point (J_ij = 0 when rho_j / rho_i = e^{-(V_j - V_i)});
* backward Euler (I - dt L) rho^{n+1} = rho^n keeps rho > 0 (I - dt L is an M-matrix) and
  decreases the discrete KL; it is first order in time. Crank-Nicolson is second order but
  keeps positivity only for small dt;
* d/dt KL_h = -I_h along the semi-discrete flow, I_h the SG dissipation of
  :func:`free_energy.grid_fisher_information` (discrete de Bruijn identity);
* the scheme is second order in space for smooth V and rho.

One sparse LU factorisation (scipy.sparse.linalg.splu) is made per run and reused every step.
References: Scharfetter & Gummel (1969), IEEE Trans. Electron Devices 16; Chang & Cooper
(1970), J. Comput. Phys. 6; Markowich, "The stationary semiconductor device equations" (1986).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu

from .free_energy import bernoulli, grid_fisher_information, grid_free_energy
from .potentials import Potential


@dataclass(frozen=True)
class RegularGrid:
    """A box prod_a [lower_a, upper_a] cut into shape_a equal cells (values at cell centres).

    Build with :func:`regular_grid` (bounds) or :meth:`from_axes` (cell centres). Arrays on the
    grid have shape ``shape`` (C order, axis 0 is the first coordinate). The one grid type of the
    grid solvers: :func:`solve_fokker_planck_grid` here and :func:`.jko_grid.jko_grid`.
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    shape: tuple[int, ...]

    @classmethod
    def from_axes(cls, axes) -> RegularGrid:
        """The grid whose cell centres are the given increasing, uniformly spaced coordinate
        vectors (one per axis, e.g. ``torch.linspace``): cells of width dx centred on them."""
        if not isinstance(axes, (list, tuple)) or not axes:
            raise ValueError("axes must be a non-empty list of 1-D coordinate vectors")
        lower, upper, shape = [], [], []
        for i, a in enumerate(axes):
            a = np.asarray(torch.as_tensor(a, dtype=torch.float64).reshape(-1))
            dx = np.diff(a)
            if a.shape[0] < 2 or dx.min() <= 0 or np.abs(dx - dx.mean()).max() > 1e-9 * dx.mean():
                raise ValueError(
                    f"axis {i} must be increasing and uniformly spaced (use torch.linspace)"
                )
            lower.append(float(a[0] - dx.mean() / 2))
            upper.append(float(a[-1] + dx.mean() / 2))
            shape.append(a.shape[0])
        return cls(tuple(lower), tuple(upper), tuple(shape))

    @property
    def dim(self) -> int:
        return len(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        bounds = zip(self.lower, self.upper, self.shape, strict=True)
        return tuple((u - lo) / n for lo, u, n in bounds)

    @property
    def cell_volume(self) -> float:
        return math.prod(self.spacing)

    @property
    def axes(self) -> tuple[np.ndarray, ...]:
        """Cell-centre coordinates along each axis."""
        return tuple(
            lo + h * (np.arange(n) + 0.5)
            for lo, h, n in zip(self.lower, self.spacing, self.shape, strict=True)
        )

    def points(self) -> torch.Tensor:
        """All cell centres as a (prod(shape), d) float64 tensor, in C order."""
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return torch.from_numpy(np.stack([m.reshape(-1) for m in mesh], axis=1))

    def evaluate(self, fn) -> np.ndarray:
        """fn at the cell centres, fn: (N, d) tensor -> (N,) values; returned with ``shape``."""
        vals = fn(self.points())
        vals = vals.detach().cpu().numpy() if isinstance(vals, torch.Tensor) else np.asarray(vals)
        return vals.astype(np.float64).reshape(self.shape)


def regular_grid(lower, upper, shape) -> RegularGrid:
    """Validated :class:`RegularGrid`; scalars are broadcast to the dimension of ``shape``."""
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(n) for n in shape)
    d = len(shape)
    lo = (float(lower),) * d if np.isscalar(lower) else tuple(map(float, lower))
    up = (float(upper),) * d if np.isscalar(upper) else tuple(map(float, upper))
    if len(lo) != d or len(up) != d:
        raise ValueError(f"lower/upper need one value per axis ({d}), got {lower}, {upper}")
    if min(shape) < 2:
        raise ValueError(f"shape {shape} needs at least 2 cells per axis")
    if any(not (u > a) for a, u in zip(lo, up, strict=True)):
        raise ValueError(f"every upper bound must exceed its lower bound, got {lo} and {up}")
    return RegularGrid(lo, up, shape)


def _potential_values(grid: RegularGrid, potential) -> np.ndarray:
    if isinstance(potential, Potential):
        V = grid.evaluate(potential.V)
    else:
        V = np.asarray(potential, dtype=np.float64)
    if V.shape != grid.shape:
        raise ValueError(f"potential values have shape {V.shape}, the grid has {grid.shape}")
    if not np.isfinite(V).all():
        raise ValueError("V is not finite on the grid: shrink the box or fix the potential")
    return V


def fokker_planck_operator(grid: RegularGrid, potential) -> sp.csc_matrix:
    """The Scharfetter-Gummel generator L (N x N, N = prod(shape)): d rho / dt = L rho.

    ``potential`` is a :class:`Potential` or the array of V at the cell centres.
    """
    V = _potential_values(grid, potential)
    idx = np.arange(V.size).reshape(grid.shape)
    rows, cols, vals = [], [], []
    for ax, h in enumerate(grid.spacing):
        n = grid.shape[ax]
        i = np.take(idx, np.arange(n - 1), axis=ax).reshape(-1)
        j = np.take(idx, np.arange(1, n), axis=ax).reshape(-1)
        z = np.take(V, np.arange(1, n), axis=ax) - np.take(V, np.arange(n - 1), axis=ax)
        z = z.reshape(-1)
        a = bernoulli(z) / h**2  # rate i -> j
        b = bernoulli(-z) / h**2  # rate j -> i
        rows += [i, j, j, i]
        cols += [i, i, j, j]
        vals += [-a, a, -b, b]
    L = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(V.size,) * 2
    )
    return L.tocsc()


def discrete_stationary_density(grid: RegularGrid, potential) -> np.ndarray:
    """pi_h = exp(-V) / Z_h on the cell centres (sum pi_h |cell| = 1): the scheme's fixed point."""
    V = _potential_values(grid, potential)
    p = np.exp(-(V - V.min()))
    return p / (p.sum() * grid.cell_volume)


@dataclass(frozen=True)
class FPGridResult:
    """Fokker-Planck solution on a grid.

    Attributes:
        grid: the :class:`RegularGrid`.
        times: times of the saved snapshots, (K,).
        densities: snapshots, (K, *grid.shape), each with sum * cell_volume = 1.
        step_times: t_0 = 0, ..., t_n = T, all steps, (n_steps + 1,).
        mass: sum rho |cell| at every step, (n_steps + 1,).
        kl: the discrete KL(rho_h || pi_h) at every step (:func:`grid_free_energy`).
        fisher: the SG relative Fisher information I_h at every step.
        min_density: min rho at every step (> 0 for backward Euler).
        stationary: pi_h, the discrete stationary density, grid.shape.
        scheme: "backward_euler" or "crank_nicolson".
    """

    grid: RegularGrid
    times: np.ndarray
    densities: np.ndarray
    step_times: np.ndarray
    mass: np.ndarray
    kl: np.ndarray
    fisher: np.ndarray
    min_density: np.ndarray
    stationary: np.ndarray
    scheme: str


def solve_fokker_planck_grid(
    rho0,
    grid: RegularGrid,
    potential,
    t_final: float,
    n_steps: int,
    scheme: str = "backward_euler",
    save_every: int | None = None,
) -> FPGridResult:
    """Integrate d_t rho = div(rho grad V) + Laplace(rho) from rho0 up to t_final.

    Args:
        rho0: initial density at the cell centres, grid.shape, >= 0; it is rescaled so that
            sum rho0 |cell| = 1 (pass point values of a density, e.g. grid.evaluate(...)).
        grid: the :class:`RegularGrid` (no-flux boundary on the box).
        potential: a :class:`Potential` or V at the cell centres (grid.shape).
        t_final: final time T > 0; dt = T / n_steps.
        n_steps: number of time steps.
        scheme: "backward_euler" (first order, positivity preserving) or "crank_nicolson"
            (second order; positivity only for small dt).
        save_every: keep every save_every-th density (default: only the first and the last).
    """
    if scheme not in ("backward_euler", "crank_nicolson"):
        raise ValueError(f"scheme = {scheme!r}: choose 'backward_euler' or 'crank_nicolson'")
    if not (isinstance(n_steps, int) and n_steps >= 1):
        raise ValueError(f"n_steps = {n_steps} must be a positive integer")
    if not (math.isfinite(float(t_final)) and float(t_final) > 0):
        raise ValueError(f"t_final = {t_final} must be a positive time")
    if save_every is not None and not (isinstance(save_every, int) and save_every >= 1):
        raise ValueError(f"save_every = {save_every} must be a positive integer or None")
    rho = np.asarray(rho0, dtype=np.float64)
    if rho.shape != grid.shape:
        raise ValueError(f"rho0 has shape {rho.shape}, the grid has {grid.shape}")
    if not np.isfinite(rho).all() or (rho < 0).any() or rho.sum() <= 0:
        raise ValueError("rho0 must be finite, non-negative and not identically zero")
    vol, hs = grid.cell_volume, grid.spacing
    rho = (rho / (rho.sum() * vol)).reshape(-1)

    V = _potential_values(grid, potential)
    L = fokker_planck_operator(grid, V)
    dt = float(t_final) / n_steps
    eye = sp.identity(rho.size, format="csc")
    theta = 1.0 if scheme == "backward_euler" else 0.5
    lu = splu((eye - theta * dt * L).tocsc())
    explicit = None if theta == 1.0 else (eye + (1 - theta) * dt * L).tocsr()
    log_z = None  # discrete normaliser, chosen inside grid_free_energy

    def record(r: np.ndarray) -> tuple[float, float, float, float]:
        r2 = r.reshape(grid.shape)
        m, low = float(r.sum() * vol), float(r.min())
        if low < 0:  # Crank-Nicolson with a large step: the free energy is undefined
            return m, math.nan, math.nan, low
        kl = grid_free_energy(r2 / m, V, hs, log_z).kl
        fi = grid_fisher_information(r2 / m, V, hs)
        return m, kl, fi, low

    stats = [record(rho)]
    snaps, times = [rho.reshape(grid.shape).copy()], [0.0]
    for k in range(1, n_steps + 1):
        rhs = rho if explicit is None else explicit @ rho
        rho = lu.solve(rhs)
        stats.append(record(rho))
        if (save_every is not None and k % save_every == 0) or k == n_steps:
            snaps.append(rho.reshape(grid.shape).copy())
            times.append(k * dt)
    mass, kl, fisher, mins = (np.array(c) for c in zip(*stats, strict=True))
    return FPGridResult(
        grid=grid,
        times=np.array(times),
        densities=np.stack(snaps),
        step_times=dt * np.arange(n_steps + 1),
        mass=mass,
        kl=kl,
        fisher=fisher,
        min_density=mins,
        stationary=discrete_stationary_density(grid, V),
        scheme=scheme,
    )
