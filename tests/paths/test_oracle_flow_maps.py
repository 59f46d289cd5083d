"""The closed-form flow maps of paths/oracle.py against what no one here wrote them from: the
ODE of the mixture oracle's marginal field (Tweedie's formula on the noised law) solved by RK4,
the composition law X(X(x, t, r), r, s) = X(x, t, s), the Brenier map of the Bures closed form
(independently: scipy's matrix square root) and McCann's interpolant."""

import numpy as np
import pytest
import scipy.linalg
import torch

from wasserflow.paths import (
    AffinePath,
    GaussianFlowMap,
    GaussianGeodesicOracle,
    gaussian_oracle,
    get_schedule,
)
from wasserflow.samplers import Field, get_sampler, uniform_grid

M = torch.tensor([1.0, -0.5], dtype=torch.float64)
S = torch.tensor([[1.5, 0.6], [0.6, 0.5]], dtype=torch.float64)


def _x(n=64, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("schedule", ["linear", "vp", "cosine"])
def test_the_flow_map_is_the_oracle_ode_solved(schedule):
    path = AffinePath(get_schedule(schedule))
    fm, oracle = GaussianFlowMap(M, S, path), gaussian_oracle(M, S, path)
    x = _x()
    t = 0.9 * torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(fm.velocity(x, t), oracle.velocity(x, t), rtol=1e-12, atol=1e-12)
    a, b = 0.1, 0.85
    solved = get_sampler("rk4")(Field.from_oracle(oracle), x, uniform_grid(200, a, b)).x
    torch.testing.assert_close(fm.flow_map(x, a, b), solved, rtol=0, atol=1e-9)


def test_composition_and_the_average_velocity():
    fm = GaussianFlowMap(M, S, AffinePath(get_schedule("linear")))
    x = _x()
    torch.testing.assert_close(
        fm.flow_map(fm.flow_map(x, 0.2, 0.5), 0.5, 0.9), fm.flow_map(x, 0.2, 0.9)
    )
    u = fm.average_velocity(x, 0.2, 0.9)
    torch.testing.assert_close(x + 0.7 * u, fm.flow_map(x, 0.2, 0.9))
    # s = t: the instantaneous velocity, the limit of the average over a shrinking interval
    torch.testing.assert_close(fm.average_velocity(x, 0.3, 0.3), fm.velocity(x, 0.3))
    torch.testing.assert_close(
        fm.average_velocity(x, 0.3, 0.3 + 1e-7), fm.velocity(x, 0.3), rtol=0, atol=1e-6
    )


def test_the_linear_path_map_from_noise_is_the_brenier_map():
    fm = GaussianFlowMap(M, S, AffinePath(get_schedule("linear")))
    x = _x()
    root = torch.from_numpy(np.real(scipy.linalg.sqrtm(S.numpy())))
    torch.testing.assert_close(fm.flow_map(x, 0.0, 1.0), M + x @ root.T)
    geo = GaussianGeodesicOracle(M, S)
    torch.testing.assert_close(geo.flow_map(x, 0.0, 1.0), M + x @ root.T)
    # but in between the paths differ: the independent path's marginals shrink (section 3)
    assert (fm.flow_map(x, 0.0, 0.5) - geo.flow_map(x, 0.0, 0.5)).abs().max() > 0.05


def test_the_geodesic_flow_map_is_mccann_and_straight():
    geo = GaussianGeodesicOracle(M, S)
    x0 = _x()
    xt = geo.transport(x0, 0.3)
    torch.testing.assert_close(geo.flow_map(xt, 0.3, 0.8), geo.transport(x0, 0.8))
    solved = get_sampler("rk4")(geo.velocity, xt, uniform_grid(100, 0.3, 0.8)).x
    torch.testing.assert_close(geo.flow_map(xt, 0.3, 0.8), solved, rtol=0, atol=1e-10)
    # the average velocity over any interval is the chord T(x0) - x0
    for s in (0.4, 0.8, 1.0):
        u = (geo.flow_map(xt, 0.3, s) - xt) / (s - 0.3)
        torch.testing.assert_close(u, geo.transport(x0, 1.0) - x0)
