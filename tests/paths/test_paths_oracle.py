"""Oracle fields: score = autograd of the noised density, velocity solves the continuity
equation, Gaussian closed forms, and the McCann interpolant's field."""

import pytest
import torch
from scipy.stats import multivariate_normal

from wasserflow.geometry import GaussianMixture, gaussian_geodesic
from wasserflow.paths import (
    AffinePath,
    GaussianGeodesicOracle,
    LinearSchedule,
    MixtureOracle,
    VESchedule,
    VPSchedule,
    gaussian_oracle,
)

MIX = GaussianMixture.create(
    [0.3, 0.7],
    [[-2.0, 0.0], [1.5, 1.0]],
    [[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]]],
)
PATHS = [AffinePath(LinearSchedule()), AffinePath(VPSchedule()), AffinePath(VESchedule(0.05, 5))]


def _x(n=7, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("path", PATHS, ids=["linear", "vp", "ve"])
def test_log_prob_is_noised_mixture_and_score_is_its_gradient(path):
    oracle = MixtureOracle(MIX, path)
    x = _x() * 2
    for t in (0.1, 0.6, 0.95):
        c = path.coefficients(torch.tensor(t, dtype=torch.float64))
        a, s = float(c.alpha), float(c.sigma)
        dens = sum(
            float(w)
            * multivariate_normal(
                a * m.numpy(), a**2 * S.numpy() + s**2 * torch.eye(2).numpy()
            ).pdf(x.numpy())
            for w, m, S in zip(MIX.weights, MIX.means, MIX.covs, strict=True)
        )
        assert torch.allclose(oracle.log_prob(x, t), torch.log(torch.as_tensor(dens)), atol=1e-10)
        y = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(oracle.log_prob(y, t).sum(), y)
        assert torch.allclose(oracle.score(x, t), g, atol=1e-10)
        assert torch.allclose(oracle.epsilon(x, t), -s * g, atol=1e-10)


@pytest.mark.parametrize("path", PATHS, ids=["linear", "vp", "ve"])
def test_velocity_solves_continuity_equation(path):
    """d_t log p_t + div v_t + v_t . grad log p_t = 0, with d_t by central differences."""
    oracle = MixtureOracle(MIX, path)
    x = _x(5, 1) * 1.5
    for t in (0.2, 0.5, 0.8):
        h = 1e-5
        dlogp = (oracle.log_prob(x, t + h) - oracle.log_prob(x, t - h)) / (2 * h)
        y = x.clone().requires_grad_(True)
        v = oracle.velocity(y, t)
        div = sum(
            torch.autograd.grad(v[:, i].sum(), y, retain_graph=True)[0][:, i] for i in range(2)
        )
        residual = (dlogp + div + (v * oracle.score(x, t)).sum(1)).detach()
        assert float(residual.abs().max()) < 1e-5 * (1 + float(dlogp.abs().max()))


def test_gaussian_case_closed_form():
    # 1-D N(0, s^2) on the linear path: p_t = N(0, (1-t)^2 + t^2 s^2),
    # v_t(x) = x (t s^2 - (1 - t)) / ((1 - t)^2 + t^2 s^2) (docs/design.md section 3)
    s2 = 4.0
    oracle = gaussian_oracle(torch.zeros(1), torch.tensor([[s2]]), AffinePath(LinearSchedule()))
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    for t in (0.0, 0.3, 0.5, 1.0):
        var = (1 - t) ** 2 + t**2 * s2
        assert torch.allclose(oracle.velocity(x, t), x * (t * s2 - (1 - t)) / var, atol=1e-12)
        assert torch.allclose(oracle.score(x, t), -x / var, atol=1e-12)
    # per-sample times are honoured
    tv = torch.tensor([0.1, 0.9, 0.1, 0.5, 0.9, 0.2, 0.3], dtype=torch.float64)
    var = (1 - tv) ** 2 + tv**2 * s2
    assert torch.allclose(oracle.velocity(x, tv), x * ((tv * s2 - (1 - tv)) / var)[:, None])


def test_geodesic_oracle_field_moves_along_mccann_interpolant():
    m = torch.tensor([1.0, -2.0], dtype=torch.float64)
    S = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    geo = GaussianGeodesicOracle(m, S)
    x0 = _x(6, 2)
    for t in (0.0, 0.25, 0.7):
        h = 1e-6
        dxdt = (geo.transport(x0, t + h) - geo.transport(x0, t - h if t > 0 else t)) / (
            2 * h if t > 0 else h
        )
        assert torch.allclose(geo.velocity(geo.transport(x0, t), t), dxdt, atol=1e-6)
        # the pushforward of N(0, I) is the Bures geodesic point
        M = geo.transport(torch.eye(2, dtype=torch.float64), t) - t * m
        ref = gaussian_geodesic(torch.zeros(2), torch.eye(2), m, S, t)
        assert torch.allclose(M.T @ M, ref.cov, atol=1e-10)
    x1 = geo.transport(x0, 1.0)
    assert torch.allclose(x1 - m, x0 @ geo.matrix.T, atol=1e-12)


def test_oracle_bad_inputs():
    with pytest.raises(ValueError, match="bridge"):
        MixtureOracle(MIX, AffinePath(LinearSchedule(), bridge_sigma=0.1))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        MixtureOracle(MIX, PATHS[0]).score(torch.zeros(3, 3), 0.5)
