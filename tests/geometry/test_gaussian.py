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


F64 = torch.float64
_U, _V = torch.tensor([1.0, 0.5, 0.0], dtype=F64), torch.tensor([0.2, -1.0, 0.7], dtype=F64)
SINGULAR_PAIRS = {
    # two rank-1 covariances with different ranges (no map from S0's range reaches S1)
    "rank1-rank1": (torch.outer(_U, _U), torch.outer(_V, _V)),
    # orthogonal ranges: every coupling is optimal
    "orthogonal": (
        torch.diag(torch.tensor([1.0, 0.0, 0.0], dtype=F64)),
        torch.diag(torch.tensor([0.0, 2.0, 0.0], dtype=F64)),
    ),
    # rank 2 to rank 1
    "rank2-rank1": (torch.outer(_U, _U) + torch.outer(_V, _V) / 4, torch.outer(_U + _V, _U + _V)),
}


@pytest.mark.parametrize("name", sorted(SINGULAR_PAIRS))
def test_geodesic_between_singular_covariances_reaches_both_ends(name):
    """N_0 = N(m0, S0) and N_1 = N(m1, S1) exactly, though neither covariance is invertible."""
    S0, S1 = SINGULAR_PAIRS[name]
    m0, m1 = torch.zeros(3, dtype=F64), torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    g0, g1 = gaussian_geodesic(m0, S0, m1, S1, 0.0), gaussian_geodesic(m0, S0, m1, S1, 1.0)
    torch.testing.assert_close(g0.cov, S0, atol=1e-12, rtol=0)
    torch.testing.assert_close(g1.cov, S1, atol=1e-12, rtol=0)
    torch.testing.assert_close(g0.mean, m0, atol=0, rtol=0)
    torch.testing.assert_close(g1.mean, m1, atol=0, rtol=0)


@pytest.mark.parametrize("name", sorted(SINGULAR_PAIRS))
def test_geodesic_between_singular_covariances_has_constant_speed(name):
    """W2(N_s, N_t) = |t - s| W2(N_0, N_1) along the curve (closed-form W2 of gaussian_w2)."""
    S0, S1 = SINGULAR_PAIRS[name]
    m0, m1 = torch.zeros(3, dtype=F64), torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    total = float(gaussian_w2(m0, S0, m1, S1))
    times = [0.0, 0.1, 0.3, 0.5, 0.8, 1.0]
    pts = [gaussian_geodesic(m0, S0, m1, S1, t) for t in times]
    for p in pts:  # every N_t is a Gaussian: PSD covariance
        assert float(torch.linalg.eigvalsh(p.cov).min()) > -1e-12
    for s, ps in zip(times, pts):
        for t, pt in zip(times, pts):
            dist = float(gaussian_w2(ps.mean, ps.cov, pt.mean, pt.cov))
            assert dist == pytest.approx(abs(t - s) * total, abs=1e-6)


@pytest.mark.parametrize("singular_end", [False, True])
def test_geodesic_agrees_with_the_map_formula_for_nonsingular_start(singular_end):
    """S0 nonsingular: S_t = ((1-t) I + t A) S0 ((1-t) I + t A), A the Monge matrix."""
    d = 4
    S0 = torch.tensor(make_spd_matrix(d, random_state=11))
    S1 = torch.tensor(make_spd_matrix(d, random_state=12))
    if singular_end:
        w, U = torch.linalg.eigh(S1)
        S1 = (U[:, 2:] * w[2:]) @ U[:, 2:].T  # rank 2
    m0, m1 = torch.zeros(d, dtype=F64), torch.ones(d, dtype=F64)
    A = gaussian_map(m0, S0, m1, S1).matrix
    eye = torch.eye(d, dtype=F64)
    # a singular S1 holds round-off eigenvalues ~1e-16, whose square roots (~1e-8) enter both
    # formulas: the square root of a singular matrix is only 1/2-Holder continuous
    tol = 1e-7 if singular_end else 1e-10
    for t in (0.0, 0.2, 0.5, 0.9, 1.0):
        M = (1 - t) * eye + t * A
        torch.testing.assert_close(
            gaussian_geodesic(m0, S0, m1, S1, t).cov, M @ S0 @ M, atol=tol, rtol=tol
        )


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
