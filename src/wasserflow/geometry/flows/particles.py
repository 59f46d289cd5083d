"""Particle discretisations of the Fokker-Planck flow d_t rho = div(rho grad V) + Laplace(rho).

The SDE dX = -grad V(X) dt + sqrt(2) dW has the Fokker-Planck equation above as the law of
X_t; it is the W2 gradient flow of KL(rho || pi), pi = exp(-V) / Z (Jordan-Kinderlehrer-Otto).
n particles x_i carried by a time-stepping scheme of step h give the empirical measure
(1/n) sum_i delta_{x_i}:

* :func:`langevin_particles`: Euler-Maruyama for any drift b, dX = b(X) dt + sqrt(2) dW,

      x_{k+1} = x_k + h b(x_k) + sqrt(2 h) xi_k,   xi_k ~ N(0, I),

  weak order 1 (E f(x_k) has an O(h) bias);
* :func:`ula`, the unadjusted Langevin algorithm: b = -grad V, biased at O(h) (its invariant
  law is an O(h) perturbation of pi);
* :func:`mala`, ULA as a proposal with a Metropolis-Hastings correction: pi exactly invariant.

Every run returns a :class:`ParticleFlow`. The Gaussian case has the closed form of
:mod:`.ornstein_uhlenbeck` to test against. (``wasserflow.samplers`` integrates the reverse
SDEs of the generative models; this module only integrates forward Langevin dynamics.)

References: Kloeden & Platen (1992) "Numerical solution of stochastic differential equations"
ch. 14; Roberts & Tweedie (1996), Bernoulli 2(4) (ULA/MALA); Jordan, Kinderlehrer & Otto
(1998).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import as_points
from .potentials import Potential


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


def langevin_particles(
    x0: Tensor,
    drift: Callable[[Tensor], Tensor],
    step: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    save_every: int | None = None,
) -> ParticleFlow:
    """Particles of dX = drift(X) dt + sqrt(2) dW by the Euler-Maruyama scheme:

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
    res = langevin_particles(x0, lambda x: -potential.grad(x), step, n_steps, generator, save_every)
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
