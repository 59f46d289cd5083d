"""Mesh-free JKO: one gradient map per step, fitted on particles by the exact JKO objective.

A JKO step of F = KL(. || pi), pi = exp(-V) / Z, from rho_k is pushed by T = grad psi, psi
convex (Brenier), taken from one of the two families of :mod:`.gradient_maps`. T is then the
optimal map from rho_k to T#rho_k, so E|T x - x|^2 is exactly W2^2(rho_k, T#rho_k), and the
change of variables carries the log-density of every particle along the flow,

    log rho_{k+1}(T(x)) = log rho_k(x) - log det DT(x).

Hence F(T#rho_k) = E_{rho_k}[V(T x) + log rho_k(x) - log det DT(x)] + log Z has an unbiased
particle estimate, and a step minimises over the map's parameters, in float64 with L-BFGS,

    J(T) = mean_i [ V(T x_i) - log det DT(x_i) + |T x_i - x_i|^2 / (2h) ]     (+ const),

a Monte Carlo estimate of F(T#rho_k) + W2^2(rho_k, T#rho_k) / (2h) minus the constant
mean_i log rho_k(x_i), so rho_k's density is never needed to fit. T = id is admissible
(J(id) = mean_i V(x_i)), and a fit that would not lower J is rejected (the identity is kept), so
the F reported on a fixed particle set never increases.

* :func:`jko_particles`: the whole scheme with :class:`~.gradient_maps.GradientMap` s (affine
  plus radial basis, centres z_j drawn from the particles, bandwidth l from their spread; first
  the affine part alone, then all parameters). The maps are kept: any fresh sample of rho_0 can
  be pushed forward (with its log-density), and log rho_K(y) at any point y is evaluated by
  inverting the maps with Newton's method. The density always comes from the maps, never from
  a Gaussian fit.
* :func:`fit_ridge_jko_step`: one step by a :class:`~.gradient_maps.RidgeMap`, a bijection of
  all of R^d (the blocks of the generative JKO flow of ``wasserflow.models``).

This is the particle version of the ICNN-JKO of Mokrov et al. (2021), "Large-scale Wasserstein
gradient flows", NeurIPS, and of JKO-iFlow (Xu, Cheng & Xie 2023), with small map families
whose log-determinant is exact and cheap in low d.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor
from torch.nn.functional import softplus

from .gradient_maps import (
    INFEASIBLE,
    GradientMap,
    RidgeMap,
    fit_lbfgs,
    infeasible,
    log_det,
    push_forward,
)
from .jko import JKOResult, check_step
from .potentials import Potential


class Density(Protocol):
    """An initial measure with exact sampling and log-density (e.g. ``GaussianMixture``)."""

    def log_prob(self, x: Tensor) -> Tensor: ...

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...


@dataclass(frozen=True)
class ParticleJKOResult(JKOResult):
    """:class:`JKOResult` of :func:`jko_particles` plus the fitted maps.

    ``states[k]`` are the particles x_i^k, ``log_densities[k]`` their log rho_k(x_i^k);
    ``maps[k]`` sends rho_k to rho_{k+1}; ``initial`` is rho_0.
    """

    log_densities: tuple[Tensor, ...]
    maps: tuple[GradientMap, ...]
    initial: Density

    def push(self, x: Tensor, log_p: Tensor, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Push points x of rho_0 with log-densities log_p through the first ``steps`` maps."""
        return push_forward(self.maps[: self.n_steps if steps is None else steps], x, log_p)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """n fresh draws of rho_K and their log-densities, ((n, d), (n,))."""
        x = self.initial.sample(n, generator=generator).to(torch.float64)
        return self.push(x, self.initial.log_prob(x).to(torch.float64))

    def log_prob(self, y: Tensor, steps: int | None = None) -> Tensor:
        """log rho_k(y), k = steps (default K), by inverting the maps (change of variables)."""
        y = torch.as_tensor(y, dtype=torch.float64)
        total = torch.zeros(y.shape[0], dtype=torch.float64)
        for T in reversed(self.maps[: self.n_steps if steps is None else steps]):
            y = T.inverse(y)
            total = total + torch.linalg.slogdet(T.jacobian(y))[1]
        return self.initial.log_prob(y).to(torch.float64) - total


def _fit_step(x, V, h, n_centers, max_iter, max_iter_rbf, tol, generator, warm):
    n, d = x.shape
    idx = torch.randperm(n, generator=generator)[: min(n_centers, n)]
    centers = x[idx].clone()
    if centers.shape[0] > 1:
        bw = float(torch.cdist(centers, centers).median())
    else:
        bw = 1.0
    bw = max(bw, 1e-6)
    eye = torch.eye(d, dtype=torch.float64)
    iu = torch.triu_indices(d, d)
    theta = torch.zeros(iu.shape[1] + d + centers.shape[0], dtype=torch.float64)
    if warm is not None:  # the affine part of the previous step's map
        theta[: iu.shape[1]] = (warm.matrix - eye)[iu[0], iu[1]]
        theta[iu.shape[1] : iu.shape[1] + d] = warm.shift
    theta.requires_grad_(True)

    def unpack(th):
        q = th[: iu.shape[1]]
        Q = torch.zeros(d, d, dtype=torch.float64).index_put((iu[0], iu[1]), q)
        Q = Q + Q.T - torch.diag(Q.diagonal())
        c = th[iu.shape[1] : iu.shape[1] + d]
        a = th[iu.shape[1] + d :]
        return eye + Q, c, a

    def objective(th):
        A, c, a = unpack(th)
        Tx, J = GradientMap(A, c, centers, a, bw).apply(x)
        ld = log_det(J)
        if ld is None:
            return infeasible(th)
        return (V(Tx) - ld + ((Tx - x) ** 2).sum(-1) / (2 * h)).mean()

    def affine_objective(th):  # the same J with a = 0: DT = I + Q is constant, cheap in n
        A, c, _ = unpack(th)
        ld = log_det(A)
        if ld is None:
            return infeasible(th)
        Tx = x @ A + c
        return (V(Tx) + ((Tx - x) ** 2).sum(-1) / (2 * h)).mean() - ld

    with torch.no_grad():
        j0 = float(objective(torch.zeros_like(theta)))
        if float(objective(theta)) >= j0:
            theta.zero_()
    iters = 0
    stages = (
        [(affine_objective, max_iter), (objective, max_iter_rbf)]
        if n_centers
        else [(affine_objective, max_iter)]
    )
    for fn, limit in stages:
        iters += fit_lbfgs(theta, fn, limit, tol)
    with torch.no_grad():
        A, c, a = unpack(theta.detach())
        j1 = float(objective(theta.detach()))
        grad_norm = float(theta.grad.abs().max()) if theta.grad is not None else 0.0
    if not (j1 <= j0 and j1 < INFEASIBLE and math.isfinite(j1)):
        A, c, a = eye, torch.zeros(d, dtype=torch.float64), torch.zeros_like(a)
        return GradientMap(A, c, centers, a, bw), iters, False
    converged = grad_norm <= max(10 * tol, 1e-4)
    return GradientMap(A.detach(), c.detach(), centers, a.detach(), bw), iters, converged


def _initial_particles(
    initial: Density,
    target: Potential,
    n_particles: int,
    n_centers: int,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """The checked inputs of :func:`jko_particles`: n_particles points of rho_0 and their
    log-densities, both float64; each bad argument is a ``ValueError`` naming it."""
    if not isinstance(target, Potential):
        raise ValueError("target must be a Potential (gaussian_potential, function_potential, ...)")
    if not (hasattr(initial, "sample") and hasattr(initial, "log_prob")):
        raise ValueError(
            "initial must have sample(n, generator) and log_prob(x), e.g. a GaussianMixture"
        )
    if isinstance(n_particles, bool) or not isinstance(n_particles, int) or n_particles < 2:
        raise ValueError(f"n_particles must be an integer >= 2, got {n_particles!r}")
    if isinstance(n_centers, bool) or not isinstance(n_centers, int) or n_centers < 0:
        raise ValueError(f"n_centers must be a non-negative integer, got {n_centers!r}")
    x = initial.sample(n_particles, generator=generator).to(torch.float64)
    if x.dim() != 2 or (target.dim is not None and x.shape[1] != target.dim):
        raise ValueError(
            f"initial samples have shape {tuple(x.shape)}, target needs d = {target.dim}"
        )
    return x, initial.log_prob(x).to(torch.float64)


def jko_particles(
    initial: Density,
    target: Potential,
    h: float,
    n_steps: int,
    *,
    n_particles: int = 4000,
    n_centers: int = 8,
    max_iter: int = 100,
    max_iter_rbf: int = 20,
    tol: float = 1e-7,
    resample: bool = False,
    generator: torch.Generator | None = None,
) -> ParticleJKOResult:
    """Mesh-free JKO for F = KL(. || pi) with one fitted gradient map per step (module doc).

    Args:
        initial: rho_0, with ``sample(n, generator)`` and ``log_prob(x)`` (e.g. GaussianMixture).
        target: the :class:`Potential` V of pi (any V differentiable in torch).
        h: the JKO step, > 0; n_steps: number of steps K >= 1.
        n_particles: particles drawn from rho_0 and carried along (the Monte Carlo sample).
        n_centers: radial-basis centres of each map (0 gives affine maps).
        max_iter, max_iter_rbf, tol: L-BFGS iteration limits of the two stages of a step (the
            affine part alone, cheap since DT is constant; then all parameters jointly) and
            the gradient tolerance.
        resample: fit every step on a fresh sample of rho_0 pushed through the maps found so
            far, instead of carrying one particle set. The sampling errors of the steps are
            then independent instead of compounding (about K times smaller KL error after K
            steps), but F is reported on a different sample at each step, so it is
            non-increasing only up to Monte Carlo error.
        generator: drives the initial sample and the choice of centres.

    Returns:
        :class:`ParticleJKOResult`; free_energy[k] = mean_i [V(x_i^k) + log rho_k(x_i^k)] + log Z
        on the carried particles (without log Z when the target's log Z is unknown); without
        ``resample`` it is non-increasing by construction.
    """
    h, n_steps = check_step(h, n_steps)
    x, log_p = _initial_particles(initial, target, n_particles, n_centers, generator)
    log_z = target.log_normalizer or 0.0

    def free_energy(x, log_p):
        return float((target.energy(x).to(torch.float64) + log_p).mean()) + log_z

    states, logs, maps, iters = [x], [log_p], [], []
    T = None
    F = [free_energy(x, log_p)]
    all_ok = True
    for _ in range(n_steps):
        if resample and maps:  # a fresh sample of rho_0 pushed through the maps found so far
            x0 = initial.sample(n_particles, generator=generator).to(torch.float64)
            x, log_p = push_forward(maps, x0, initial.log_prob(x0).to(torch.float64))
        T, it, ok = _fit_step(
            x, target.energy, h, n_centers, max_iter, max_iter_rbf, tol, generator, T
        )
        with torch.no_grad():
            x, log_p = push_forward([T], x, log_p)
        maps.append(T)
        iters.append(it)
        all_ok = all_ok and ok
        states.append(x)
        logs.append(log_p)
        F.append(free_energy(x, log_p))
    return ParticleJKOResult(
        times=h * torch.arange(n_steps + 1, dtype=torch.float64),
        free_energy=torch.tensor(F, dtype=torch.float64),
        states=tuple(states),
        iterations=torch.tensor(iters, dtype=torch.long),
        converged=all_ok,
        method="particle_gradient_map",
        log_densities=tuple(logs),
        maps=tuple(maps),
        initial=initial,
    )


# ----------------------------------------------------------------------------- ridge maps


@dataclass(frozen=True)
class RidgeFit:
    """One fitted JKO step: the map, J(id) and J(T) on the particles, L-BFGS iterations,
    whether T was accepted (J(T) <= J(id); otherwise the identity is returned)."""

    map: RidgeMap
    objective_identity: float
    objective: float
    iterations: int
    accepted: bool


def fit_ridge_jko_step(
    x: Tensor,
    energy: Callable[[Tensor], Tensor],
    h: float,
    *,
    units: int = 64,
    init_scale: float = 6.0,
    max_iter: int = 100,
    tol: float = 1e-9,
    generator: torch.Generator | None = None,
) -> RidgeFit:
    """Fit the ridge map of one JKO step of KL(. || exp(-V)) from the particles x (module doc):
    minimise J over (A, c, w, beta, b) from A = I, c = 0 and ridges through random particles.

    Args:
        x: (n, d) particles of rho_k (float64 is used internally).
        energy: V, (n, d) -> (n,), differentiable in torch.
        h: the step, > 0.
        units: m, the number of ridge functions (0: affine maps).
        init_scale: initial |w_j| in units of the particles' spread (larger: sharper ridges).
        max_iter, tol: L-BFGS limits.
        generator: draws the initial ridge directions and the particles they pass through.
    """
    if not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise ValueError(f"the JKO step h must be a positive number, got {h!r}")
    x = torch.as_tensor(x).to(torch.float64)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"particles must have shape (n >= 2, d), got {tuple(x.shape)}")
    n, d = x.shape
    m = int(units)
    spread = float(x.std(0).mean()) or 1.0
    W0 = torch.randn(m, d, generator=generator, dtype=torch.float64) * (init_scale / spread)
    W0 = W0 / math.sqrt(d)
    through = x[torch.randint(0, n, (m,), generator=generator)]
    beta0 = -(W0 * through).sum(-1)
    iu = torch.triu_indices(d, d)
    nq = iu.shape[1]
    eye = torch.eye(d, dtype=torch.float64)
    theta = torch.cat(
        [
            torch.zeros(nq + d, dtype=torch.float64),
            W0.reshape(-1),
            beta0,
            torch.full((m,), -8.0, dtype=torch.float64),
        ]
    ).requires_grad_(True)

    def unpack(th):
        Q = torch.zeros(d, d, dtype=torch.float64).index_put((iu[0], iu[1]), th[:nq])
        A = eye + Q + Q.T - torch.diag(Q.diagonal())
        o = nq
        c = th[o : o + d]
        W = th[o + d : o + d + m * d].reshape(m, d)
        o += d + m * d
        return A, c, W, th[o : o + m], softplus(th[o + m :])

    def objective(th):
        A, c, W, beta, b = unpack(th)
        if log_det(A.detach()) is None:
            return infeasible(th)  # DT >= A must stay positive definite
        Tx, J = RidgeMap(A, c, W, beta, b).apply(x)
        ld = log_det(J)
        if ld is None:  # round-off only: DT >= A > 0 in exact arithmetic
            return infeasible(th)
        return (energy(Tx) - ld + ((Tx - x) ** 2).sum(-1) / (2 * h)).mean()

    with torch.no_grad():
        j_id = float(energy(x).mean())
    iters = fit_lbfgs(theta, objective, max_iter, tol)
    with torch.no_grad():
        j = float(objective(theta))
        A, c, W, beta, b = (t.detach().clone() for t in unpack(theta.detach()))
    if not (math.isfinite(j) and j < INFEASIBLE and j <= j_id):
        return RidgeFit(RidgeMap.identity(d), j_id, j_id, iters, False)
    return RidgeFit(RidgeMap(A, c, W, beta, b), j_id, j, iters, True)
