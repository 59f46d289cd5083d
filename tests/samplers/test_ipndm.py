"""iPNDM: against diffusers' IPNDMScheduler, the Adams-Bashforth exactness that defines it, and
its order with the exact oracle field.

diffusers' IPNDMScheduler is iPNDM for v-prediction on its own VP schedule, sigma = sin(pi u /
2)^2, alpha = sqrt(1 - sigma^2) at u = 1 - i / N (u = 1 noise); in the clock t = 1 - u that is
:class:`_Sin2`. Its first step, from alpha = 0, divides by max(alpha, 1e-8): both runs start
at its second timestep (``set_begin_index(1)``), where alpha > 0. Its float32 tables are
replaced by float64 ones (checked against its own to float32 precision).
"""

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from diffusers import IPNDMScheduler

from wasserflow.geometry import GaussianMixture
from wasserflow.paths import AffinePath, LinearSchedule, MixtureOracle, VPSchedule
from wasserflow.paths.schedules import Schedule, ScheduleOutput
from wasserflow.samplers import (
    SAMPLERS,
    Field,
    SamplingContext,
    get_sampler,
    ipndm,
    karras_grid,
    uniform_grid,
)
from wasserflow.samplers.ipndm import ADAMS_BASHFORTH, adams_bashforth_weights

MIX = GaussianMixture.create(
    [0.3, 0.7],
    [[-2.0, 0.0], [1.5, 1.0]],
    [[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]]],
)


@dataclass(frozen=True)
class _Sin2(Schedule):
    """diffusers' IPNDMScheduler schedule on the clock: sigma = cos(pi t / 2)^2."""

    def _coefficients(self, t):
        sigma = torch.cos(math.pi * t / 2) ** 2
        d_sigma = -math.pi / 2 * torch.sin(math.pi * t)
        alpha = torch.sqrt(1 - sigma**2)
        return ScheduleOutput(alpha, sigma, -sigma * d_sigma / alpha, d_sigma)


def v_model(x, t):
    return (
        0.3 * x * torch.cos(3 * t)[:, None]
        + 0.2 * torch.sin(5 * t)[:, None]
        + 0.2 * torch.tanh(x.flip(1))
    )


def _x(n, seed):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_equals_diffusers_ipndm():
    field = Field(v_model, "v_prediction", AffinePath(_Sin2()))
    for n in (2, 3, 4, 5, 8, 20):
        d = IPNDMScheduler()
        d.set_timesteps(n)
        u = torch.cat(
            [
                torch.linspace(1, 0, n + 1, dtype=torch.float64)[:-1],
                torch.zeros(1, dtype=torch.float64),
            ]
        )
        betas = torch.sin(u * math.pi / 2) ** 2
        assert torch.allclose(d.betas.double(), betas, rtol=0, atol=1e-6)
        d.betas, d.alphas = betas, (1 - betas**2) ** 0.5
        d.set_begin_index(1)
        t = 1.0 - u
        x0 = _x(5, n)
        x = x0
        for i, k in enumerate(d.timesteps[1:], start=1):
            x = d.step(v_model(x, t[i].expand(5)), k, x).prev_sample
        out = ipndm(field, x0, t[1:])
        assert out.nfe == n - 1
        assert torch.allclose(out.x, x, rtol=0, atol=1e-12), n
        if n > 5:  # negative controls: a lower order, or variable-step weights, differ
            for opts in ({"order": 3}, {"variable_step": True}):
                assert not torch.allclose(ipndm(field, x0, t[1:], **opts).x, x, atol=1e-6)


def test_variable_step_weights_reduce_to_the_standard_coefficients():
    for k, coef in enumerate(ADAMS_BASHFORTH, start=1):
        levels = [5.0 + 0.5 * j for j in range(k)]  # newest first: steps of -0.5 in s
        assert np.allclose(adams_bashforth_weights(levels, 4.5), coef, rtol=0, atol=1e-13), k


def _increments(grid, degree, **options):
    """(y_{i+1} - y_i, exact int_{s_i}^{s_{i+1}} P ds) per step for eps_hat = P(s), a random
    polynomial of ``degree`` in the noise level s (independent of x: dy/ds = P(s))."""
    path = AffinePath(VPSchedule())
    p = np.polynomial.Polynomial(np.random.default_rng(degree).normal(size=degree + 1))

    def eps(x, t):
        c = path.coefficients(t)
        s = (c.sigma / c.alpha).numpy()
        return torch.from_numpy(p(s))[:, None].expand_as(x).clone()

    out = ipndm(Field(eps, "epsilon", path), _x(3, 0), grid, return_trajectory=True, **options)
    c = path.coefficients(grid)
    s = (c.sigma / c.alpha).numpy()
    y = (out.trajectory[:, 0, 0] / c.alpha).numpy()
    prim = p.integ()
    return np.diff(y), np.diff(prim(s))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_steps_are_exact_for_polynomials_below_their_order(degree):
    # step i has order k = min(i + 1, 4): exact for eps_hat of degree < k in s, so from step
    # `degree` on; the step before is not (the test can fail)
    path = AffinePath(VPSchedule())
    uniform = karras_grid(8, path.coefficients, sigma_min=0.5, sigma_max=4.0, rho=1.0)[:-1]
    karras = karras_grid(8, path.coefficients, sigma_min=0.05, sigma_max=20.0)[:-1]
    for grid, opts in ((uniform, {}), (karras, {"variable_step": True})):
        got, exact = _increments(grid, degree, **opts)
        assert np.allclose(got[degree:], exact[degree:], rtol=1e-10, atol=1e-12), (degree, opts)
        if degree > 0:
            assert abs(got[degree - 1] - exact[degree - 1]) > 1e-4 * abs(exact[degree - 1])
    if degree > 0:  # the fixed coefficients ignore the varying steps of the Karras grid
        got, exact = _increments(karras, degree)
        assert not np.allclose(got[degree:], exact[degree:], rtol=1e-6)


def _slope(schedule, counts, **options):
    path = AffinePath(schedule)
    f = Field.from_oracle(MixtureOracle(MIX, path))
    x0 = _x(8, 0)
    grids = [
        karras_grid(k, path.coefficients, sigma_min=0.02, sigma_max=20.0)[:-1] for k in counts
    ]  # the same interval [s_max, s_min] for every k
    ref = SAMPLERS["dopri5"](f, x0, grids[0][[0, -1]], atol=1e-10, rtol=1e-10).x
    errs = [float((ipndm(f, x0, g, **options).x - ref).norm(dim=1).mean()) for g in grids]
    return -np.polyfit(np.log(counts), np.log(errs), 1)[0], errs


@pytest.mark.parametrize("schedule,variable", [(VPSchedule(), True), (LinearSchedule(), False)])
def test_order_with_the_oracle_field(schedule, variable):
    slope, errs = _slope(schedule, [16, 32, 64])
    assert abs(slope - get_sampler("ipndm").order) < 0.3, (slope, errs)
    if not variable:
        return
    slope_v, errs_v = _slope(schedule, [16, 32, 64], variable_step=True)
    # variable steps: higher order (about 3.5), more accurate from ~32 steps on (not at 16)
    assert slope_v > 3.0 and errs_v[-1] < 0.5 * errs[-1], (slope_v, errs_v)


def test_plan_and_bad_inputs():
    spec = get_sampler("ipndm")
    assert spec.nfe_per_step == 1 and spec.needs_path and not spec.stochastic
    lin = AffinePath(LinearSchedule())
    plan = spec.make_plan(10, SamplingContext(path=lin))
    assert torch.equal(
        plan.grid, karras_grid(10, lin.coefficients, sigma_min=0.002, sigma_max=80.0)
    )
    f = Field.from_oracle(MixtureOracle(MIX, lin))
    out = ipndm(f, _x(4, 1), plan.grid)
    assert out.nfe == 10 and torch.isfinite(out.x).all()
    with pytest.raises(ValueError, match="finite noise levels"):
        ipndm(f, _x(4, 1), uniform_grid(4))
    with pytest.raises(ValueError, match="order"):
        ipndm(f, _x(4, 1), plan.grid, order=5)
