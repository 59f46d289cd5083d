"""JKO solvers: closed form, entropic grid, particles.

References: the docs/design.md section 3 formula for V = |x|^2/2; brute-force scipy minimisation of the
Gaussian JKO objective with the Bures W2 of gaussian.py and scipy's Gaussian entropy; the OU
covariance ODE dS/dt = -PS - SP + 2I integrated by scipy; first-order convergence in h.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from wasserflow.geometry import GaussianMixture, gaussian_w2_squared
from wasserflow.geometry.flows import (
    gaussian_jko,
    gaussian_jko_step,
    ou_gaussian,
    symmetric_gaussian_kl,
)
from wasserflow.geometry.flows.jko_grid import jko_grid
from wasserflow.geometry.flows.jko_particles import jko_particles
from wasserflow.geometry.flows.potentials import function_potential, gaussian_potential
from wasserflow.geometry.measures import Gaussian

D64 = torch.float64


def _spd(d, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=D64)
    return A @ A.T / d + 0.3 * torch.eye(d, dtype=D64)


def test_gaussian_jko_matches_design_closed_form():
    """V = |x|^2/2: m/(1+h) and s = (s_k + sqrt(s_k^2 + 4h(1+h)))/(2(1+h)) in S_k's eigenbasis."""
    S0, m0, h = _spd(3, 0) * 2.0, torch.tensor([1.0, -2.0, 0.5], dtype=D64), 0.3
    res = gaussian_jko(Gaussian(m0, S0), gaussian_potential(torch.zeros(3), torch.eye(3)), h, 4)
    w, U = torch.linalg.eigh(S0)
    s, m = w.sqrt(), m0
    for k in range(1, 5):
        s = (s + torch.sqrt(s**2 + 4 * h * (1 + h))) / (2 * (1 + h))
        m = m / (1 + h)
        torch.testing.assert_close(res.states[k].mean, m, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(res.states[k].cov, (U * s**2) @ U.T, rtol=1e-10, atol=1e-12)
    assert res.is_monotone()


def test_gaussian_jko_step_is_the_bruteforce_minimiser():
    """Non-commuting Sigma, S_k: scipy minimises F(N(m, LL^T)) + W2^2/(2h) over (m, L)."""
    d, h = 2, 0.4
    Sigma, Sk = _spd(d, 1), _spd(d, 2)
    b, mk = torch.tensor([0.7, -0.3], dtype=D64), torch.tensor([-1.0, 2.0], dtype=D64)
    target = gaussian_potential(b, Sigma)
    P = np.linalg.inv(Sigma.numpy())

    def objective(z):
        m, L = z[:d], np.array([[z[2], 0.0], [z[3], z[4]]])
        S = L @ L.T + 1e-12 * np.eye(d)
        ev = 0.5 * ((m - b.numpy()) @ P @ (m - b.numpy()) + np.trace(P @ S))
        F = ev - multivariate_normal(mean=m, cov=S).entropy()
        w2 = float(gaussian_w2_squared(torch.tensor(m), torch.tensor(S), mk, Sk))
        return F + w2 / (2 * h)

    L0 = np.linalg.cholesky(Sk.numpy())
    z0 = np.array([mk[0], mk[1], L0[0, 0], L0[1, 0], L0[1, 1]])
    opt = minimize(
        objective,
        z0,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20000, "maxfev": 20000},
    )
    L = np.array([[opt.x[2], 0.0], [opt.x[3], opt.x[4]]])
    step = gaussian_jko_step(Gaussian(mk, Sk), target, h)
    np.testing.assert_allclose(step.mean.numpy(), opt.x[:d], atol=1e-5)
    np.testing.assert_allclose(step.cov.numpy(), L @ L.T, atol=1e-5)


def test_ou_gaussian_solves_the_moment_odes():
    """m' = -P(m - b), S' = -PS - SP + 2I integrated by scipy (RK45, tight tolerances)."""
    d = 3
    Sigma, S0 = _spd(d, 3), _spd(d, 4)
    b, m0 = torch.tensor([1.0, 0.0, -1.0], dtype=D64), torch.tensor([0.0, 2.0, 1.0], dtype=D64)
    P = np.linalg.inv(Sigma.numpy())

    def rhs(_, y):
        m, S = y[:d], y[d:].reshape(d, d)
        return np.concatenate([-P @ (m - b.numpy()), (-P @ S - S @ P + 2 * np.eye(d)).ravel()])

    sol = solve_ivp(
        rhs, (0, 0.7), np.concatenate([m0.numpy(), S0.numpy().ravel()]), rtol=1e-11, atol=1e-12
    )
    ex = ou_gaussian(Gaussian(m0, S0), gaussian_potential(b, Sigma), 0.7)
    np.testing.assert_allclose(ex.mean.numpy(), sol.y[:d, -1], atol=1e-8)
    np.testing.assert_allclose(ex.cov.numpy(), sol.y[d:, -1].reshape(d, d), atol=1e-8)


def test_gaussian_jko_converges_at_first_order():
    d, T = 3, 0.8
    target = gaussian_potential(torch.tensor([0.5, -1.0, 0.0]), _spd(d, 5))
    init = Gaussian(torch.zeros(d, dtype=D64), _spd(d, 6))
    exact = ou_gaussian(init, target, T)
    errs = []
    for n in (8, 16, 32, 64):
        last = gaussian_jko(init, target, T / n, n).states[-1]
        errs.append(math.sqrt(symmetric_gaussian_kl(last, exact)))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 0.85) & (orders < 1.15)), orders


def _grid_moments(x, rho):
    p = rho * (x[1] - x[0])
    m = (p * x).sum()
    return float(m), float((p * (x - m) ** 2).sum())


def test_grid_jko_1d_first_order_and_monotone():
    """Entropic JKO (eps = h^2/2) error in mean and variance vs the exact OU flow halves with h."""
    target = gaussian_potential(torch.tensor([0.5]), torch.tensor([[0.5]]))
    x = torch.linspace(-6, 6, 161, dtype=D64)
    m0, s0, T = -1.0, 1.5, 0.8
    exact = ou_gaussian(Gaussian(torch.tensor([m0]), torch.tensor([[s0**2]])), target, T)
    errs = []
    for h in (0.4, 0.2):
        res = jko_grid([x], torch.exp(-((x - m0) ** 2) / (2 * s0**2)), target, h, round(T / h))
        assert res.converged and res.is_monotone()
        m, v = _grid_moments(x, res.states[-1])
        errs.append(abs(m - float(exact.mean[0])) + abs(v - float(exact.cov[0, 0])))
    order = math.log2(errs[0] / errs[1])
    assert 0.7 < order < 1.3, (errs, order)


def test_grid_jko_takes_the_fokker_planck_grid_type():
    """jko_grid accepts the RegularGrid of solve_fokker_planck_grid; on the grid whose cell
    centres are given axes it matches the axes form up to round-off, and F decreases."""
    from wasserflow.geometry.flows.fp_grid import RegularGrid, regular_grid

    target = gaussian_potential(torch.tensor([0.3]), torch.tensor([[0.8]]))
    ax = torch.linspace(-5, 5, 51, dtype=D64)
    rho0 = torch.exp(-((ax - 1.5) ** 2) / 0.5)
    by_axes = jko_grid([ax], rho0, target, 0.2, 3)
    by_grid = jko_grid(RegularGrid.from_axes([ax]), rho0, target, 0.2, 3)
    torch.testing.assert_close(by_grid.free_energy, by_axes.free_energy, atol=1e-12, rtol=0)
    torch.testing.assert_close(by_grid.states[-1], by_axes.states[-1], atol=1e-12, rtol=0)
    grid = regular_grid(-4.0, 4.0, (24, 20))
    rho = grid.evaluate(lambda x: torch.exp(-((x - 0.5) ** 2).sum(-1)))
    res = jko_grid(
        grid, torch.from_numpy(rho), gaussian_potential(torch.zeros(2), torch.eye(2)), 0.2, 2
    )
    assert res.is_monotone() and tuple(res.states[-1].shape) == grid.shape


@pytest.mark.slow  # minutes on 2 busy cores: small eps makes the scaling iterations slow
def test_grid_jko_2d_tracks_ou_covariance():
    target = gaussian_potential(torch.tensor([0.3, -0.2]), torch.tensor([[1.0, 0.4], [0.4, 0.6]]))
    ax = torch.linspace(-5, 5, 61, dtype=D64)
    X, Y = torch.meshgrid(ax, ax, indexing="ij")
    rho0 = torch.exp(-((X + 1) ** 2 + (Y - 1) ** 2) / 2)
    h, K = 0.1, 4
    res = jko_grid([ax, ax], rho0, target, h, K)
    assert res.converged and res.is_monotone()
    p = res.states[-1] * (ax[1] - ax[0]) ** 2
    pts = torch.stack([X, Y], -1).reshape(-1, 2)
    w = p.reshape(-1)
    mean = (w[:, None] * pts).sum(0)
    cov = (w[:, None] * (pts - mean)).T @ (pts - mean)
    cf = gaussian_jko(Gaussian(torch.tensor([-1.0, 1.0]), torch.eye(2)), target, h, K).states[-1]
    torch.testing.assert_close(mean, cf.mean, atol=2e-2, rtol=0)
    torch.testing.assert_close(cov, cf.cov, atol=4e-2, rtol=0)


def _std_normal(d):
    return GaussianMixture.create([1.0], torch.zeros(1, d), torch.eye(d)[None])


@pytest.mark.slow  # about 15 s on 2 busy cores
def test_particle_jko_approaches_closed_form():
    """Particle JKO vs the closed-form JKO on N(0,I) -> N(b, Sigma) in d = 2 (3 steps, h = 0.1).

    The symmetric KL (Monte Carlo, the solver's own log-density through its maps) shrinks from
    n = 200 to n = 2000 particles, where it is below 5e-3: the Monte Carlo optimisation error
    of the per-step maps (about d^2 / n) dominates, not the map family.
    """
    d, h, K = 2, 0.1, 3
    target = gaussian_potential(torch.tensor([1.0, -0.5]), _spd(d, 7))
    cf = gaussian_jko(Gaussian(torch.zeros(d, dtype=D64), torch.eye(d, dtype=D64)), target, h, K)
    ref = cf.states[-1]
    ref_dist = torch.distributions.MultivariateNormal(ref.mean, ref.cov)
    skl = []
    for n in (200, 2000):
        g = torch.Generator().manual_seed(11)
        res = jko_particles(_std_normal(d), target, h, K, n_particles=n, n_centers=4, generator=g)
        assert res.is_monotone()
        with torch.no_grad():
            y, log_c = res.sample(10000, generator=g)
            z = (
                ref.mean
                + torch.randn(10000, d, generator=g, dtype=D64) @ torch.linalg.cholesky(ref.cov).T
            )
            skl.append(
                float(
                    (log_c - ref_dist.log_prob(y)).mean()
                    + (ref_dist.log_prob(z) - res.log_prob(z)).mean()
                )
            )
    assert skl[1] < skl[0] and skl[1] < 5e-3, skl


def test_particle_jko_non_gaussian_target_free_energy_decreases():
    """Double well V = (x^2 - 1)^2 in 1-D: F non-increasing, maps invertible, densities agree."""
    target = function_potential(lambda x: ((x**2 - 1) ** 2).sum(-1), dim=1)
    g = torch.Generator().manual_seed(3)
    res = jko_particles(_std_normal(1), target, 0.1, 5, n_particles=1000, n_centers=6, generator=g)
    assert res.is_monotone() and res.free_energy[-1] < res.free_energy[0] - 0.05
    x = res.states[-1][:50]
    torch.testing.assert_close(res.log_prob(x), res.log_densities[-1][:50], atol=1e-7, rtol=0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda t: gaussian_jko(Gaussian(torch.zeros(1), torch.eye(1)), t, -0.1, 2), "positive"),
        (lambda t: gaussian_jko(Gaussian(torch.zeros(1), torch.eye(1)), t, 0.1, 0), "n_steps"),
        (lambda t: gaussian_jko(Gaussian(torch.zeros(2), torch.eye(2)), t, 0.1, 1), "R\\^2"),
        (
            lambda t: gaussian_jko_step(
                Gaussian(torch.zeros(1), torch.eye(1)),
                function_potential(lambda x: (x**2).sum(-1)),
                0.1,
            ),
            "Gaussian target",
        ),
        (lambda t: jko_grid([torch.tensor([0.0, 1.0, 3.0])], torch.ones(3), t, 0.1, 1), "uniform"),
        (lambda t: jko_grid([torch.linspace(0, 1, 5)], torch.ones(4), t, 0.1, 1), "shape"),
        (lambda t: jko_particles(_std_normal(1), t, 0.1, 1, n_particles=1), "n_particles"),
        (lambda t: jko_particles(torch.zeros(3), t, 0.1, 1), "sample"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(gaussian_potential(torch.zeros(1), torch.eye(1)))
