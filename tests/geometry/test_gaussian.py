"""Bures-Wasserstein closed forms against independent computations (scipy.linalg.sqrtm, POT,
Monte-Carlo pushforwards)."""

import numpy as np
import ot
import pytest
import scipy.linalg as sla
import torch
from sklearn.datasets import make_spd_matrix

from wasserflow.geometry import (
    exact_ot,
    gaussian_geodesic,
    gaussian_map,
    gaussian_w2,
    gaussian_w2_empirical,
    gaussian_w2_squared,
)


def scipy_bures(m0, S0, m1, S1):
    r = sla.sqrtm(S0)
    cross = np.real(sla.sqrtm(r @ S1 @ r))
    return float(np.sum((m0 - m1) ** 2) + np.trace(S0 + S1 - 2 * cross))


@pytest.mark.parametrize("d", [1, 2, 5, 12])
def test_bures_against_scipy_and_pot(d):
    rng = np.random.default_rng(d)
    S0, S1 = make_spd_matrix(d, random_state=1), make_spd_matrix(d, random_state=2)
    m0, m1 = rng.normal(size=d), rng.normal(size=d)
    ours = float(
        gaussian_w2_squared(torch.tensor(m0), torch.tensor(S0), torch.tensor(m1), torch.tensor(S1))
    )
    assert ours == pytest.approx(scipy_bures(m0, S0, m1, S1), rel=1e-9)
    pot = ot.gaussian.bures_wasserstein_distance(m0, m1, S0, S1) ** 2
    assert ours == pytest.approx(float(pot), rel=1e-7)


def test_one_dimensional_shift():
    """N(0, 1) -> N(10, 1) is 10; N(0, 1) -> N(0, 4) is 1 (|s0 - s1|)."""
    one = torch.ones(1, 1)
    assert float(gaussian_w2(torch.zeros(1), one, torch.full((1,), 10.0), one)) == pytest.approx(
        10.0
    )
    assert float(gaussian_w2(torch.zeros(1), one, torch.zeros(1), 4 * one)) == pytest.approx(1.0)


def test_map_pushes_forward_and_is_optimal():
    d = 3
    S0, S1 = (
        torch.tensor(make_spd_matrix(d, random_state=3)),
        torch.tensor(make_spd_matrix(d, random_state=4)),
    )
    m0, m1 = torch.zeros(d, dtype=torch.float64), torch.arange(d, dtype=torch.float64)
    T = gaussian_map(m0, S0, m1, S1)
    # pushforward: A S0 A = S1, and A symmetric PSD (gradient of a convex function)
    assert torch.allclose(T.matrix @ S0 @ T.matrix, S1, atol=1e-10)
    assert torch.allclose(T.matrix, T.matrix.T)
    assert float(torch.linalg.eigvalsh(T.matrix).min()) > 0
    # its transport cost equals W2^2: E|T(X) - X|^2 with X ~ N(m0, S0)
    A = T.matrix
    cost = float(
        ((m1 - m0) ** 2).sum() + torch.trace((A - torch.eye(d)) @ S0 @ (A - torch.eye(d)).T)
    )
    assert cost == pytest.approx(float(gaussian_w2_squared(m0, S0, m1, S1)), rel=1e-10)


def test_geodesic_midpoint_and_constant_speed():
    d = 4
    S0, S1 = (
        torch.tensor(make_spd_matrix(d, random_state=5)),
        torch.tensor(make_spd_matrix(d, random_state=6)),
    )
    m0, m1 = torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
    total = float(gaussian_w2(m0, S0, m1, S1))
    mid = gaussian_geodesic(m0, S0, m1, S1, 0.5)
    # constant speed: W2(mu_0, mu_1/2) = W2(mu_1/2, mu_1) = W2(mu_0, mu_1) / 2
    assert float(gaussian_w2(m0, S0, mid.mean, mid.cov)) == pytest.approx(total / 2, rel=1e-8)
    assert float(gaussian_w2(mid.mean, mid.cov, m1, S1)) == pytest.approx(total / 2, rel=1e-8)
    # commuting case by hand: S0 = I, S1 = 9 I -> midpoint covariance 4 I
    eye = torch.eye(2, dtype=torch.float64)
    assert torch.allclose(
        gaussian_geodesic(torch.zeros(2), eye, torch.zeros(2), 9 * eye, 0.5).cov, 4 * eye
    )
    # endpoints
    g0, g1 = gaussian_geodesic(m0, S0, m1, S1, 0.0), gaussian_geodesic(m0, S0, m1, S1, 1.0)
    assert torch.allclose(g0.cov, S0, atol=1e-10) and torch.allclose(g1.cov, S1, atol=1e-10)


def test_singular_covariances():
    """A Dirac (S = 0) to N(0, S1): W2^2 = tr(S1); a rank-1 covariance is handled."""
    d = 3
    S1 = torch.tensor(make_spd_matrix(d, random_state=7))
    zero = torch.zeros(d, d, dtype=torch.float64)
    m = torch.zeros(d, dtype=torch.float64)
    assert float(gaussian_w2_squared(m, zero, m, S1)) == pytest.approx(
        float(torch.trace(S1)), rel=1e-10
    )
    mid = gaussian_geodesic(m, zero, m, S1, 0.5)  # from the Dirac: S_t = t^2 S1
    assert torch.allclose(mid.cov, 0.25 * S1, atol=1e-10)
    u = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    rank1 = torch.outer(u, u)
    val = float(gaussian_w2_squared(m, rank1, m, S1))
    assert val == pytest.approx(
        scipy_bures(m.numpy(), rank1.numpy(), m.numpy(), S1.numpy()), rel=1e-6
    )
    near = rank1 + 1e-12 * torch.eye(d, dtype=torch.float64)
    assert float(gaussian_w2_squared(m, near, m, S1)) == pytest.approx(val, rel=1e-5)


def test_empirical_gaussian_is_exact_for_affine_related_clouds():
    """For y = T(x) with T an optimal affine map, the cloud W2 equals the Bures W2 of moments."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=g, dtype=torch.float64)
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)  # symmetric PD: optimal
    y = x @ A.T + torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert gaussian_w2_empirical(x, y).cost == pytest.approx(exact_ot(x, y).cost, rel=1e-9)


@pytest.mark.parametrize(
    "S0, match",
    [
        (torch.tensor([[1.0, 2.0], [0.0, 1.0]]), "not symmetric"),
        (torch.tensor([[1.0, 0.0], [0.0, -1.0]]), "negative eigenvalue"),
        (torch.ones(2, 3), "square"),
    ],
)
def test_bad_covariances(S0, match):
    with pytest.raises(ValueError, match=match):
        gaussian_w2(torch.zeros(2), S0, torch.zeros(2), torch.eye(2))
