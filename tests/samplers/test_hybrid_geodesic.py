"""The geodesic time grid (samplers/geodesic.py) against closed forms: the McCann interpolant is
traversed at constant speed, so its grid is uniform; on Gaussian paths the grid's times are the
equal-length points of the closed-form W2 speed of the marginals N(alpha m, r_t^2 I),
|m alpha'|^2 + d r_t'^2 (Bures between isotropic Gaussians)."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import brentq

from wasserflow.paths import AffinePath, LinearSchedule, VPSchedule, gaussian_oracle
from wasserflow.paths.oracle import GaussianGeodesicOracle
from wasserflow.samplers import (
    Field,
    SamplingContext,
    geodesic_grid,
    get_sampler,
    solver_grid,
    uniform_grid,
)

D, S = 2, 2.0
M = torch.tensor([1.5, -1.0], dtype=torch.float64)


def _noise(n=400, seed=0):
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _equal_length_times(schedule, k, t0, t1):
    """t_j with int_{t0}^{t_j} speed = j / k of the whole, speed^2 = alpha'^2 |m|^2 + d r'^2,
    r^2 = alpha^2 s^2 + sigma^2 (scipy quadrature and root finding on the closed form)."""

    def speed(t):
        c = schedule(torch.tensor([t], dtype=torch.float64))
        a, g, da, dg = (float(v[0]) for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma))
        r = math.sqrt(a * a * S * S + g * g)
        dr = (a * da * S * S + g * dg) / r
        return math.sqrt(da * da * float(M.pow(2).sum()) + D * dr * dr)

    total = quad(speed, t0, t1, limit=200)[0]
    out = [t0]
    for j in range(1, k):
        out.append(brentq(lambda t, j=j: quad(speed, t0, t, limit=200)[0] - j * total / k, t0, t1))
    return np.array(out + [t1])


def test_mccann_geodesic_gets_a_uniform_grid():
    oracle = GaussianGeodesicOracle(M, torch.tensor([[4.0, 0.5], [0.5, 0.25]], dtype=torch.float64))
    geo = geodesic_grid(oracle.velocity, _noise(), uniform_grid(5), inner="euler", pilot_steps=7)
    assert torch.allclose(geo.grid, uniform_grid(5), atol=1e-12)
    # the registered sampler on that grid is Euler on the uniform grid
    res = get_sampler("geodesic")(oracle.velocity, _noise(), uniform_grid(5), inner="euler")
    ref = get_sampler("euler")(oracle.velocity, _noise(), uniform_grid(5))
    assert torch.allclose(res.x, ref.x, atol=1e-10) and res.nfe == 5


def test_linear_path_grid_matches_the_closed_form_arc_length():
    path = AffinePath(LinearSchedule())
    field = Field.from_oracle(gaussian_oracle(M, S**2 * torch.eye(D), path))
    geo = geodesic_grid(field, _noise(2000), uniform_grid(4), inner="heun", pilot_steps=64)
    exact = _equal_length_times(path.coefficients, 4, 0.0, 1.0)
    assert np.abs(geo.grid.numpy() - exact).max() < 5e-3
    assert geo.pilot_nfe == 128 and geo.pilot_size == 2000
    # not the uniform grid: the closed form itself is far from it
    assert np.abs(exact - np.linspace(0, 1, 5)).max() > 0.03


def test_vp_path_grid_matches_the_closed_form_arc_length():
    path = AffinePath(VPSchedule())
    field = Field.from_oracle(gaussian_oracle(M, S**2 * torch.eye(D), path))
    grid = solver_grid(4, path.coefficients, stop=1 - 1e-3, end=1.0)
    geo = geodesic_grid(field, _noise(2000), grid, inner="dpm_solver", pilot_steps=64)
    exact = _equal_length_times(path.coefficients, 4, 0.0, 1.0)
    assert float(geo.grid[-1]) == 1.0
    assert np.abs(geo.grid.numpy()[:-1] - exact[:-1]).max() < 3e-3


def test_plan_follows_the_inner_solver_and_its_refusals():
    spec = get_sampler("geodesic")
    ctx = SamplingContext(path=AffinePath(VPSchedule()), t_end=1 - 1e-3, t_last_trained=1 - 1e-3)
    plan = spec.make_plan(4, ctx)
    assert torch.equal(plan.grid, get_sampler("dpm_solver").make_plan(4, ctx).grid)
    ot_flow = SamplingContext(path=AffinePath(LinearSchedule()), score_valid=False)
    with pytest.raises(ValueError, match="geodesic needs the score"):
        spec.make_plan(4, ot_flow)
    flow = SamplingContext(path=AffinePath(LinearSchedule()))
    assert torch.equal(spec.make_plan(4, flow, {"inner": "heun"}).grid, uniform_grid(2))
    with pytest.raises(ValueError, match="inner solver 'rk4'"):
        spec.make_plan(4, flow, {"inner": "rk4"})


def test_sampler_counts_the_batch_evaluations_only():
    path = AffinePath(VPSchedule())
    field = Field.from_oracle(gaussian_oracle(M, S**2 * torch.eye(D), path))
    ctx = SamplingContext(path=path, t_end=1 - 1e-3, t_last_trained=1 - 1e-3)
    plan = get_sampler("geodesic").make_plan(6, ctx)
    res = get_sampler("geodesic")(field, _noise(300), plan.grid, **plan.options, pilot_size=50)
    assert res.nfe == 6 and res.x.shape == (300, D)
