"""Entropic JKO on a regular grid (Peyre 2015, "Entropic approximation of Wasserstein gradient
flows", SIAM J. Imaging Sci. 8(4)).

With masses p (p_i = rho(x_i) dV on a regular grid in 1-D or 2-D), the step is

    p_{k+1} = argmin_p  min_{pi 1 = p_k, pi^T 1 = p}  [<C, pi> + eps sum pi log pi] / (2h) + F(p),
    F(p) = sum_i p_i (V_i + log(p_i / dV)) + log Z,   Z = sum_i exp(-V_i) dV,

i.e. F is the discrete KL(p || pi_grid). Dividing by eps / (2h) gives KL(pi | K) + sigma F(pi^T 1),
K = exp(-C / eps), sigma = 2h / eps, solved by Peyre's Sinkhorn-like scaling iterations
pi = diag(a) K diag(b):

    a <- p_k / (K b),    b <- prox_{sigma F}^{KL}(K^T a) / (K^T a),
    prox_{sigma F}^{KL}(z) = z^{1 / (1 + sigma)} exp(-sigma (V + 1 - log dV) / (1 + sigma)),

run in the log domain. C_ij = |x_i - x_j|^2 is separable, so K is applied one axis at a time with
the 1-D kernel exp(-(x_i - x_j)^2 / eps) (n^(d+1) work instead of n^(2d)).
The entropic blur adds about eps / 2 of variance per axis and step to the 2h of the diffusion;
eps = O(h^2) keeps the scheme first order in h.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .fp_grid import RegularGrid
from .jko import JKOResult, check_step
from .potentials import Potential


def _log_conv(lv: Tensor, kernels: list[Tensor]) -> Tensor:
    """log(K exp(lv)) for the separable kernel K = kernel_1 x ... x kernel_d (log-kernels)."""
    for axis, lk in enumerate(kernels):
        moved = lv.movedim(axis, -1)
        out = torch.logsumexp(moved[..., None, :] + lk, dim=-1)
        lv = out.movedim(-1, axis)
    return lv


def _check_grid(grid, density):
    """(coordinates per axis, spacings, density) of a RegularGrid or of a list of axes.

    Axes given as coordinate vectors are used as they are (the grid is checked by
    :meth:`RegularGrid.from_axes`); a :class:`RegularGrid` gives its cell centres and widths.
    """
    if isinstance(grid, RegularGrid):
        axes = [torch.from_numpy(a) for a in grid.axes]
        steps = list(grid.spacing)
    elif isinstance(grid, (list, tuple)):
        axes = [torch.as_tensor(a, dtype=torch.float64).reshape(-1) for a in grid]
        steps = [float(a.diff().mean()) for a in axes]
    else:
        raise ValueError("grid must be a RegularGrid or a list of 1-D coordinate tensors")
    if not 1 <= len(axes) <= 2:
        raise ValueError("the grid must have one or two axes (a 1-D or 2-D grid)")
    for i, a in enumerate(axes):
        if a.shape[0] < 3:
            raise ValueError(f"axis {i} has {a.shape[0]} points: a grid needs at least 3 per axis")
    if not isinstance(grid, RegularGrid):
        RegularGrid.from_axes(axes)  # increasing and uniformly spaced
    shape = tuple(a.shape[0] for a in axes)
    rho = torch.as_tensor(density, dtype=torch.float64)
    if tuple(rho.shape) != shape:
        raise ValueError(f"density has shape {tuple(rho.shape)}, the grid has shape {shape}")
    if not torch.isfinite(rho).all() or (rho < 0).any() or float(rho.sum()) <= 0:
        raise ValueError("density must be finite, non-negative and not identically zero")
    return axes, steps, rho


def jko_grid(
    grid: RegularGrid | list[Tensor],
    density: Tensor,
    target: Potential,
    h: float,
    n_steps: int,
    *,
    epsilon: float | None = None,
    max_iter: int = 2000,
    tol: float = 1e-8,
) -> JKOResult:
    """Entropic JKO (module doc) for F = KL(. || pi) on a regular 1-D or 2-D grid.

    Args:
        grid: a 1-D or 2-D :class:`~.fp_grid.RegularGrid` (the grid of
            :func:`~.fp_grid.solve_fokker_planck_grid`), or one or two uniformly spaced
            coordinate vectors of the grid points, used as given.
        density: rho_0 on the grid, shape (n_1,) or (n_1, n_2) (normalised here to mass 1).
        target: the :class:`Potential` V, evaluated at the grid points.
        h: JKO step > 0; n_steps: number of steps.
        epsilon: entropic regularisation eps of the transport cost; default h^2 / 2 (clamped
            below by dx^2 / 4 so the kernel is not narrower than the grid).
        max_iter, tol: scaling iterations per step and the L1 tolerance on the marginal pi 1 = p_k.

    Returns:
        :class:`JKOResult` with ``states[k]`` the density rho_k (mass / dV) on the grid and
        ``free_energy[k]`` the discrete KL(p_k || pi_grid).
    """
    h, n_steps = check_step(h, n_steps)
    if not isinstance(target, Potential):
        raise ValueError("target must be a Potential (gaussian_potential, function_potential, ...)")
    axes, steps, rho = _check_grid(grid, density)
    dv = math.prod(steps)
    if epsilon is None:
        epsilon = max(h * h / 2, max(steps) ** 2 / 4)
    if not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be a positive float, got {epsilon!r}")
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    V = target.energy(mesh.reshape(-1, len(axes))).to(torch.float64).reshape(rho.shape)
    log_z = float(torch.logsumexp(-V.reshape(-1), 0)) + math.log(dv)
    kernels = [-((a[:, None] - a[None, :]) ** 2) / epsilon for a in axes]
    sigma = 2 * h / epsilon
    shift = sigma * (V + 1 - math.log(dv)) / (1 + sigma)

    def free_energy(p: Tensor) -> float:
        pos = p > 0
        return float((p[pos] * (V[pos] + torch.log(p[pos] / dv))).sum()) + log_z

    p = rho / rho.sum()
    states, F, iters, ok = [p / dv], [free_energy(p)], [], True
    g = torch.zeros_like(p)
    for _ in range(n_steps):
        log_pk = torch.log(p)
        used = 0
        for _ in range(max_iter):
            used += 1
            f = log_pk - _log_conv(g, kernels)
            lz = _log_conv(f, kernels)
            g = (lz / (1 + sigma) - shift) - lz
            err = float((torch.exp(f + _log_conv(g, kernels)) - p).abs().sum())
            if err < tol:
                break
        ok = ok and err < tol
        iters.append(used)
        p = torch.exp(g + lz)
        p = p / p.sum()
        states.append(p / dv)
        F.append(free_energy(p))
    return JKOResult(
        times=h * torch.arange(n_steps + 1, dtype=torch.float64),
        free_energy=torch.tensor(F, dtype=torch.float64),
        states=tuple(states),
        iterations=torch.tensor(iters, dtype=torch.long),
        converged=ok,
        method="entropic_grid",
    )
