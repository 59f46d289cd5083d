"""The free energy F(rho) = KL(rho || pi) and the relative Fisher information I(rho || pi).

For pi = exp(-V) / Z:

    F(rho) = KL(rho || pi) = int V drho + int rho log rho + log Z = E_rho[V] - H(rho) + log Z,
    I(rho || pi) = int |grad log rho + grad V|^2 drho,

and along the Fokker-Planck flow d_t rho = div(rho grad V) + Laplace(rho), d/dt F = -I
(de Bruijn). Three representations of rho are covered:

* Gaussians N(m, S): closed forms (entropy, KL between Gaussians, Fisher information);
* particles x_1..x_n ~ rho: Kozachenko-Leonenko k-NN entropy plus Monte Carlo E[V];
* densities on a regular grid (any dimension, 1-D and 2-D in practice): Riemann sums with the
  cell volume, and the Fisher information as the Scharfetter-Gummel dissipation (the exact
  d/dt KL of the finite-volume scheme in ``fp_grid``).

References: Cover & Thomas (2006) ch. 8 (Gaussian entropy); Kozachenko & Leonenko (1987);
Berrett, Samworth & Yuan (2019), Ann. Statist. 47(1) (k-NN entropy bias); Jordan, Kinderlehrer
& Otto (1998) (F and its gradient flow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln
from torch import Tensor

from .._checks import as_points, as_spd, as_vector, gaussian_pair
from .potentials import Potential


@dataclass(frozen=True)
class FreeEnergy:
    """F(rho) = KL(rho || pi) split into its parts.

    Attributes:
        potential_energy: E_rho[V] = int V drho.
        entropy: H(rho) = -int rho log rho (differential entropy, nats).
        relative_free_energy: E_rho[V] - H(rho) = KL(rho || pi) - log Z, always available.
        kl: KL(rho || pi) = relative_free_energy + log Z, or None when log Z is unknown.
        log_normalizer: the log Z used (None when unknown).
        potential_energy_std_error: Monte Carlo standard error of E_rho[V] (0 for exact sums).
        method: "gaussian", "particles-knn" or "grid".
    """

    potential_energy: float
    entropy: float
    relative_free_energy: float
    kl: float | None
    log_normalizer: float | None
    potential_energy_std_error: float
    method: str


def _assemble(pe: float, h: float, log_z: float | None, se: float, method: str) -> FreeEnergy:
    rel = pe - h
    kl = None if log_z is None else rel + log_z
    return FreeEnergy(pe, h, rel, kl, log_z, se, method)


def _logdet_pd(S: Tensor, name: str) -> tuple[float, Tensor]:
    L, info = torch.linalg.cholesky_ex(S)
    if int(info) != 0:
        raise ValueError(
            f"{name} is singular: this closed form needs a positive-definite covariance"
        )
    return 2.0 * float(torch.log(torch.diagonal(L)).sum()), L


# ----------------------------------------------------------------------------- Gaussians


def gaussian_entropy(cov: Tensor) -> float:
    """H(N(m, S)) = d/2 log(2 pi e) + 1/2 log det S (nats). S (d, d) positive definite."""
    S = as_spd(cov, "cov")
    logdet, _ = _logdet_pd(S, "cov")
    return 0.5 * S.shape[0] * math.log(2 * math.pi * math.e) + 0.5 * logdet


def gaussian_kl(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor) -> float:
    """KL(N(m0, S0) || N(m1, S1)).

    KL = 1/2 [tr(S1^-1 S0) + (m1 - m0)^T S1^-1 (m1 - m0) - d + log det S1 - log det S0].
    """
    m0, S0, m1, S1 = gaussian_pair(m0, S0, m1, S1)
    d = m0.shape[0]
    ld0, _ = _logdet_pd(S0, "S0")
    ld1, L1 = _logdet_pd(S1, "S1")
    dm = (m1 - m0)[:, None]
    tr = float(torch.trace(torch.cholesky_solve(S0, L1)))
    maha = float((dm * torch.cholesky_solve(dm, L1)).sum())
    return 0.5 * (tr + maha - d + ld1 - ld0)


def gaussian_fisher_information(m: Tensor, S: Tensor, b: Tensor, Sigma: Tensor) -> float:
    """I(N(m, S) || N(b, Sigma)) = E |grad log rho + grad V|^2 in closed form.

    With P = Sigma^-1, grad log rho + grad V = (P - S^-1)(x - m) + P (m - b), hence

        I = tr((P - S^-1) S (P - S^-1)) + |P (m - b)|^2.
    """
    m, b = as_vector(m, "m"), as_vector(b, "b")
    S, Sigma = as_spd(S, "S"), as_spd(Sigma, "Sigma")
    _logdet_pd(S, "S")
    _, L = _logdet_pd(Sigma, "Sigma")
    d = m.shape[0]
    eye = torch.eye(d, dtype=torch.float64)
    P = torch.cholesky_solve(eye, L)
    M = P - torch.linalg.inv(S)
    return float(torch.trace(M @ S @ M)) + float(((P @ (m - b)) ** 2).sum())


def gaussian_free_energy(mean: Tensor, cov: Tensor, potential: Potential) -> FreeEnergy:
    """F(N(m, S)) for a Gaussian target N(b, Sigma), in closed form.

    E[V] = 1/2 [tr(Sigma^-1 S) + (m - b)^T Sigma^-1 (m - b)], H from :func:`gaussian_entropy`,
    KL = E[V] - H + log Z (equal to :func:`gaussian_kl`). For other targets sample the Gaussian
    and use :func:`particle_free_energy`.
    """
    if potential.gaussian is None:
        raise ValueError(
            f"{potential.name} is not Gaussian: sample N(mean, cov) and use particle_free_energy"
        )
    m = as_vector(mean, "mean")
    S = as_spd(cov, "cov")
    b, Sigma = potential.gaussian.mean, potential.gaussian.cov
    if m.shape != b.shape or S.shape != Sigma.shape:
        raise ValueError(f"mean/cov have d = {m.shape[0]}, the target has d = {b.shape[0]}")
    _, L = _logdet_pd(Sigma, "target covariance")
    dm = (m - b)[:, None]
    trace = float(torch.trace(torch.cholesky_solve(S, L)))
    pe = 0.5 * (trace + float((dm * torch.cholesky_solve(dm, L)).sum()))
    return _assemble(pe, gaussian_entropy(S), potential.log_normalizer, 0.0, "gaussian")


# ----------------------------------------------------------------------------- particles


def knn_entropy(x: Tensor, k: int = 1) -> float:
    """Kozachenko-Leonenko k-nearest-neighbour estimate of H(rho) from x_1..x_n ~ rho (nats).

        H_hat = psi(n) - psi(k) + log c_d + d/n sum_i log r_i,k,

    r_i,k the distance from x_i to its k-th nearest neighbour among the others, c_d =
    pi^{d/2} / Gamma(1 + d/2) the volume of the unit ball, psi the digamma function.

    Bias: consistent and asymptotically unbiased; for smooth densities such as Gaussians the
    bias decays like n^{-2/d} up to log factors (Berrett, Samworth & Yuan 2019), slower than
    the n^{-1/2} standard deviation once d >= 4. For N(mu, S) (k = 1) the measured mean error over
    20 repetitions is small and mostly negative: n = 5000 gives +0.005, -0.005, -0.005,
    -0.04, -0.05, -0.03 nats for d = 1, 2, 3, 5, 7, 10 (n = 2000: -0.002 ... -0.054), i.e.
    |bias| <= 0.06 nats for d <= 10 at these n, with standard deviation 0.02-0.06 nats.
    Non-Gaussian, heavy-tailed or multimodal densities can have larger bias.

    Args:
        x: (n, d) samples, n > k, no duplicate points.
        k: which neighbour (larger k lowers the variance and, at fixed n, usually raises the
            bias; the figures above are for k = 1).
    """
    x = as_points(x, "x").detach().to(torch.float64).cpu().numpy()
    n, d = x.shape
    if not (isinstance(k, int) and 1 <= k < n):
        raise ValueError(f"k = {k} must be an integer in [1, n - 1] with n = {n} samples")
    dist, _ = cKDTree(x).query(x, k=k + 1)
    r = dist[:, k]
    if (r <= 0).any():
        raise ValueError(
            "x holds duplicate points (a zero nearest-neighbour distance): the k-NN entropy "
            "needs samples from a density; drop duplicates or add a tiny jitter"
        )
    log_cd = 0.5 * d * math.log(math.pi) - float(gammaln(1 + 0.5 * d))
    return float(digamma(n) - digamma(k) + log_cd + d * np.log(r).mean())


def potential_energy(x: Tensor, potential: Potential) -> tuple[float, float]:
    """Monte Carlo E_rho[V] = mean_i V(x_i) and its standard error std(V) / sqrt(n)."""
    x = as_points(x, "x")
    v = potential.V(x).detach().to(torch.float64)
    n = v.shape[0]
    se = float(v.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("inf")
    return float(v.mean()), se


def particle_free_energy(x: Tensor, potential: Potential, k: int = 1) -> FreeEnergy:
    """F(rho) from samples x ~ rho: E[V] by Monte Carlo, H by :func:`knn_entropy`.

    ``kl`` needs log Z (known for Gaussian and mixture targets); otherwise only
    ``relative_free_energy`` = KL - log Z is reported. The error is dominated by the k-NN
    entropy bias in high dimension (see :func:`knn_entropy`).
    """
    pe, se = potential_energy(x, potential)
    h = knn_entropy(x, k=k)
    return _assemble(pe, h, potential.log_normalizer, se, "particles-knn")


# ----------------------------------------------------------------------------- grids


def _grid_args(density, potential_values, spacing) -> tuple[np.ndarray, np.ndarray, tuple]:
    rho = np.asarray(density, dtype=np.float64)
    V = np.asarray(potential_values, dtype=np.float64)
    if rho.shape != V.shape:
        raise ValueError(
            f"density has shape {rho.shape} but potential_values has {V.shape}: evaluate V at "
            "the same cell centres"
        )
    hs = (float(spacing),) * rho.ndim if np.isscalar(spacing) else tuple(map(float, spacing))
    if len(hs) != rho.ndim or min(hs) <= 0:
        raise ValueError(f"spacing must be one positive width per axis ({rho.ndim}), got {spacing}")
    if not (np.isfinite(rho).all() and np.isfinite(V).all()):
        raise ValueError("density and potential_values must be finite")
    if (rho < 0).any():
        raise ValueError("density has negative values: a probability density must be >= 0")
    mass = rho.sum() * math.prod(hs)
    if abs(mass - 1.0) > 1e-6:
        raise ValueError(
            f"density integrates to {mass:.8g}, not 1: divide by density.sum() * cell volume"
        )
    return rho, V, hs


def discrete_log_normalizer(potential_values, spacing) -> float:
    """log Z_h = log sum_cells exp(-V_i) |cell|, the Riemann-sum normaliser of exp(-V)."""
    V = np.asarray(potential_values, dtype=np.float64)
    hs = (float(spacing),) * V.ndim if np.isscalar(spacing) else tuple(map(float, spacing))
    vmin = V.min()
    return float(-vmin + np.log(np.exp(-(V - vmin)).sum()) + sum(map(math.log, hs)))


def grid_free_energy(
    density, potential_values, spacing, log_normalizer: float | None = None
) -> FreeEnergy:
    """F(rho) for a density sampled at the centres of a regular grid (1-D, 2-D, ...).

        E[V] = sum_i V_i rho_i |cell|,  H = -sum_i rho_i log rho_i |cell|  (0 log 0 = 0),

    KL = E[V] - H + log Z. With ``log_normalizer=None`` the discrete log Z_h of
    :func:`discrete_log_normalizer` is used, so that KL is the discrete KL(rho_h || pi_h)
    (>= 0, zero exactly at pi_h = exp(-V) / Z_h, the fixed point of ``fp_grid``).

    Args:
        density: (n_1, ..., n_d) values integrating to 1 (sum * cell volume).
        potential_values: V at the same cell centres.
        spacing: cell widths, a float or one per axis.
        log_normalizer: the exact log Z to compare with the continuum, or None.
    """
    rho, V, hs = _grid_args(density, potential_values, spacing)
    vol = math.prod(hs)
    pe = float((V * rho).sum() * vol)
    pos = rho > 0
    h = float(-(rho[pos] * np.log(rho[pos])).sum() * vol)
    log_z = discrete_log_normalizer(V, hs) if log_normalizer is None else float(log_normalizer)
    return _assemble(pe, h, log_z, 0.0, "grid")


def grid_fisher_information(density, potential_values, spacing) -> float:
    """Relative Fisher information of a grid density, as the Scharfetter-Gummel dissipation.

    With u = rho exp(V) = Z rho / pi and, on the face between neighbours i, j along an axis of
    width h, the face weight pi_f = (V_j - V_i) / (exp(V_j) - exp(V_i)) (the logarithmic-mean
    harmonic average of exp(-V); exp(-V_i) when V_i = V_j),

        I_h = sum_faces pi_f (u_j - u_i)(log u_j - log u_i) / h^2 |cell|,

    a second-order approximation of int |grad log(rho / pi)|^2 drho = I(rho || pi), and exactly
    -d/dt KL_h along the semi-discrete flow of ``fp_grid`` (discrete de Bruijn identity).
    Cells with rho = 0 next to cells with rho > 0 give I = inf, as in the continuum.
    """
    rho, V, hs = _grid_args(density, potential_values, spacing)
    vol = math.prod(hs)
    with np.errstate(divide="ignore"):
        logu = np.log(rho) + V
    total = 0.0
    for ax, h in enumerate(hs):
        n = rho.shape[ax]
        lo, hi = np.arange(n - 1), np.arange(1, n)
        z = np.diff(V, axis=ax)
        # pi_f (u_j - u_i) = B(-z) rho_j - B(z) rho_i, computed without exp(V) overflow
        flux = bernoulli(-z) * np.take(rho, hi, axis=ax) - bernoulli(z) * np.take(rho, lo, axis=ax)
        with np.errstate(invalid="ignore"):
            dl = np.diff(logu, axis=ax)
            term = np.where(flux == 0, 0.0, flux * dl)
        total += float(term.sum()) / h**2
    return total * vol


def bernoulli(z: np.ndarray) -> np.ndarray:
    """B(z) = z / (exp(z) - 1), B(0) = 1, evaluated stably (the Scharfetter-Gummel weight)."""
    z = np.asarray(z, dtype=np.float64)
    small = np.abs(z) < 1e-6
    zs = np.where(small, 1.0, z)
    with np.errstate(over="ignore"):  # z > 709: expm1 = inf, B = 0 as it should
        return np.where(small, 1.0 - 0.5 * z + z * z / 12.0, zs / np.expm1(zs))
