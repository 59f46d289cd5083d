"""Entropic OT: against POT's log-domain Sinkhorn, GeomLoss's Sinkhorn divergence and exact W2."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from wasserflow.geometry import w2
from wasserflow.geometry.ot.entropic import sinkhorn, sinkhorn_divergence


def _clouds(n: int, m: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = torch.randn(m, 2, generator=g, dtype=torch.float64) * 0.5 + torch.tensor([2.0, 1.0])
    return x, y


def _weights(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n, generator=g, dtype=torch.float64) + 0.2
    return w / w.sum()


def _C(x, y) -> np.ndarray:
    return ot.dist(x.numpy(), y.numpy(), metric="sqeuclidean")


@pytest.mark.parametrize("reg", [1.0, 0.1, 0.02])
def test_plan_and_cost_match_pot_log_sinkhorn(reg):
    x, y = _clouds(40, 30)
    a, b = _weights(40, 1), _weights(30, 2)
    C = _C(x, y)
    P_pot = ot.bregman.sinkhorn_log(a.numpy(), b.numpy(), C, reg, numItermax=200_000, stopThr=1e-13)
    res = sinkhorn(x, y, a, b, epsilon=reg, tol=1e-10, max_iter=200_000)
    assert res.converged and res.status == "converged" and res.method == "sinkhorn"
    P = res.plan.numpy()
    assert np.abs(P - P_pot).sum() < 1e-7
    assert res.cost == pytest.approx(float((P_pot * C).sum()), rel=1e-8)
    # plan in Gibbs form with the returned potentials
    f, g = (t.numpy() for t in res.potentials)
    gibbs = a.numpy()[:, None] * b.numpy()[None, :] * np.exp((f[:, None] + g[None, :] - C) / reg)
    assert np.allclose(P, gibbs, rtol=1e-10, atol=1e-300)


def test_marginals_within_reported_error_float32_kernel():
    x, y = _clouds(200, 150, seed=3)
    a, b = _weights(200, 4), _weights(150, 5)
    res = sinkhorn(x, y, a, b, epsilon=0.05, tol=1e-4, kernel_dtype=torch.float32)
    P = res.plan
    actual = float((P.sum(1) - a).abs().sum() + (P.sum(0) - b).abs().sum())
    assert actual <= res.marginal_error * (1 + 1e-9) + 1e-15
    assert res.marginal_error < 1e-3 and res.converged
    # primal cost is <P, C> of the returned plan
    assert res.cost == pytest.approx(float((P.numpy() * _C(x, y)).sum()), rel=1e-12)


def test_no_nan_inf_or_zero_at_tiny_epsilon():
    x, y = _clouds(60, 60, seed=7)
    scale = float(_C(torch.cat([x, y]), torch.cat([x, y])).max())
    eps = 1e-4 * scale
    res = sinkhorn(x, y, epsilon=eps, tol=1e-3, max_iter=20_000)
    f, g = res.potentials
    assert torch.isfinite(f).all() and torch.isfinite(g).all()
    assert torch.isfinite(res.plan).all() and (res.plan.sum(1) > 0).all()
    assert math.isfinite(res.cost) and math.isfinite(res.marginal_error)
    assert res.converged and res.marginal_error < 2e-3
    div = sinkhorn_divergence(x, y, epsilon=eps, max_iter=20_000)
    assert math.isfinite(div.cost) and torch.isfinite(div.potentials[0]).all()
    exact = ot.emd2([], [], _C(x, y))
    assert div.cost == pytest.approx(exact, rel=2e-2)
    assert res.cost == pytest.approx(exact, rel=2e-2)


def test_non_convergence_is_reported():
    x, y = _clouds(50, 50)
    res = sinkhorn(x, y, epsilon=0.01, tol=1e-9, max_iter=3, anneal_factor=None)
    assert not res.converged and res.status == "max_iter_reached"


def test_divergence_matches_geomloss():
    geomloss = pytest.importorskip("geomloss")
    x, y = _clouds(120, 100, seed=11)
    eps = 0.05
    loss = geomloss.SamplesLoss(
        "sinkhorn", p=2, blur=math.sqrt(eps / 2), scaling=0.97, debias=True, backend="tensorized"
    )
    ref = 2.0 * float(loss(x, y))  # GeomLoss's cost is |x - y|^2 / 2
    ours = sinkhorn_divergence(x, y, epsilon=eps, tol=1e-6)
    assert ours.converged
    assert ours.cost == pytest.approx(ref, rel=1e-4)


def test_divergence_tends_to_exact_w2():
    x, y = _clouds(300, 300, seed=5)
    exact = ot.emd2([], [], _C(x, y), numItermax=10_000_000)
    errors = []
    for eps in (1.0, 0.3, 0.1, 0.03, 0.01):
        res = sinkhorn_divergence(x, y, epsilon=eps, max_iter=20_000)
        assert res.converged
        errors.append(abs(res.cost - exact) / exact)
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-2


def test_divergence_of_a_measure_with_itself_is_zero_and_w2_dispatch():
    x, y = _clouds(80, 90)
    assert abs(sinkhorn_divergence(x, x, epsilon=0.1, tol=1e-9).cost) < 1e-7
    res = w2(x, y, method="sinkhorn", epsilon=0.05)
    assert res.method == "sinkhorn" and res.plan is None and res.cost > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epsilon=0.0), "epsilon"),
        (dict(epsilon=-1.0), "epsilon"),
        (dict(epsilon=float("nan")), "epsilon"),
        (dict(epsilon=0.1, tol=0.0), "tol"),
        (dict(epsilon=0.1, anneal_factor=1.5), "anneal_factor"),
        (dict(epsilon=0.1, kernel_dtype=torch.float16), "kernel_dtype"),
    ],
)
def test_bad_options(kwargs, match):
    x, y = _clouds(5, 6)
    with pytest.raises(ValueError, match=match):
        sinkhorn(x, y, **kwargs)


def test_bad_points_and_weights():
    x, y = _clouds(5, 6)
    with pytest.raises(ValueError, match="dimension mismatch"):
        sinkhorn(x, torch.zeros(6, 3), epsilon=0.1)
    with pytest.raises(ValueError, match="positive weights"):
        sinkhorn(x, y, torch.tensor([0.0, 0.25, 0.25, 0.25, 0.25]), epsilon=0.1)
    with pytest.raises(ValueError, match="one weight per point"):
        sinkhorn_divergence(x, y, torch.full((4,), 0.25), epsilon=0.1)
