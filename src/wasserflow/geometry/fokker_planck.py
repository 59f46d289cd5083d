"""Fokker-Planck flows d_t rho = div(rho grad V) + Laplace(rho): closed form and particles.

The SDE dX = -grad V(X) dt + sqrt(2) dW has the Fokker-Planck equation above as the law of
X_t; it is the W2 gradient flow of KL(rho || pi), pi = exp(-V) / Z (Jordan-Kinderlehrer-Otto).

* :class:`OrnsteinUhlenbeck`: the linear SDE dX = -B (X - b) dt + sqrt(2) dW with B stable
  (eigenvalues with positive real part). From N(m0, S0) the law stays Gaussian:

      m(t) = b + e^{-Bt} (m0 - b),
      S(t) = Sinf + e^{-Bt} (S0 - Sinf) e^{-B^T t},   B Sinf + Sinf B^T = 2 I,

  since dS/dt = -B S - S B^T + 2 I. Sinf is the stationary covariance; B = Sigma^-1 is the
  reversible (gradient-flow) case with target N(b, Sigma) (:func:`ou_to_target`); any
  B = (I + A) Sigma^-1 with A antisymmetric has the same target and the same dissipation
  d/dt KL = -I(rho || pi) (the antisymmetric drift does no work on the free energy).
* particles: Euler-Maruyama (:func:`euler_maruyama`), the unadjusted Langevin algorithm
  (:func:`ula`, ULA = Euler-Maruyama for the Langevin SDE, biased at O(step)) and MALA
  (:func:`mala`, ULA as a proposal with a Metropolis-Hastings correction, exact invariant pi).

References: Risken (1989) "The Fokker-Planck equation" ch. 3 and 6; Roberts & Tweedie (1996),
Bernoulli 2(4) (ULA/MALA); Jordan, Kinderlehrer & Otto (1998).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import solve_continuous_lyapunov
from torch import Tensor

from ._checks import as_points, as_spd
from .potentials import Potential, gaussian_potential
from .results import Gaussian


def _vec(m, name: str, d: int | None = None) -> Tensor:
    m = torch.as_tensor(m, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(m).all():
        raise ValueError(f"{name} holds NaN or inf values")
    if d is not None and m.shape[0] != d:
        raise ValueError(f"{name} has d = {m.shape[0]}, expected d = {d}")
    return m


@dataclass(frozen=True)
class OrnsteinUhlenbeck:
    """dX = -B (X - b) dt + sqrt(2) dW (float64). Build with :meth:`create` or
    :func:`ou_to_target`.

    Attributes:
        drift_matrix: B, (d, d), all eigenvalues with positive real part.
        center: b, (d,).
        stationary_cov: Sinf solving B Sinf + Sinf B^T = 2 I, (d, d).
    """

    drift_matrix: Tensor
    center: Tensor
    stationary_cov: Tensor

    @classmethod
    def create(cls, drift_matrix: Tensor, center: Tensor) -> OrnsteinUhlenbeck:
        B = torch.as_tensor(drift_matrix, dtype=torch.float64)
        if B.dim() == 0:
            B = B.reshape(1, 1)
        if B.dim() != 2 or B.shape[0] != B.shape[1] or not torch.isfinite(B).all():
            raise ValueError(f"drift_matrix must be a finite (d, d) matrix, got {tuple(B.shape)}")
        b = _vec(center, "center", B.shape[0])
        if float(torch.linalg.eigvals(B).real.min()) <= 0:
            raise ValueError(
                "drift_matrix has an eigenvalue with non-positive real part: the OU process "
                "has no stationary law; use a stable B (e.g. B = Sigma^-1)"
            )
        eye2 = 2.0 * np.eye(B.shape[0])
        S = torch.from_numpy(solve_continuous_lyapunov(B.numpy(), eye2))
        return cls(drift_matrix=B, center=b, stationary_cov=(S + S.T) / 2)

    @property
    def dim(self) -> int:
        return self.center.shape[0]

    @property
    def is_reversible(self) -> bool:
        """True when B = Sinf^-1 (B symmetric): the flow is then the W2 gradient flow of KL."""
        B = self.drift_matrix
        return bool(torch.allclose(B, B.T, rtol=1e-10, atol=1e-12))

    def target(self) -> Potential:
        """The stationary law N(b, Sinf) as a :class:`Potential`."""
        return gaussian_potential(self.center, self.stationary_cov)

    def drift(self, x: Tensor) -> Tensor:
        """-B (x - b), shape (n, d), in x's dtype."""
        B, b = self.drift_matrix.to(x), self.center.to(x)
        return -(x - b) @ B.T

    def marginal(self, mean0: Tensor, cov0: Tensor, t: float) -> Gaussian:
        """The law at time t >= 0 from X_0 ~ N(mean0, cov0) (cov0 may be singular: 0 = Dirac)."""
        if not (math.isfinite(float(t)) and float(t) >= 0):
            raise ValueError(f"t = {t} must be a finite time >= 0")
        d = self.dim
        m0 = _vec(mean0, "mean0", d)
        S0 = as_spd(cov0, "cov0")
        if S0.shape != (d, d):
            raise ValueError(f"cov0 has shape {tuple(S0.shape)}, expected ({d}, {d})")
        E = torch.linalg.matrix_exp(-float(t) * self.drift_matrix)
        Sinf = self.stationary_cov
        mean = self.center + E @ (m0 - self.center)
        cov = Sinf + E @ (S0 - Sinf) @ E.T
        return Gaussian(mean=mean, cov=(cov + cov.T) / 2)


def ou_to_target(
    mean: Tensor, cov: Tensor, antisymmetric: Tensor | None = None
) -> OrnsteinUhlenbeck:
    """The OU process with stationary law N(b, Sigma): B = (I + A) Sigma^-1.

    A = 0 (default) gives dX = -Sigma^-1 (X - b) dt + sqrt(2) dW = -grad V dt + sqrt(2) dW, the
    W2 gradient flow of KL(. || N(b, Sigma)); an antisymmetric A adds a divergence-free,
    non-reversible drift with the same target.
    """
    S = as_spd(cov, "cov")
    d = S.shape[0]
    L, info = torch.linalg.cholesky_ex(S)
    if int(info) != 0:
        raise ValueError("cov is singular: the target N(b, Sigma) needs Sigma positive definite")
    P = torch.cholesky_inverse(L)
    eye = torch.eye(d, dtype=torch.float64)
    if antisymmetric is None:
        B = (P + P.T) / 2
    else:
        A = torch.as_tensor(antisymmetric, dtype=torch.float64)
        scale = max(1.0, float(A.abs().max())) if A.numel() else 1.0
        if A.shape != (d, d) or float((A + A.T).abs().max()) > 1e-12 * scale:
            raise ValueError(f"antisymmetric must be a ({d}, {d}) matrix with A^T = -A")
        B = (eye + A) @ P
    return OrnsteinUhlenbeck.create(B, _vec(mean, "mean", d))


# ----------------------------------------------------------------------------- particles


@dataclass(frozen=True)
class ParticleFlow:
    """Result of a particle discretisation of dX = drift dt + sqrt(2) dW.

    Attributes:
        particles: the final positions, (n, d).
        times: the times of the saved states, (K,) (just [0, T] when no path was kept).
        path: saved states (K, n, d) when ``save_every`` was given, else None.
        acceptance_rate: mean Metropolis acceptance over all steps and particles (MALA), else
            None.
        step_size: the time step h.
        n_steps: the number of steps taken.
        method: "euler-maruyama", "ula" or "mala".
    """

    particles: Tensor
    times: Tensor
    path: Tensor | None
    acceptance_rate: float | None
    step_size: float
    n_steps: int
    method: str


def _check_run(x0: Tensor, step: float, n_steps: int, save_every: int | None) -> Tensor:
    x = as_points(x0, "x0")
    if not (math.isfinite(float(step)) and float(step) > 0):
        raise ValueError(f"step = {step} must be a positive time step")
    if not (isinstance(n_steps, int) and n_steps >= 0):
        raise ValueError(f"n_steps = {n_steps} must be a non-negative integer")
    if save_every is not None and not (isinstance(save_every, int) and save_every >= 1):
        raise ValueError(f"save_every = {save_every} must be a positive integer or None")
    return x.detach().clone()


def _run(
    x: Tensor,
    step_fn: Callable[[Tensor], Tensor],
    step: float,
    n_steps: int,
    save_every: int | None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    saved, times = ([x.clone()], [0.0]) if save_every is not None else (None, [0.0])
    for k in range(1, n_steps + 1):
        x = step_fn(x)
        if saved is not None and (k % save_every == 0 or k == n_steps):
            saved.append(x.clone())
            times.append(k * step)
    if saved is None:
        times.append(n_steps * step)
    path = None if saved is None else torch.stack(saved)
    return x, torch.tensor(times, dtype=torch.float64), path


def euler_maruyama(
    x0: Tensor,
    drift: Callable[[Tensor], Tensor],
    step: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    save_every: int | None = None,
) -> ParticleFlow:
    """Euler-Maruyama for dX = drift(X) dt + sqrt(2) dW:

        x_{k+1} = x_k + h drift(x_k) + sqrt(2 h) xi_k,  xi_k ~ N(0, I).

    Weak order 1: E f(x_k) has O(h) bias. Args: x0 (n, d); drift (n, d) -> (n, d); step h;
    n_steps; generator for the noise; save_every keeps every save_every-th state in ``path``.
    """
    x = _check_run(x0, step, n_steps, save_every)
    h = float(step)
    sq = math.sqrt(2 * h)

    def one(x: Tensor) -> Tensor:
        xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x + h * drift(x) + sq * xi

    x, times, path = _run(x, one, h, n_steps, save_every)
    return ParticleFlow(x, times, path, None, h, n_steps, "euler-maruyama")


def ula(
    x0: Tensor,
    potential: Potential,
    step: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    save_every: int | None = None,
) -> ParticleFlow:
    """Unadjusted Langevin: x_{k+1} = x_k - h grad V(x_k) + sqrt(2 h) xi_k.

    Its invariant law is not pi but an O(h) perturbation of it (for N(b, s^2) in 1-D:
    N(b, s^2 / (1 - h / (2 s^2)))); use :func:`mala` for an exact invariant law.
    """
    res = euler_maruyama(x0, lambda x: -potential.grad(x), step, n_steps, generator, save_every)
    return ParticleFlow(res.particles, res.times, res.path, None, res.step_size, n_steps, "ula")


def mala(
    x0: Tensor,
    potential: Potential,
    step: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    save_every: int | None = None,
) -> ParticleFlow:
    """Metropolis-adjusted Langevin: propose y = x - h grad V(x) + sqrt(2 h) xi, accept with

        min(1, exp(V(x) - V(y) + log q(x | y) - log q(y | x))),
        log q(y | x) = -|y - x + h grad V(x)|^2 / (4 h),

    independently per particle; pi is exactly invariant (Roberts & Tweedie 1996). Each particle
    is its own chain; ``acceptance_rate`` averages over steps and particles.
    """
    x = _check_run(x0, step, n_steps, save_every)
    h = float(step)
    sq = math.sqrt(2 * h)
    accepted = [0.0]

    v_x = potential.V(x)
    g_x = potential.grad(x)

    def one(x: Tensor) -> Tensor:
        nonlocal v_x, g_x
        xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        y = x - h * g_x + sq * xi
        v_y, g_y = potential.V(y), potential.grad(y)
        log_q_fwd = -((y - x + h * g_x) ** 2).sum(-1) / (4 * h)
        log_q_bwd = -((x - y + h * g_y) ** 2).sum(-1) / (4 * h)
        log_a = v_x - v_y + log_q_bwd - log_q_fwd
        u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device)
        acc = torch.log(u) < log_a
        accepted[0] += float(acc.to(torch.float64).mean())
        v_x = torch.where(acc, v_y, v_x)
        g_x = torch.where(acc[:, None], g_y, g_x)
        return torch.where(acc[:, None], y, x)

    x, times, path = _run(x, one, h, n_steps, save_every)
    rate = accepted[0] / n_steps if n_steps > 0 else None
    return ParticleFlow(x, times, path, rate, h, n_steps, "mala")
