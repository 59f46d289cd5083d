"""The kinetic energy of the path a sampler actually takes: PE_i = int |dx_i/dt|^2 dt.

The Benamou-Brenier action of a sampler's curves is E_i int_0^1 |v(x_i(t), t)|^2 dt along the
ODE that was solved, not along the chords between the frames it records (a one-interval
dopri5 solve records only its endpoints, whose chord has the least energy of any curve between
them). Samplers carry it in one of two ways, both on the same steps as the state:

* Runge-Kutta samplers on dx = v dt (euler, midpoint, heun, rk4, dopri5) integrate the extra
  state dE/dt = |v|^2 with the same stages and weights as x (the augmented ODE; for Euler this
  is the energy of the polyline it steps along, sum_k h_k |v_k|^2).
* Exponential-integrator samplers on an affine path (DDIM with eta = 0, DPM-Solver++, UniPC,
  iPNDM, EDM's Heun) move, within one step from (s, x_s) to (t, x_t), along the path's own curve
  x(tau) = alpha_tau d + sigma_tau e with (d, e) frozen (their data and noise predictions of
  the step): their dense output. (d, e) follow from the two end points, so the step's energy
  A |d|^2 + 2 B <d, e> + C |e|^2 with A = int alpha'^2, B = int alpha' sigma', C = int sigma'^2
  over [s, t] needs no network evaluation (:func:`path_segment_energy`; Gauss-Legendre
  quadrature of the schedule's derivatives). On the linear path this curve is the chord.

A step that ends at sigma = 0 (t = 1 on VP and cosine paths) is taken as its chord: with the
noise frozen, sigma'^2 ~ 1 / (1 - t) there, so the frozen-noise curve has infinite energy
while the true probability-flow ODE (whose noise part vanishes as sigma -> 0) does not; the
chord |x_t - x_s|^2 / (t - s) is the least energy of any curve making that move. Stochastic
samplers report no energy: a Brownian path has infinite action.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from wasserflow.paths.schedules import ScheduleOutput

GAUSS_NODES = 16
"""Gauss-Legendre nodes per step (exact for polynomial schedules up to degree 31)."""


def squared_speed(v: Tensor) -> Tensor:
    """|v_i|^2 per sample, (n,) float64, summed over all non-batch dimensions (the norm taken
    in float64: one kernel with the cast, half the time of cast, square and sum on a 2-D
    batch)."""
    return torch.linalg.vector_norm(v.reshape(v.shape[0], -1), dim=-1, dtype=torch.float64).square()


def add_squared_speed(acc: Tensor, v: Tensor, weight: float) -> None:
    """acc += weight |v_i|^2 per sample, in place, in float64 (acc: (n,) float64): the square
    in float64 and its sum over the non-batch dimensions as one matrix-vector product, which
    on a small state (n, 2) costs a third of a cast, square, sum and add."""
    v64 = v.reshape(v.shape[0], -1).to(torch.float64)
    ones = torch.ones(v64.shape[1], dtype=torch.float64, device=v64.device)
    acc.addmv_(v64 * v64, ones, alpha=weight)


def chord_energy(x_s: Tensor, x_t: Tensor, s: float, t: float) -> Tensor:
    """|x_t - x_s|^2 / |t - s| per sample: the energy of the straight constant-speed move."""
    return squared_speed(x_t - x_s) / abs(t - s)


def path_segment_energy(
    x_s: Tensor,
    x_t: Tensor,
    s: float,
    t: float,
    coefficients: Callable[[Tensor], ScheduleOutput],
) -> Tensor:
    """Energy int_s^t |x'(tau)|^2 dtau, per sample, of the path-shaped curve
    x(tau) = alpha_tau d + sigma_tau e through (s, x_s) and (t, x_t) (module doc).

    ``coefficients(t)`` is the path's schedule (alpha, sigma and their derivatives). A step
    ending at sigma = 0 is taken as its chord (module doc)."""
    grid = torch.tensor([s, t], dtype=torch.float64)
    c = coefficients(grid)
    a_s, a_t = float(c.alpha[0]), float(c.alpha[1])
    g_s, g_t = float(c.sigma[0]), float(c.sigma[1])
    det = a_s * g_t - a_t * g_s
    if g_t <= 0.0 or g_s <= 0.0 or abs(det) < 1e-12:
        return chord_energy(x_s, x_t, s, t)
    xs = x_s.reshape(x_s.shape[0], -1).to(torch.float64)
    xt = x_t.reshape(x_t.shape[0], -1).to(torch.float64)
    d = (g_t * xs - g_s * xt) / det
    e = (a_s * xt - a_t * xs) / det
    nodes, weights = np.polynomial.legendre.leggauss(GAUSS_NODES)
    lo, hi = min(s, t), max(s, t)
    tau = torch.tensor(lo + (hi - lo) * (nodes + 1.0) / 2.0, dtype=torch.float64)
    w = torch.tensor(weights * (hi - lo) / 2.0, dtype=torch.float64)
    q = coefficients(tau)
    da, ds = q.d_alpha.to(torch.float64), q.d_sigma.to(torch.float64)
    A, B, C = float((w * da * da).sum()), float((w * da * ds).sum()), float((w * ds * ds).sum())
    return A * d.pow(2).sum(-1) + 2.0 * B * (d * e).sum(-1) + C * e.pow(2).sum(-1)
