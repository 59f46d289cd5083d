"""The flow predictor-corrector (samplers/flow_pc.py) against closed forms on the linear path to a
Gaussian N(m, s^2 I), whose marginals are N(t m, r_t^2 I), r_t^2 = t^2 s^2 + (1 - t)^2.

* The score converted from the velocity equals the oracle's exact score (Tweedie).
* One unadjusted Langevin step x + eps grad log p + sqrt(2 eps) z from the exact marginal
  N(mu, r^2 I) is Gaussian with mean mu and variance (1 - eps / r^2)^2 r^2 + 2 eps
  = r^2 + eps^2 / r^2: the marginal is invariant up to O(eps^2).
* With many steps the sampler's law converges to the data law (Bures W2)."""

import pytest
import torch

from wasserflow.geometry import gaussian_w2
from wasserflow.paths import AffinePath, LinearSchedule, gaussian_oracle
from wasserflow.samplers import (
    Field,
    SamplingContext,
    get_sampler,
    langevin_corrector,
    uniform_grid,
)

D, S, T = 2, 2.0, 0.6
M = torch.tensor([1.5, -1.0], dtype=torch.float64)
PATH = AffinePath(LinearSchedule())
ORACLE = gaussian_oracle(M, S**2 * torch.eye(D), PATH)
VELOCITY_ONLY = Field(fn=ORACLE.velocity, prediction="velocity", path=PATH)  # no score_fn


def _marginal(n, seed):
    r2 = T * T * S * S + (1 - T) ** 2
    z = torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return T * M + r2**0.5 * z, r2


def test_score_from_velocity_is_the_exact_score():
    x, _ = _marginal(100, 0)
    t = torch.full((100,), T, dtype=torch.float64)
    assert torch.allclose(VELOCITY_ONLY.score(x, t), ORACLE.score(x, t), atol=1e-10)


@pytest.mark.parametrize("eps", [0.05, 0.5])
def test_one_corrector_step_keeps_the_marginal_up_to_eps_squared(eps):
    x, r2 = _marginal(200_000, 1)
    g = torch.Generator().manual_seed(2)
    y = langevin_corrector(VELOCITY_ONLY, x, T, g, step=eps)
    var = y.var(0)
    assert torch.allclose(y.mean(0), T * M, atol=0.01)
    assert torch.allclose(var, torch.full((D,), r2 + eps**2 / r2, dtype=torch.float64), rtol=0.012)


def test_flow_pc_converges_to_the_data_law():
    x0 = torch.randn(10_000, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    res = get_sampler("flow_pc")(VELOCITY_ONLY, x0, uniform_grid(100), generator=g)
    assert res.nfe == 100 + 99
    cov = torch.cov(res.x.T)
    w2 = float(gaussian_w2(res.x.mean(0), cov, M, S**2 * torch.eye(D, dtype=torch.float64)))
    assert w2 < 0.06


def test_plan_spends_the_budget_and_refuses_couplings_without_a_score():
    spec = get_sampler("flow_pc")
    ctx = SamplingContext(path=PATH)
    assert spec.make_plan(8, ctx).grid.shape == (5,)  # 4 predictor + 3 corrector evaluations
    assert spec.make_plan(9, ctx, {"n_corrector": 2}).grid.shape == (4,)  # 3 + 2 * 2
    x0 = torch.randn(50, D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    res = spec(VELOCITY_ONLY, x0, spec.make_plan(8, ctx).grid, generator=torch.Generator())
    assert res.nfe == 7
    with pytest.raises(ValueError, match="flow_pc needs the score"):
        spec.make_plan(8, SamplingContext(path=PATH, score_valid=False, description="otcfm"))
    with pytest.raises(ValueError, match="n_corrector >= 0"):
        spec(VELOCITY_ONLY, x0, uniform_grid(2), n_corrector=-1)
