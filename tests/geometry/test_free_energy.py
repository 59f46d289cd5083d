"""Potentials and free energies against references written elsewhere: torch.distributions,
scipy.stats, Monte Carlo with autograd scores, and convergence of Riemann sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch.distributions import MultivariateNormal, kl_divergence

from wasserflow.geometry.flows.free_energy import (
    discrete_log_normalizer,
    gaussian_entropy,
    gaussian_fisher_information,
    gaussian_free_energy,
    gaussian_kl,
    grid_fisher_information,
    grid_free_energy,
    knn_entropy,
    particle_free_energy,
)
from wasserflow.geometry.flows.potentials import (
    function_potential,
    gaussian_potential,
    mixture_potential,
    standard_gaussian_potential,
)
from wasserflow.geometry.measures import GaussianMixture

F64 = torch.float64


def _spd(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=F64)
    return A @ A.T / d + 0.3 * torch.eye(d, dtype=F64)


def _vec(d: int, seed: int) -> torch.Tensor:
    return torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ----------------------------------------------------------------------------- potentials


def test_gaussian_potential_matches_scipy_logpdf_and_autograd():
    b, S = _vec(3, 0), _spd(3, 1)
    pot = gaussian_potential(b, S)
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    ref = multivariate_normal(b.numpy(), S.numpy()).logpdf(x.numpy())
    assert np.allclose(pot.log_prob(x).numpy(), ref, atol=1e-10)
    # the analytic gradient against autograd of scipy-independent torch MVN log-density
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(MultivariateNormal(b, S).log_prob(xr).sum(), xr)
    assert torch.allclose(pot.grad(x), -g, atol=1e-10)
    assert torch.allclose(standard_gaussian_potential(3).V(x), 0.5 * (x**2).sum(-1))


def test_function_potential_autograd_gradient_and_unknown_log_z():
    # double well V = (|x|^2 - 1)^2, grad V = 4 (|x|^2 - 1) x (hand derivative)
    pot = function_potential(lambda x: ((x**2).sum(-1) - 1) ** 2, dim=2)
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    r2 = (x**2).sum(-1, keepdim=True)
    assert torch.allclose(pot.grad(x), 4 * (r2 - 1) * x, atol=1e-12)
    fe = particle_free_energy(x, pot)
    assert fe.kl is None and math.isfinite(fe.relative_free_energy)
    with pytest.raises(ValueError, match="log Z"):
        pot.log_prob(x)
    with pytest.raises(ValueError, match="one value per point"):
        function_potential(lambda x: x).V(x)


def test_mixture_potential_is_minus_log_density():
    gm = GaussianMixture.create(
        [0.3, 0.7], [[0.0, 0.0], [2.0, 1.0]], torch.stack([0.5 * torch.eye(2), 1.2 * torch.eye(2)])
    )
    pot = mixture_potential(gm)
    x = gm.sample(100, generator=torch.Generator().manual_seed(4))
    dens = 0.3 * multivariate_normal([0, 0], 0.5 * np.eye(2)).pdf(x.numpy()) + 0.7 * (
        multivariate_normal([2, 1], 1.2 * np.eye(2)).pdf(x.numpy())
    )
    assert np.allclose(pot.V(x).numpy(), -np.log(dens), atol=1e-10)
    autograd = function_potential(pot.energy, dim=2).grad(x)
    assert torch.allclose(pot.grad(x), autograd, atol=1e-10)


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="singular"):
        gaussian_potential(torch.zeros(2), torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="duplicate"):
        knn_entropy(torch.zeros(10, 2))
    with pytest.raises(ValueError, match="integrates to"):
        grid_free_energy(np.ones(10), np.zeros(10), 0.5)
    with pytest.raises(ValueError, match="not Gaussian"):
        gaussian_free_energy(torch.zeros(1), torch.eye(1), function_potential(lambda x: x[:, 0]))


# ----------------------------------------------------------------------------- Gaussians


@pytest.mark.parametrize("d", [1, 2, 5])
def test_gaussian_entropy_and_kl_match_torch_distributions(d):
    m0, m1, S0, S1 = _vec(d, 10), _vec(d, 11), _spd(d, 12), _spd(d, 13)
    p, q = MultivariateNormal(m0, S0), MultivariateNormal(m1, S1)
    assert gaussian_entropy(S0) == pytest.approx(float(p.entropy()), abs=1e-10)
    assert gaussian_kl(m0, S0, m1, S1) == pytest.approx(float(kl_divergence(p, q)), abs=1e-10)
    fe = gaussian_free_energy(m0, S0, gaussian_potential(m1, S1))
    assert fe.kl == pytest.approx(float(kl_divergence(p, q)), abs=1e-10)
    assert fe.relative_free_energy == pytest.approx(fe.kl - fe.log_normalizer, abs=1e-12)


def test_gaussian_fisher_information_matches_monte_carlo_with_autograd_scores():
    """I = E|grad log rho + grad V|^2 with both scores from torch.distributions autograd."""
    d = 3
    m, S, b, Sig = _vec(d, 20), _spd(d, 21), _vec(d, 22), _spd(d, 23)
    rho, pi = MultivariateNormal(m, S), MultivariateNormal(b, Sig)
    z = torch.randn(200_000, d, generator=torch.Generator().manual_seed(24), dtype=F64)
    x = (m + z @ torch.linalg.cholesky(S).T).requires_grad_(True)
    (s,) = torch.autograd.grad((rho.log_prob(x) - pi.log_prob(x)).sum(), x)
    vals = (s**2).sum(-1)
    mc, se = float(vals.mean()), float(vals.std()) / math.sqrt(vals.shape[0])
    exact = gaussian_fisher_information(m, S, b, Sig)
    assert abs(mc - exact) < 5 * se
    assert gaussian_fisher_information(b, Sig, b, Sig) == pytest.approx(0.0, abs=1e-10)


# ----------------------------------------------------------------------------- particles


@pytest.mark.parametrize("d", list(range(1, 11)))
def test_knn_entropy_within_its_bias_of_exact_gaussian_entropy(d):
    """Measured bias of the Kozachenko-Leonenko estimator for Gaussians at n = 5000 is
    |bias| <= 0.06 nats for d <= 10 and its standard deviation <= 0.045 nats (docstring):
    tolerance = bias bound + 4 standard deviations."""
    n = 5000
    S = _spd(d, 30 + d)
    L = torch.linalg.cholesky(S)
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(100 + d), dtype=F64)
    x = 3.0 + z @ L.T
    assert abs(knn_entropy(x) - gaussian_entropy(S)) < 0.06 + 4 * 0.045


def test_particle_kl_for_gaussian_and_mixture_targets():
    g = torch.Generator().manual_seed(5)
    m, S, b, Sig = _vec(2, 40), _spd(2, 41), _vec(2, 42), _spd(2, 43)
    x = m + torch.randn(20_000, 2, generator=g, dtype=F64) @ torch.linalg.cholesky(S).T
    fe = particle_free_energy(x, gaussian_potential(b, Sig))
    tol = 0.03 + 4 * fe.potential_energy_std_error
    assert fe.kl == pytest.approx(gaussian_kl(m, S, b, Sig), abs=tol)
    # mixture target: reference KL(N(0, I) || p) by Monte Carlo of log N - log p (exact densities)
    gm = GaussianMixture.create(
        [0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], torch.stack([0.6 * torch.eye(2), 0.8 * torch.eye(2)])
    )
    z = torch.randn(20_000, 2, generator=g, dtype=F64)
    std_normal = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    ref = std_normal.log_prob(z) - gm.log_prob(z)
    fe = particle_free_energy(z, mixture_potential(gm))
    se = float(ref.std()) / math.sqrt(z.shape[0])
    assert fe.kl == pytest.approx(float(ref.mean()), abs=0.03 + 4 * se)


# ----------------------------------------------------------------------------- grids


def _gauss_grid(axes, m, S):
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([a.reshape(-1) for a in mesh], 1)
    return multivariate_normal(m, S).pdf(pts).reshape(mesh[0].shape)


@pytest.mark.parametrize("dim", [1, 2])
def test_grid_kl_and_fisher_converge_at_second_order_to_closed_forms(dim):
    m, S = np.array([0.6, -0.4])[:dim], np.array([[0.5, 0.15], [0.15, 0.35]])[:dim, :dim]
    b, Sig = np.array([-0.2, 0.3])[:dim], np.array([[1.3, -0.4], [-0.4, 0.9]])[:dim, :dim]
    pot = gaussian_potential(torch.tensor(b), torch.tensor(Sig))
    kl_ex = gaussian_kl(torch.tensor(m), torch.tensor(S), torch.tensor(b), torch.tensor(Sig))
    fi_ex = gaussian_fisher_information(
        torch.tensor(m), torch.tensor(S), torch.tensor(b), torch.tensor(Sig)
    )
    errs_kl, errs_fi = [], []
    for n in (40, 80, 160) if dim == 2 else (100, 200, 400):
        h = 14.0 / n
        axes = [-7.0 + h * (np.arange(n) + 0.5)] * dim
        rho = _gauss_grid(axes, m, S)
        rho = rho / (rho.sum() * h**dim)
        mesh = np.meshgrid(*axes, indexing="ij")
        pts = torch.from_numpy(np.stack([a.reshape(-1) for a in mesh], 1))
        V = pot.V(pts).numpy().reshape(rho.shape)
        fe = grid_free_energy(rho, V, h, log_normalizer=pot.log_normalizer)
        errs_kl.append(abs(fe.kl - kl_ex))
        errs_fi.append(abs(grid_fisher_information(rho, V, h) - fi_ex))
    # midpoint sums of Gaussian integrands over a wide box are spectrally accurate: the KL
    # is exact to round-off; the SG Fisher information carries an O(h^2) flux error
    assert max(errs_kl) < 1e-10
    assert errs_fi[-1] < 2e-3 * fi_ex
    order_fi = math.log2(errs_fi[1] / errs_fi[2])
    assert 1.8 < order_fi < 2.2


def test_discrete_target_has_zero_kl_and_zero_fisher():
    h = 0.1
    x = np.arange(-5, 5, h) + h / 2
    X, Y = np.meshgrid(x, x, indexing="ij")
    V = (X**2 + 3 * Y**2) / 2 + 0.3 * np.sin(X * Y)
    pi_h = np.exp(-V - discrete_log_normalizer(V, h))
    assert pi_h.sum() * h * h == pytest.approx(1.0, abs=1e-12)
    assert abs(grid_free_energy(pi_h, V, h).kl) < 1e-12
    assert grid_fisher_information(pi_h, V, h) < 1e-20
