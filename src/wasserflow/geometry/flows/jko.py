"""The JKO scheme for F = KL(. || pi), pi = exp(-V) / Z, and its closed form for Gaussian targets.

JKO (Jordan, Kinderlehrer & Otto 1998) is implicit Euler in (P2, W2):

    rho_{k+1} = argmin_rho  F(rho) + W2^2(rho, rho_k) / (2h),   F(rho) = KL(rho || pi).

Because rho_k is admissible, F(rho_{k+1}) + W2^2 / (2h) <= F(rho_k): F never increases. Every
JKO solver of the package returns a :class:`JKOResult` with F at every step.

Gaussian target pi = N(b, Sigma), P = Sigma^-1, from rho_k = N(m_k, S_k). The step stays
Gaussian; its optimal map is T(x) = m_{k+1} + A (x - m_k) with A symmetric positive definite,
and the optimality condition (T - id) / h = -grad V(T) - grad log rho_{k+1}(T) reads

    mean:        (m_{k+1} - m_k) / h = -P (m_{k+1} - b)  =>  m_{k+1} = (I + hP)^-1 (m_k + h P b),
    covariance:  (A - I) / h = -P A + A^-1 S_k^-1        (S_{k+1} = A S_k A).

Left-multiplying the second by h A gives the symmetric Riccati equation A M A - A = h S_k^-1 with
M = I + hP. With B = M^1/2 A M^1/2 it becomes B^2 - B = C := h M^1/2 S_k^-1 M^1/2, whose
symmetric positive root is B = I/2 + (I/4 + C)^1/2; so A = M^-1/2 B M^-1/2 in closed form for any
Sigma (commuting or not). For b = 0, Sigma = I it reduces to m_{k+1} = m_k / (1 + h) and
s = (s_k + sqrt(s_k^2 + 4h(1 + h))) / (2(1 + h)) per eigen-direction of S_k (docs/design.md 3).

The exact flow it approximates (Ornstein-Uhlenbeck, dX = -P (X - b) dt + sqrt(2) dW):
m(t) = b + e^{-tP} (m_0 - b),  S(t) = e^{-tP} S_0 e^{-tP} + Sigma (I - e^{-2tP}), computed by
:func:`.ornstein_uhlenbeck.ou_gaussian`. The grid and particle JKO solvers are in
:mod:`.jko_grid` and :mod:`.jko_particles`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import as_spd
from ..measures import Gaussian
from .free_energy import gaussian_kl
from .potentials import Potential


@dataclass(frozen=True)
class JKOResult:
    """A JKO trajectory rho_0, ..., rho_K with step h.

    Attributes:
        times: (K + 1,) float64, t_k = k h.
        free_energy: (K + 1,) float64, F(rho_k) = KL(rho_k || pi); when the solver does not know
            log Z it is F - log Z = int V drho + int rho log rho (see ``method``'s docstring).
        states: K + 1 states, one per time: :class:`Gaussian` (closed form), a density array on
            the grid (grid solver), or an (n, d) particle array (particle solver).
        iterations: (K,) inner iterations used by each step (0 for closed forms).
        converged: whether every step met its stopping criterion.
        method: the solver's name.
    """

    times: Tensor
    free_energy: Tensor
    states: tuple[Any, ...]
    iterations: Tensor
    converged: bool
    method: str

    @property
    def n_steps(self) -> int:
        return int(self.times.shape[0]) - 1

    def is_monotone(self, atol: float = 0.0) -> bool:
        """Whether F(rho_{k+1}) <= F(rho_k) + atol for every k."""
        return bool((self.free_energy.diff() <= atol).all())


def check_step(h: float, n_steps: int) -> tuple[float, int]:
    """Validate a JKO step h > 0 and a step count n_steps >= 1 (shared by all JKO solvers)."""
    if not isinstance(h, (int, float)) or not math.isfinite(h) or h <= 0:
        raise ValueError(f"the JKO step h must be a positive finite float, got {h!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    return float(h), int(n_steps)


def _gaussian_target(target: Potential) -> Gaussian:
    if not isinstance(target, Potential) or target.gaussian is None:
        raise ValueError(
            "the closed-form JKO needs a Gaussian target: build it with "
            "gaussian_potential(mean, cov) (use jko_particles or jko_grid for other targets)"
        )
    return target.gaussian


def _sym_fn(S: Tensor, fn) -> Tensor:
    w, U = torch.linalg.eigh((S + S.T) / 2)
    return (U * fn(w)) @ U.T


def _gaussian_state_free_energy(state: Gaussian, target: Potential) -> float:
    """F(N(m, S)) = KL(N(m, S) || N(b, Sigma)) for a Gaussian target (closed form)."""
    g = _gaussian_target(target)
    return gaussian_kl(state.mean, state.cov, g.mean, g.cov)


def gaussian_jko_step(state: Gaussian, target: Potential, h: float) -> Gaussian:
    """One exact JKO step from N(m_k, S_k) for pi = N(b, Sigma) (equations in the module doc).

    Args:
        state: rho_k = N(m_k, S_k), S_k positive definite, shape (d,), (d, d).
        target: a Gaussian :class:`Potential` (``gaussian_potential``).
        h: the step, > 0.

    Returns:
        rho_{k+1} = N(m_{k+1}, A S_k A), float64.
    """
    h, _ = check_step(h, 1)
    g = _gaussian_target(target)
    m = torch.as_tensor(state.mean, dtype=torch.float64).reshape(-1)
    S = as_spd(state.cov, "state.cov")
    d = g.mean.shape[0]
    if m.shape[0] != d or S.shape[0] != d:
        raise ValueError(f"the state lives in R^{m.shape[0]} but the target in R^{d}")
    if float(torch.linalg.eigvalsh(S).min()) <= 0:
        raise ValueError("state.cov is singular: the JKO step needs rho_k with a density")
    eye = torch.eye(d, dtype=torch.float64)
    P = torch.linalg.inv(g.cov)
    P = (P + P.T) / 2
    M = eye + h * P
    m_next = torch.linalg.solve(M, m + h * P @ g.mean)
    Mh = _sym_fn(M, torch.sqrt)
    Mih = _sym_fn(M, lambda w: 1 / torch.sqrt(w))
    C = h * Mh @ torch.linalg.inv(S) @ Mh
    B = 0.5 * eye + _sym_fn(0.25 * eye + (C + C.T) / 2, torch.sqrt)
    A = Mih @ B @ Mih
    S_next = A @ S @ A
    return Gaussian(mean=m_next, cov=(S_next + S_next.T) / 2)


def gaussian_jko(initial: Gaussian, target: Potential, h: float, n_steps: int) -> JKOResult:
    """The closed-form JKO trajectory N(m_k, S_k), k = 0..n_steps, for a Gaussian target.

    Every iterate is the exact minimiser of F(rho) + W2^2(rho, rho_k) / (2h) (module doc), so
    the trajectory differs from the Fokker-Planck flow only by the O(h) time discretisation.
    """
    h, n_steps = check_step(h, n_steps)
    states = [
        Gaussian(
            mean=torch.as_tensor(initial.mean, dtype=torch.float64).reshape(-1),
            cov=as_spd(initial.cov, "initial.cov"),
        )
    ]
    for _ in range(n_steps):
        states.append(gaussian_jko_step(states[-1], target, h))
    F = torch.tensor([_gaussian_state_free_energy(s, target) for s in states], dtype=torch.float64)
    return JKOResult(
        times=h * torch.arange(n_steps + 1, dtype=torch.float64),
        free_energy=F,
        states=tuple(states),
        iterations=torch.zeros(n_steps, dtype=torch.long),
        converged=True,
        method="gaussian_closed_form",
    )


def symmetric_gaussian_kl(p: Gaussian, q: Gaussian) -> float:
    """KL(p || q) + KL(q || p) between Gaussians (the accuracy measure of the JKO benchmark)."""
    return gaussian_kl(p.mean, p.cov, q.mean, q.cov) + gaussian_kl(q.mean, q.cov, p.mean, p.cov)
