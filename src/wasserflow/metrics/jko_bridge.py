"""The bridge between a denoising step and the JKO step it approximates, as W2 numbers.

The forward VP diffusion on the diffusion clock s = 1 - t, dX = -beta(s)/2 X ds + sqrt(beta(s)) dW,
becomes after the time change

    tau(s) = 1/2 int_0^s beta = -log alpha_{1-s}          (VP: alpha^2 + sigma^2 = 1)

the Ornstein-Uhlenbeck flow dX = -X dtau + sqrt(2) dW, i.e. the Fokker-Planck equation of
V = |x|^2 / 2, the W2 gradient flow of F = KL(. || N(0, I)) (Jordan, Kinderlehrer & Otto 1998).
So the marginal rho_s of the path is the gradient-flow curve at time tau(s), and on a grid
s_0 < s_1 < ... the step s_{k-1} -> s_k is, to first order, one JKO step of size

    h_k = tau(s_k) - tau(s_{k-1}) = log(alpha_{1-s_{k-1}} / alpha_{1-s_k}),
    JKO_h(rho) = argmin_q F(q) + W2^2(q, rho) / (2 h).

A denoising step D_k (DDIM, or DDPM's ancestral step) goes the other way, rho_{s_k} -> rho_{s_{k-1}}.
For each step this module measures, with the exact marginals as reference,

    w2_jko       = W2(JKO_{h_k}(rho_{s_{k-1}}), rho_{s_k})    the JKO step vs the flow it discretises,
    w2_denoise   = W2(D_k # rho_{s_k}, rho_{s_{k-1}})           the denoising step vs the same flow,
    w2_roundtrip = W2(D_k # JKO_{h_k}(rho_{s_{k-1}}), rho_{s_{k-1}})  the denoising step undoes the
                                                                   JKO step.

All three are local (one-step) errors: O(h^2) for smooth flows and an exact model, so that
W2 / h, the error per unit of gradient-flow time, is O(h) and vanishes as the steps shrink:
"each denoising step is one JKO step" up to O(h^2) per step, O(h) over a whole trajectory.
With a trained model, w2_denoise adds the model's error to this discretisation error.

Two estimators: :func:`gaussian_jko_bridge` in closed form (Gaussian data, the exact model,
Bures-Wasserstein distances, :func:`~wasserflow.geometry.gaussian_jko_step`), and
:func:`jko_bridge` on particles for any model (a :class:`~wasserflow.samplers.Field`, e.g.
``TrainedRun.field()`` or ``Field.from_oracle(MixtureOracle)``) with data samples: the forward
marginal of the empirical data law is the mixture sum_i N(alpha x_i, sigma^2 I), which gives
jko_particles its initial density; W2 is the exact OT distance between n-point samples and
carries the sampling floor ``w2_floor`` (W2 between two independent samples of rho_{s_{k-1}}).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._time import broadcast_time
from ..geometry import (
    Gaussian,
    GaussianMixture,
    gaussian_jko_step,
    gaussian_w2,
    jko_particles,
    standard_gaussian_potential,
    w2,
)
from ..paths.affine import AffinePath
from ..paths.oracle import gaussian_oracle
from ..samplers.ancestral import ddim_step, ddpm_step, posterior_coefficients
from ..samplers.field import Field

SAMPLERS = ("ddim", "ddpm")


@dataclass(frozen=True)
class JKOBridgeResult:
    """Per-step W2 between denoising steps, JKO steps and the exact VP marginals (module doc).

    Attributes (tensors of shape (K,), float64, one entry per step s_{k-1} -> s_k):
        s_from, s_to: diffusion times s_{k-1} < s_k (s = 1 - t).
        h: JKO step sizes tau(s_k) - tau(s_{k-1}).
        w2_jko: W2(JKO_h(rho_{s_{k-1}}), rho_{s_k}).
        w2_denoise: W2(D_k # rho_{s_k}, rho_{s_{k-1}}).
        w2_roundtrip: W2(D_k # JKO_h(rho_{s_{k-1}}), rho_{s_{k-1}}).
        w2_floor: W2 between two independent n-point samples of rho_{s_{k-1}} (0 in closed form).
        sampler: "ddim" or "ddpm".
        method: "gaussian_closed_form" or "particles".
    """

    s_from: Tensor
    s_to: Tensor
    h: Tensor
    w2_jko: Tensor
    w2_denoise: Tensor
    w2_roundtrip: Tensor
    w2_floor: Tensor
    sampler: str
    method: str


def vp_time_change(path: AffinePath, s: Tensor | float) -> Tensor:
    """tau(s) = 1/2 int_0^s beta = -log alpha_{1-s}: the OU time of the VP diffusion time s.

    Requires a variance-preserving schedule (alpha^2 + sigma^2 = 1, checked).
    """
    s = torch.as_tensor(s, dtype=torch.float64)
    c = path.coefficients(1.0 - s)
    if not torch.allclose(c.alpha**2 + c.sigma**2, torch.ones_like(c.alpha), atol=1e-9):
        raise ValueError(
            "the JKO bridge needs a variance-preserving path (alpha^2 + sigma^2 = 1), "
            "e.g. AffinePath(VPSchedule()); VE and linear paths are not OU flows"
        )
    return -torch.log(c.alpha)


def _check_grid(path: AffinePath, s_grid) -> Tensor:
    s = torch.as_tensor(s_grid, dtype=torch.float64).reshape(-1)
    if s.numel() < 2 or not bool((s[1:] > s[:-1]).all()):
        raise ValueError("s_grid must hold at least two increasing diffusion times s = 1 - t")
    if float(s[0]) <= 0 or float(s[-1]) > 1:
        raise ValueError(
            "s_grid must lie in (0, 1]: at s = 0 the marginal is the data law "
            "itself and the denoising step's posterior is singular"
        )
    vp_time_change(path, s)
    return s


def uniform_tau_grid(path: AffinePath, s_start: float, s_end: float, n_steps: int) -> Tensor:
    """Diffusion times s_0 = s_start < ... < s_K = s_end equally spaced in tau (constant h)."""
    if not (0 < s_start < s_end <= 1) or n_steps < 1:
        raise ValueError("need 0 < s_start < s_end <= 1 and n_steps >= 1")
    lo, hi = (float(vp_time_change(path, v)) for v in (s_start, s_end))
    taus = torch.linspace(lo, hi, n_steps + 1, dtype=torch.float64)
    fine = torch.linspace(s_start, s_end, 20001, dtype=torch.float64)
    s = torch.from_numpy(np.interp(taus.numpy(), vp_time_change(path, fine).numpy(), fine.numpy()))
    s[0], s[-1] = s_start, s_end
    return s


def _step(
    field: Field, x: Tensor, s_to: float, s_from: float, sampler: str, noise: Tensor | None
) -> Tensor:
    """One denoising step from t = 1 - s_to to t' = 1 - s_from with the field's x1 / eps."""
    t, t2 = 1.0 - s_to, 1.0 - s_from
    c_from = field.coefficients(torch.tensor(t, dtype=torch.float64))
    c_to = field.coefficients(torch.tensor(t2, dtype=torch.float64))
    c_from, c_to = (
        type(c)(*(float(v) for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma)))
        for c in (c_from, c_to)
    )
    x1_hat, eps_hat = field.x1_and_epsilon(x, broadcast_time(t, x), c_from)
    if sampler == "ddim":
        return ddim_step(x1_hat, eps_hat, c_from, c_to, 0.0, None)
    return ddpm_step(x, x1_hat, c_from, c_to, noise)


def _sampler(sampler: str) -> str:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler = {sampler!r}: choose one of {SAMPLERS}")
    return sampler


def gaussian_jko_bridge(
    mean: Tensor, cov: Tensor, path: AffinePath, s_grid, sampler: str = "ddim"
) -> JKOBridgeResult:
    """Closed-form bridge for Gaussian data N(mean, cov) and the exact model (module doc).

    rho_s = N(alpha m, alpha^2 C + sigma^2 I) (alpha, sigma at t = 1 - s); the exact model's
    x1-prediction is affine, so a DDIM step is an affine map x -> A x + b and a DDPM step adds
    N(0, var I): both push Gaussians to Gaussians, read off by applying the library's own
    ``ddim_step`` / ``ddpm_step`` to the points 0, e_1, ..., e_d. JKO steps are
    :func:`gaussian_jko_step` toward N(0, I); distances are Bures-Wasserstein.

    Args:
        mean, cov: the data law, (d,), (d, d) positive definite.
        path: a VP :class:`AffinePath`; s_grid: increasing diffusion times in (0, 1], (K + 1,).
        sampler: "ddim" (deterministic, eta = 0) or "ddpm" (ancestral, its law with the noise).
    """
    sampler = _sampler(sampler)
    s = _check_grid(path, s_grid)
    oracle = gaussian_oracle(mean, cov, path)
    field = Field.from_oracle(oracle)
    d = oracle.mixture.dim
    target = standard_gaussian_potential(d)
    tau = vp_time_change(path, s)

    def marginal(si: float) -> Gaussian:
        g = oracle.marginal(1.0 - si)
        return Gaussian(mean=g.means[0], cov=g.covs[0])

    def denoise(g: Gaussian, s_to: float, s_from: float) -> Gaussian:
        pts = torch.cat([torch.zeros(1, d), torch.eye(d)]).to(torch.float64)
        out = _step(field, pts, s_to, s_from, sampler, None)
        b = out[0]
        A = (out[1:] - b).T  # column j is A e_j
        cov = A @ g.cov @ A.T
        if sampler == "ddpm":
            c_from, c_to = (
                path.coefficients(torch.tensor(1.0 - v, dtype=torch.float64))
                for v in (s_to, s_from)
            )
            cov = cov + posterior_coefficients(c_from, c_to)[2] * torch.eye(d, dtype=torch.float64)
        return Gaussian(mean=A @ g.mean + b, cov=(cov + cov.T) / 2)

    def dist(p: Gaussian, q: Gaussian) -> float:
        return float(gaussian_w2(p.mean, p.cov, q.mean, q.cov))

    rows = []
    for k in range(1, s.numel()):
        a, b = float(s[k - 1]), float(s[k])
        h = float(tau[k] - tau[k - 1])
        rho_a, rho_b = marginal(a), marginal(b)
        jko = gaussian_jko_step(rho_a, target, h)
        rows.append(
            (
                h,
                dist(jko, rho_b),
                dist(denoise(rho_b, b, a), rho_a),
                dist(denoise(jko, b, a), rho_a),
            )
        )
    return _result(s, rows, [0.0] * len(rows), sampler, "gaussian_closed_form")


def _result(s, rows, floor, sampler, method) -> JKOBridgeResult:
    cols = [torch.tensor(c, dtype=torch.float64) for c in zip(*rows, strict=True)]
    return JKOBridgeResult(
        s_from=s[:-1].clone(),
        s_to=s[1:].clone(),
        h=cols[0],
        w2_jko=cols[1],
        w2_denoise=cols[2],
        w2_roundtrip=cols[3],
        w2_floor=torch.tensor(floor, dtype=torch.float64),
        sampler=sampler,
        method=method,
    )


def _check_particle_inputs(field: Field, data, n_particles: int) -> tuple[AffinePath, Tensor]:
    """The field's path and the data as float64 (m, d), or a ``ValueError`` naming the input."""
    if not isinstance(field, Field) or field.path is None:
        raise ValueError(
            "field must be a Field with its path, e.g. run.field() or Field.from_oracle(oracle)"
        )
    data = torch.as_tensor(data, dtype=torch.float64)
    if data.dim() != 2 or data.shape[0] < 2:
        raise ValueError(f"data must be (m, d) samples with m >= 2, got shape {tuple(data.shape)}")
    if n_particles < 10:
        raise ValueError(f"n_particles must be at least 10, got {n_particles}")
    return field.path, data


def jko_bridge(
    field: Field,
    data: Tensor,
    s_grid,
    sampler: str = "ddim",
    *,
    n_particles: int = 1000,
    n_centers: int = 8,
    generator: torch.Generator | None = None,
) -> JKOBridgeResult:
    """Particle bridge for any model (module doc): exact W2 between n-point samples.

    Args:
        field: the model on the t clock with its VP path (``TrainedRun.field()`` in the model's
            coordinates, or ``Field.from_oracle(oracle)``).
        data: samples of the data law in the model's coordinates, (m, d); rho_s is their forward
            marginal sum_i N(alpha x_i, sigma^2 I) / m (exact for the empirical law).
        s_grid: increasing diffusion times in (0, 1], (K + 1,).
        sampler: "ddim" or "ddpm"; n_particles: points per sample (cost n^3 for exact OT).
        n_centers: radial-basis centres of the JKO maps (:func:`jko_particles`).
        generator: drives every sample.
    """
    sampler = _sampler(sampler)
    path, data = _check_particle_inputs(field, data, n_particles)
    s = _check_grid(path, s_grid)
    d = data.shape[1]
    target = standard_gaussian_potential(d)
    tau = vp_time_change(path, s)
    ones = torch.ones(data.shape[0], dtype=torch.float64)

    def marginal(si: float) -> GaussianMixture:
        c = path.coefficients(torch.tensor(1.0 - si, dtype=torch.float64))
        return GaussianMixture.create(ones, float(c.alpha) * data, float(c.sigma) ** 2)

    def draw(si: float) -> Tensor:
        return marginal(si).sample(n_particles, generator=generator)

    def denoise(x: Tensor, s_to: float, s_from: float) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        with torch.no_grad():
            return _step(field, x, s_to, s_from, sampler, noise)

    def dist(x: Tensor, y: Tensor) -> float:
        return w2(x, y).w2

    rows, floor = [], []
    for k in range(1, s.numel()):
        a, b = float(s[k - 1]), float(s[k])
        h = float(tau[k] - tau[k - 1])
        r = jko_particles(
            marginal(a),
            target,
            h,
            1,
            n_particles=n_particles,
            n_centers=n_centers,
            generator=generator,
        )
        jko = r.states[1]
        ref = draw(a)
        rows.append(
            (
                h,
                dist(jko, draw(b)),
                dist(denoise(draw(b), b, a), ref),
                dist(denoise(jko, b, a), ref),
            )
        )
        floor.append(dist(draw(a), ref))
    if not all(math.isfinite(v) for row in rows for v in row):
        raise ValueError("a W2 is not finite: the model returned NaN or inf on the grid")
    return _result(s, rows, floor, sampler, "particles")
