"""Conditional paths and couplings against TorchCFM and POT."""

import numpy as np
import ot
import pytest
import torch
from torchcfm.conditional_flow_matching import (
    ConditionalFlowMatcher,
    ExactOptimalTransportConditionalFlowMatcher,
    SchrodingerBridgeConditionalFlowMatcher,
)

from wasserflow.paths import (
    AffinePath,
    LinearSchedule,
    VESchedule,
    entropic_coupling,
    entropic_plan,
    get_coupling,
    independent_coupling,
    ot_coupling,
    reflow_coupling,
)


def _batch(n=64, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.5 + torch.tensor(
        [3.0, -1.0], dtype=torch.float64
    )
    t = torch.rand(n, generator=g, dtype=torch.float64)
    return x0, x1, t


@pytest.mark.parametrize("sigma", [0.0, 0.1])
def test_icfm_targets_equal_torchcfm(sigma):
    x0, x1, t = _batch()
    torch.manual_seed(0)  # TorchCFM draws its noise from the global generator
    tt, xt, ut, eps = ConditionalFlowMatcher(sigma=sigma).sample_location_and_conditional_flow(
        x0, x1, t, return_noise=True
    )
    mine = AffinePath(LinearSchedule(), bridge_sigma=sigma).sample(x0, x1, t, noise=eps)
    assert torch.allclose(mine.xt, xt, atol=1e-12) and torch.allclose(mine.ut, ut, atol=1e-12)


def test_sbcfm_targets_and_plan_equal_torchcfm():
    x0, x1, t = _batch()
    t = t.clamp(0.01, 0.99)
    sigma = 0.7
    sb = SchrodingerBridgeConditionalFlowMatcher(sigma=sigma, ot_method="sinkhorn")
    torch.manual_seed(1)
    # the parent's method skips the OT resampling, so both see the same pairs
    _, xt, ut, eps = ConditionalFlowMatcher.sample_location_and_conditional_flow(
        sb, x0, x1, t, return_noise=True
    )
    mine = AffinePath(LinearSchedule(), bridge_sigma=sigma, bridge="brownian").sample(
        x0, x1, t, noise=eps
    )
    assert torch.allclose(mine.xt, xt, atol=1e-12)
    assert torch.allclose(mine.ut, ut, rtol=1e-6, atol=1e-6)  # TorchCFM adds 1e-8 to 2t(1-t)
    P_ref = torch.from_numpy(sb.ot_sampler.get_map(x0, x1))
    P = entropic_plan(x0, x1, reg=2 * sigma**2)
    assert torch.allclose(P, P_ref, atol=1e-9)


def test_otcfm_pairs_are_torchcfm_plan_pairs():
    x0, x1, t = _batch(n=48)
    cfm = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
    pi = cfm.ot_sampler.get_map(x0, x1)
    C = torch.cdist(x0, x1).pow(2).numpy()
    pair = ot_coupling(x0, x1, torch.Generator().manual_seed(0))
    cost = float(((pair.x0 - pair.x1) ** 2).sum(1).mean())
    assert cost == pytest.approx(float((pi * C).sum()), rel=1e-10)
    assert cost == pytest.approx(float(ot.emd2(ot.unif(48), ot.unif(48), C)), rel=1e-10)
    assert sorted(pair.index1.tolist()) == list(range(48))
    np.random.seed(0)
    _, xt, ut = cfm.sample_location_and_conditional_flow(x0, x1, t)
    # sigma = 0: x0 = xt - t ut and x1 = x0 + ut identify TorchCFM's sampled pairs
    rec0 = xt - t[:, None] * ut
    i = torch.cdist(rec0, x0).argmin(1)
    j = torch.cdist(rec0 + ut, x1).argmin(1)
    assert torch.equal(pair.index1[i], j)
    path = AffinePath(LinearSchedule())
    s = path.sample(x0[i], x1[j], t)
    assert torch.allclose(s.xt, xt, atol=1e-10) and torch.allclose(s.ut, ut, atol=1e-10)


def test_entropic_coupling_samples_the_plan():
    x0, x1, _ = _batch(n=4, seed=3)
    P = entropic_plan(x0, x1, reg=4.0)
    assert torch.allclose(P.sum(1), torch.full((4,), 0.25, dtype=torch.float64), atol=1e-8)
    cb = entropic_coupling(x0, x1, torch.Generator().manual_seed(0), sigma=2**0.5, n_pairs=40_000)
    freq = torch.zeros(4, 4, dtype=torch.float64)
    freq.index_put_(
        (cb.index0, cb.index1), torch.ones(40_000, dtype=torch.float64), accumulate=True
    )
    freq /= 40_000
    # binomial standard error <= sqrt(0.25 / 40000) = 0.0025; allow 4 of them
    assert float((freq - P).abs().max()) < 0.01
    assert torch.equal(cb.x0, x0[cb.index0]) and torch.equal(cb.x1, x1[cb.index1])


def test_independent_and_reflow():
    x0, x1, _ = _batch(n=8)
    ind = independent_coupling(x0, x1)
    assert torch.equal(ind.x0, x0) and torch.equal(ind.x1, x1)
    rf = reflow_coupling(x0, lambda z: 2 * z + 1)
    assert torch.equal(rf.x1, 2 * x0 + 1) and rf.index1 is None
    assert get_coupling("ot") is ot_coupling


def test_reference_measure_and_bad_inputs():
    g = torch.Generator().manual_seed(0)
    ve = AffinePath(VESchedule(0.01, 30.0))
    z = ve.sample_reference((20_000, 2), g, dtype=torch.float64)
    assert float(z.std()) == pytest.approx(30.0, rel=0.02)
    assert AffinePath(LinearSchedule()).sample_reference((5, 3), g).shape == (5, 3)
    x0, x1, t = _batch(n=8)
    with pytest.raises(ValueError, match="same shape"):
        AffinePath(LinearSchedule()).sample(x0, x1[:4], t)
    with pytest.raises(ValueError, match="open interval"):
        AffinePath(LinearSchedule(), 1.0, "brownian").sample(x0, x1, 0.0)
    with pytest.raises(ValueError, match="bridge"):
        AffinePath(LinearSchedule(), 1.0, "levy")
    with pytest.raises(ValueError, match="one time per sample"):
        AffinePath(LinearSchedule()).sample(x0, x1, t[:3])
    with pytest.raises(ValueError, match="equal batch sizes"):
        ot_coupling(x0, x1[:5])
    with pytest.raises(ValueError, match="exactly one"):
        entropic_coupling(x0, x1, reg=1.0, sigma=1.0)
    with pytest.raises(ValueError, match="unknown coupling"):
        get_coupling("greedy")
