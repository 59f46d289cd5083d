"""Fokker-Planck solvers against independent references: the scalar OU transition law, the
moment ODEs integrated by scipy, Monte Carlo, the exact semi-discrete flow (expm_multiply),
measured convergence orders, and the de Bruijn identity d/dt KL = -I."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.sparse.linalg import expm_multiply
from scipy.stats import multivariate_normal

from wasserflow.geometry.flows import (
    OrnsteinUhlenbeck,
    langevin_particles,
    mala,
    ou_to_target,
    ula,
)
from wasserflow.geometry.flows.fp_grid import (
    discrete_stationary_density,
    fokker_planck_operator,
    regular_grid,
    solve_fokker_planck_grid,
)
from wasserflow.geometry.flows.free_energy import (
    gaussian_fisher_information,
    gaussian_kl,
    grid_fisher_information,
)
from wasserflow.geometry.flows.potentials import gaussian_potential, mixture_potential
from wasserflow.geometry.measures import GaussianMixture

F64 = torch.float64
SIGMA = torch.tensor([[1.5, 0.5], [0.5, 0.6]], dtype=F64)
B_CENTER = torch.tensor([0.5, -0.3], dtype=F64)
ANTI = torch.tensor([[0.0, 0.8], [-0.8, 0.0]], dtype=F64)
M0 = torch.tensor([1.5, -1.0], dtype=F64)
S0 = 0.3 * torch.eye(2, dtype=F64)


def _pdf(grid, mean, cov) -> np.ndarray:
    pts = grid.points().numpy()
    return multivariate_normal(np.asarray(mean), np.asarray(cov)).pdf(pts).reshape(grid.shape)


# ----------------------------------------------------------------------------- closed form


def test_scalar_ou_matches_textbook_transition_law():
    """dX = -theta (X - b) dt + sqrt(2) dW: X_t ~ N(b + e^{-theta t}(m0 - b),
    e^{-2 theta t} v0 + (1 - e^{-2 theta t}) / theta) (Gardiner, Handbook of Stochastic
    Methods, section 4.4.4, with diffusion coefficient 2)."""
    theta, b, m0, v0 = 1.7, 0.4, -2.0, 0.25
    ou = OrnsteinUhlenbeck.create(torch.tensor([[theta]], dtype=F64), torch.tensor([b], dtype=F64))
    for t in (0.0, 0.1, 1.0, 5.0):
        g = ou.marginal(torch.tensor([m0], dtype=F64), torch.tensor([[v0]], dtype=F64), t)
        e = math.exp(-theta * t)
        assert float(g.mean) == pytest.approx(b + e * (m0 - b), abs=1e-12)
        assert float(g.cov) == pytest.approx(e**2 * v0 + (1 - e**2) / theta, abs=1e-12)


@pytest.mark.parametrize("anti", [None, ANTI])
def test_ou_marginal_matches_moment_odes_and_stationary_cov(anti):
    ou = ou_to_target(B_CENTER, SIGMA, anti)
    assert torch.allclose(ou.stationary_cov, SIGMA, atol=1e-12)
    assert ou.is_reversible == (anti is None)
    B, b = ou.drift_matrix.numpy(), B_CENTER.numpy()

    def rhs(_t, y):  # dm/dt = -B (m - b), dS/dt = -B S - S B^T + 2 I
        m, S = y[:2], y[2:].reshape(2, 2)
        return np.concatenate([-B @ (m - b), (-B @ S - S @ B.T + 2 * np.eye(2)).ravel()])

    y0 = np.concatenate([M0.numpy(), S0.numpy().ravel()])
    sol = solve_ivp(rhs, (0, 2.0), y0, t_eval=[0.3, 2.0], rtol=1e-11, atol=1e-12)
    for k, t in enumerate((0.3, 2.0)):
        g = ou.marginal(M0, S0, t)
        assert np.allclose(g.mean.numpy(), sol.y[:2, k], atol=1e-8)
        assert np.allclose(g.cov.numpy(), sol.y[2:, k].reshape(2, 2), atol=1e-8)


def test_ou_marginal_matches_euler_maruyama_monte_carlo():
    ou = ou_to_target(B_CENTER, SIGMA, ANTI)  # non-symmetric drift matrix
    n, gen = 10_000, torch.Generator().manual_seed(0)
    x0 = M0 + torch.randn(n, 2, generator=gen, dtype=F64) @ torch.linalg.cholesky(S0).T
    res = langevin_particles(x0, ou.drift, step=5e-3, n_steps=200, generator=gen, save_every=100)
    assert res.path.shape == (3, n, 2)
    assert torch.allclose(res.times, torch.tensor([0, 0.5, 1.0], dtype=F64))
    g = ou.marginal(M0, S0, 1.0)
    x = res.particles
    se_mean = torch.sqrt(torch.diagonal(g.cov) / n)
    assert ((x.mean(0) - g.mean).abs() < 4 * se_mean + 0.01).all()
    # covariance: sampling error ~ |S| sqrt(2 / n) ~ 0.02, Euler-Maruyama bias O(h |B|) ~ 0.01
    assert (torch.cov(x.T) - g.cov).abs().max() < 0.07


@pytest.mark.parametrize("anti", [None, ANTI])
def test_de_bruijn_identity_along_closed_form_ou(anti):
    """d/dt KL(rho_t || pi) = -I(rho_t || pi), also for the non-reversible drift."""
    ou = ou_to_target(B_CENTER, SIGMA, anti)
    eps = 1e-5
    for t in (0.05, 0.5, 2.0):
        kl = [
            gaussian_kl(*_mc(ou.marginal(M0, S0, s)), B_CENTER, SIGMA) for s in (t - eps, t + eps)
        ]
        g = ou.marginal(M0, S0, t)
        fisher = gaussian_fisher_information(g.mean, g.cov, B_CENTER, SIGMA)
        assert (kl[1] - kl[0]) / (2 * eps) == pytest.approx(-fisher, rel=1e-6, abs=1e-9)


def _mc(g):
    return g.mean, g.cov


# ----------------------------------------------------------------------------- particles


def test_ula_has_its_known_step_bias_and_mala_removes_it():
    """For V = (x - b)^2 / (2 s^2) ULA's invariant law is N(b, s^2 / (1 - h / (2 s^2)))."""
    s2, b, h, n = 1.0, 0.7, 0.2, 20_000
    pot = gaussian_potential(torch.tensor([b]), torch.tensor([[s2]]))
    x0 = torch.zeros(n, 1, dtype=F64)
    x_ula = ula(x0, pot, h, 100, torch.Generator().manual_seed(1)).particles
    res = mala(x0, pot, h, 100, torch.Generator().manual_seed(2))
    se = s2 * math.sqrt(2 / n)
    assert float(x_ula.var()) == pytest.approx(s2 / (1 - h / (2 * s2)), abs=4 * se)
    assert float(res.particles.var()) == pytest.approx(s2, abs=4 * se)
    assert float(res.particles.mean()) == pytest.approx(b, abs=4 * math.sqrt(s2 / n))
    assert 0.8 < res.acceptance_rate < 1.0


def test_mala_reaches_gaussian_and_mixture_statistics():
    pot = gaussian_potential(B_CENTER, SIGMA)
    n = 4000
    res = mala(torch.zeros(n, 2, dtype=F64), pot, 0.3, 100, torch.Generator().manual_seed(3))
    assert ((res.particles.mean(0) - B_CENTER).abs() < 4 * torch.sqrt(torch.diag(SIGMA) / n)).all()
    # per-entry standard error of the sample covariance <= sqrt(2 * 1.5^2 / n) = 0.034
    assert (torch.cov(res.particles.T) - SIGMA).abs().max() < 4 * 0.034
    gm = GaussianMixture.create(
        [0.4, 0.6], [[-1.0, 0.0], [1.0, 0.5]], torch.stack([0.5 * torch.eye(2)] * 2)
    )
    n = 2000
    res = mala(
        torch.zeros(n, 2, dtype=F64),
        mixture_potential(gm),
        0.3,
        100,
        torch.Generator().manual_seed(4),
    )
    assert ((res.particles.mean(0) - gm.mean).abs() < 0.08).all()
    assert (torch.cov(res.particles.T) - gm.cov).abs().max() < 0.1


def test_particle_runs_are_reproducible_from_the_generator():
    pot = gaussian_potential(B_CENTER, SIGMA)
    x0 = torch.zeros(10, 2, dtype=F64)
    a = mala(x0, pot, 0.2, 5, torch.Generator().manual_seed(7)).particles
    b = mala(x0, pot, 0.2, 5, torch.Generator().manual_seed(7)).particles
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="step"):
        ula(x0, pot, -0.1, 5)
    with pytest.raises(ValueError, match="non-positive real part"):
        OrnsteinUhlenbeck.create(-torch.eye(2), torch.zeros(2))


# ----------------------------------------------------------------------------- grid


@pytest.fixture(scope="module")
def grid_runs():
    """Backward Euler on 128 x 128 cells of [-7, 7]^2, dt = 1/200, to t = 1, from N(M0, S0)."""
    grid = regular_grid(-7.0, 7.0, (128, 128))
    runs = {}
    for name, (b, S) in {
        "isotropic": (torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)),
        "anisotropic": (B_CENTER, SIGMA),
    }.items():
        pot = gaussian_potential(b, S)
        res = solve_fokker_planck_grid(_pdf(grid, M0, S0), grid, pot, 1.0, 200)
        runs[name] = (grid, pot, ou_to_target(b, S), res)
    return runs


@pytest.mark.parametrize("name", ["isotropic", "anisotropic"])
def test_grid_solution_l1_error_against_exact_ou_density(grid_runs, name):
    grid, _, ou, res = grid_runs[name]
    g = ou.marginal(M0, S0, 1.0)
    err = np.abs(res.densities[-1] - _pdf(grid, g.mean, g.cov)).sum() * grid.cell_volume
    assert err < 5e-3
    assert np.abs(res.mass - 1.0).max() < 1e-12
    assert res.min_density.min() > 0


@pytest.mark.parametrize("name", ["isotropic", "anisotropic"])
def test_grid_de_bruijn_and_kl_against_closed_form(grid_runs, name):
    """(KL^{n+1} - KL^n) / dt = -I_h up to O(dt); KL_h(t) matches the Gaussian closed form."""
    grid, pot, ou, res = grid_runs[name]
    dt = res.step_times[1]
    rate = np.diff(res.kl) / dt
    mid = -(res.fisher[1:] + res.fisher[:-1]) / 2
    assert np.all(np.diff(res.kl) < 0)
    assert np.abs(rate - mid).max() < 0.02 * np.abs(mid).max()
    g = ou.marginal(M0, S0, 1.0)
    kl_exact = gaussian_kl(g.mean, g.cov, ou.center, ou.stationary_cov)
    # backward Euler's O(dt) error dominates here (measured 2.0e-3 for KL, 3e-3 for I at dt=5e-3)
    assert res.kl[-1] == pytest.approx(kl_exact, abs=4e-3)
    fisher_exact = gaussian_fisher_information(g.mean, g.cov, ou.center, ou.stationary_cov)
    assert res.fisher[-1] == pytest.approx(fisher_exact, abs=6e-3)


def _scalar_problem(n):
    grid = regular_grid(-7.0, 7.0, n)
    pot = gaussian_potential(torch.tensor([0.5]), torch.tensor([[0.8]]))
    return grid, pot, _pdf(grid, [-1.0], [[0.2]])


def test_space_convergence_is_second_order():
    ou = ou_to_target(torch.tensor([0.5]), torch.tensor([[0.8]]))
    g = ou.marginal(torch.tensor([-1.0]), torch.tensor([[0.2]]), 1.0)
    errs = []
    for n in (50, 100, 200):
        grid, pot, rho0 = _scalar_problem(n)
        res = solve_fokker_planck_grid(rho0, grid, pot, 1.0, 1000, scheme="crank_nicolson")
        errs.append(np.abs(res.densities[-1] - _pdf(grid, g.mean, g.cov)).sum() * grid.spacing[0])
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 1.85) & (orders < 2.15)), orders


@pytest.mark.parametrize("scheme,order", [("backward_euler", 1.0), ("crank_nicolson", 2.0)])
def test_time_convergence_against_exact_semi_discrete_flow(scheme, order):
    grid, pot, rho0 = _scalar_problem(200)
    V = grid.evaluate(pot.V)
    rho0 = rho0 / (rho0.sum() * grid.spacing[0])
    exact = expm_multiply(fokker_planck_operator(grid, V), rho0)  # exp(L) rho0 at t = 1
    errs = []
    for n in (10, 20, 40, 80):
        res = solve_fokker_planck_grid(rho0, grid, V, 1.0, n, scheme=scheme)
        errs.append(np.abs(res.densities[-1] - exact).sum() * grid.spacing[0])
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - order) < 0.1), orders


def test_discrete_target_is_a_fixed_point_for_a_nonquadratic_potential():
    gm = GaussianMixture.create(
        [0.3, 0.7], [[-1.5, 0.0], [1.0, 1.0]], torch.stack([0.4 * torch.eye(2), torch.eye(2)])
    )
    grid = regular_grid([-5.0, -4.0], [5.0, 5.0], (60, 50))
    pot = mixture_potential(gm)
    pi_h = discrete_stationary_density(grid, pot)
    L = fokker_planck_operator(grid, pot)
    assert np.abs(L @ pi_h.ravel()).max() < 1e-12 * np.abs(L).max() * pi_h.max()
    res = solve_fokker_planck_grid(pi_h, grid, pot, 1.0, 10)
    assert np.abs(res.densities[-1] - pi_h).max() < 1e-12 * pi_h.max()
    # from a far-off indicator start with a huge step: positive, mass-conserving, KL decreasing
    box = np.zeros(grid.shape)
    box[50:55, 5:10] = 1.0
    res = solve_fokker_planck_grid(box, grid, pot, 40.0, 8)
    assert res.min_density[1:].min() > 0 and np.abs(res.mass - 1).max() < 1e-12
    assert np.all(np.diff(res.kl) < 0) and res.kl[-1] < 1e-6


def test_semi_discrete_de_bruijn_identity_is_exact():
    """d/dt KL_h(rho) along d rho / dt = L rho equals -I_h(rho) to round-off:
    d/dt KL_h = sum_i (L rho)_i (log rho_i + V_i + 1) |cell| (chain rule, no scheme error)."""
    gm = GaussianMixture.create(
        [0.5, 0.5], [[-1.0, 0.0], [1.5, 0.5]], torch.stack([0.5 * torch.eye(2), torch.eye(2)])
    )
    grid = regular_grid([-5.0, -4.0], [5.0, 4.0], (40, 30))
    V = grid.evaluate(mixture_potential(gm).V)
    rho = _pdf(grid, [0.3, 1.0], [[0.6, 0.2], [0.2, 0.4]])
    rho = rho / (rho.sum() * grid.cell_volume)
    drho = (fokker_planck_operator(grid, V) @ rho.ravel()).reshape(grid.shape)
    dkl = float((drho * (np.log(rho) + V + 1.0)).sum() * grid.cell_volume)
    fisher = grid_fisher_information(rho, V, grid.spacing)
    assert fisher > 0.1
    assert dkl == pytest.approx(-fisher, rel=1e-10)
