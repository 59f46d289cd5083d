"""Ridge maps: Jacobians against autograd, global invertibility, and the fitted JKO step against
the closed-form Gaussian JKO step (docs/design.md section 3)."""

import pytest
import torch

from wasserflow.geometry import (
    Gaussian,
    RidgeMap,
    fit_ridge_jko_step,
    gaussian_jko_step,
    standard_gaussian_potential,
)


def _random_map(d=3, m=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    B = torch.randn(d, d, generator=g, dtype=torch.float64)
    A = B @ B.T / d + 0.3 * torch.eye(d, dtype=torch.float64)
    return RidgeMap(
        A,
        torch.randn(d, generator=g, dtype=torch.float64),
        2 * torch.randn(m, d, generator=g, dtype=torch.float64),
        torch.randn(m, generator=g, dtype=torch.float64),
        3 * torch.rand(m, generator=g, dtype=torch.float64),
    )


def _energy(x):
    return 0.5 * (x * x).sum(-1)


def test_map_is_the_gradient_of_its_potential_and_jacobian_is_autograds():
    T = _random_map()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(T.potential(xr).sum(), xr)[0]
    torch.testing.assert_close(T(x), grad, rtol=1e-12, atol=1e-12)
    for i in range(5):
        J = torch.autograd.functional.jacobian(lambda v: T(v[None])[0], x[i])
        torch.testing.assert_close(T.apply(x[i : i + 1])[1][0], J, rtol=1e-12, atol=1e-12)
        assert torch.allclose(J, J.T)


def test_inverse_everywhere_including_far_from_any_data():
    T = _random_map(d=2, m=20, seed=3)
    y = 50 * torch.randn(500, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x, evals = T.inverse(y)
    torch.testing.assert_close(T(x), y, rtol=0, atol=1e-8)
    assert evals > 0
    x0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    torch.testing.assert_close(T.inverse(T(x0))[0], x0, rtol=0, atol=1e-9)
    # DT >= A > 0 at every point: the log-determinant exists far out and is >= log det A
    _, log_det = T.forward(y)
    assert bool((log_det >= torch.logdet(T.matrix) - 1e-9).all())


def test_affine_fit_equals_the_closed_form_gaussian_jko_step():
    # with units = 0 the JKO objective over affine maps depends on the particles only through
    # their mean and covariance, so the fit must equal the exact JKO step from N(mean, cov)
    # (to the optimiser tolerance; sampling noise would be ~1e-2)
    g = torch.Generator().manual_seed(0)
    L = torch.tensor([[1.5, 0.0], [0.8, 0.4]], dtype=torch.float64)
    x = torch.randn(3000, 2, generator=g, dtype=torch.float64) @ L.T + torch.tensor([2.0, -1.0])
    h = 0.3
    fit = fit_ridge_jko_step(x, _energy, h, units=0, tol=1e-12)
    assert fit.accepted and fit.objective < fit.objective_identity
    m = x.mean(0)
    S = torch.cov(x.T, correction=0)
    exact = gaussian_jko_step(Gaussian(m, S), standard_gaussian_potential(2), h)
    y = fit.map(x)
    torch.testing.assert_close(y.mean(0), exact.mean, rtol=0, atol=2e-6)
    torch.testing.assert_close(torch.cov(y.T, correction=0), exact.cov, rtol=0, atol=2e-6)


def test_ridge_fit_on_gaussian_particles_stays_near_the_closed_form():
    g = torch.Generator().manual_seed(1)
    x = 2 * torch.randn(2000, 2, generator=g, dtype=torch.float64) + 1
    h = 0.5
    fit = fit_ridge_jko_step(x, _energy, h, units=16, generator=g)
    exact = gaussian_jko_step(
        Gaussian(x.mean(0), torch.cov(x.T, correction=0)), standard_gaussian_potential(2), h
    )
    y = fit.map(x)
    # the ridges may only fit sampling noise: first two moments within a few per cent
    torch.testing.assert_close(y.mean(0), exact.mean, rtol=0, atol=0.03)
    torch.testing.assert_close(torch.cov(y.T, correction=0), exact.cov, rtol=0, atol=0.05)
    assert fit.objective <= fit.objective_identity


def test_map_round_trips_through_tensors():
    T = _random_map()
    back = RidgeMap.from_tensors(T.tensors("b0"), "b0")
    x = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(back(x), T(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="no ridge map"):
        RidgeMap.from_tensors(T.tensors("b0"), "b1")


@pytest.mark.parametrize("h", [0.0, -1.0, float("nan")])
def test_bad_step_is_refused(h):
    with pytest.raises(ValueError, match="positive"):
        fit_ridge_jko_step(torch.randn(10, 2), _energy, h)


def test_bad_particles_are_refused():
    with pytest.raises(ValueError, match="shape"):
        fit_ridge_jko_step(torch.randn(10), _energy, 0.1)
