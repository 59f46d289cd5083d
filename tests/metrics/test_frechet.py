"""The Frechet distance against outside implementations and closed forms, in float64.

References no one here wrote: torchmetrics' FID formula (eigenvalues of S_a S_b), POT's
Bures-Wasserstein distance (FD between Gaussians is their squared W2), numpy's covariance, and
the closed form for commuting covariances, FD = |m_a - m_b|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
"""

import numpy as np
import ot
import pytest
import torch
from _torch_fidelity_peer import torchmetrics_compute_fid

from wasserflow.errors import InputError
from wasserflow.metrics import FeatureStats, FrechetResult, feature_stats, frechet_distance


def _features(n, k, seed, shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=g, dtype=torch.float64) / k**0.5
    return (torch.randn(n, k, generator=g, dtype=torch.float64) @ mix) * scale + shift


def test_feature_stats_equal_numpy_mean_and_cov():
    x = _features(300, 12, 0).numpy()
    s = feature_stats(x, feature="f")
    assert isinstance(s, FeatureStats) and s.n == 300 and s.dim == 12 and s.feature == "f"
    assert s.mu.dtype == torch.float64 and s.sigma.dtype == torch.float64
    np.testing.assert_allclose(s.mu.numpy(), x.mean(axis=0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(s.sigma.numpy(), np.cov(x, rowvar=False), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("singular", [False, True])
def test_commuting_covariances_closed_form(singular):
    """A zero eigenvalue costs accuracy: sqrt turns its round-off (1e-16) into 1e-8."""
    g = torch.Generator().manual_seed(1)
    k = 10
    q, _ = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
    la = torch.rand(k, generator=g, dtype=torch.float64) * 3
    lb = torch.rand(k, generator=g, dtype=torch.float64) * 3
    if singular:
        la[0] = 0.0
    ma, mb = torch.randn(k, generator=g, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
    a = FeatureStats(ma, (q * la) @ q.T, n=100)
    b = FeatureStats(mb, (q * lb) @ q.T, n=100)
    want = float(((ma - mb) ** 2).sum() + ((la.sqrt() - lb.sqrt()) ** 2).sum())
    got = frechet_distance(a, b)
    assert got.value == pytest.approx(want, rel=1e-7 if singular else 1e-11)
    assert got.mean_term == pytest.approx(float(((ma - mb) ** 2).sum()), rel=1e-14)


@pytest.mark.parametrize("n, k", [(400, 16), (300, 64)])
def test_equals_pot_bures_wasserstein(n, k):
    """Full-rank covariances (POT's square root gives NaN on singular ones)."""
    a, b = _features(n, k, 2), _features(n, k, 3, shift=0.3, scale=1.5)
    sa, sb = feature_stats(a), feature_stats(b)
    w = ot.gaussian.bures_wasserstein_distance(
        sa.mu.numpy(), sb.mu.numpy(), sa.sigma.numpy(), sb.sigma.numpy()
    )
    assert frechet_distance(a, b).value == pytest.approx(float(w) ** 2, rel=1e-8)


@pytest.mark.parametrize("n_b", [700, 12])
def test_equals_torchmetrics_formula(n_b):
    """n_b = 12 < k = 20: S_b singular (rank 11); its zero eigenvalues come out of both
    methods as round-off whose square roots (1e-8 each) bound the agreement."""
    compute_fid = torchmetrics_compute_fid()
    a, b = _features(500, 20, 4), _features(n_b, 20, 5, shift=-0.2, scale=0.7)
    sa, sb = feature_stats(a), feature_stats(b)
    want = float(compute_fid(sa.mu, sa.sigma, sb.mu, sb.sigma))
    got = frechet_distance(a, b)
    assert got.value == pytest.approx(want, rel=1e-9 if n_b > 20 else 1e-7)
    assert (got.n_a, got.n_b, got.dim) == (500, n_b, 20)


def test_symmetric_zero_on_equal_sets_and_typed():
    a, b = _features(200, 8, 6), _features(200, 8, 7, shift=1.0)
    ab, ba = frechet_distance(a, b), frechet_distance(b, a)
    assert isinstance(ab, FrechetResult) and float(ab) == ab.value
    assert ab.value == pytest.approx(ba.value, rel=1e-10)
    assert ab.value == pytest.approx(ab.mean_term + ab.trace_term, rel=1e-15)
    assert 0.0 <= frechet_distance(a, a).value < 1e-10
    assert ab.to_dict()["n_a"] == 200


def test_sample_size_bias_two_samples_of_one_law():
    """Two samples of one law N(0, S): FD > 0, falling with n (about as 1/n), and the mean
    term's expectation is E|mu_a - mu_b|^2 = 2 tr(S) / n exactly."""
    k, reps = 8, 40
    g = torch.Generator().manual_seed(10)
    m = torch.randn(k, k, generator=g, dtype=torch.float64) / k**0.5
    tr_s = float((m**2).sum())  # tr(M^T M)
    fd = {}
    for n in (50, 800):
        vals = [
            frechet_distance(
                torch.randn(n, k, generator=g, dtype=torch.float64) @ m,
                torch.randn(n, k, generator=g, dtype=torch.float64) @ m,
            )
            for _ in range(reps)
        ]
        fd[n] = np.mean([v.value for v in vals])
        assert np.mean([v.mean_term for v in vals]) == pytest.approx(2 * tr_s / n, rel=0.25)
    assert fd[50] > 5 * fd[800] > 0


def test_sample_size_bias_isotropic_trace_term():
    """N(0, I_k), two samples of size n: E[trace term] = k (k + 1) / (2 n) + O(n^-2), from
    W2^2 between N(0, I + E_a) and N(0, I + E_b) ~ |E_a - E_b|_F^2 / 4 and the Wishart
    moment E|E|_F^2 = k (k + 1) / n."""
    g = torch.Generator().manual_seed(11)
    k, n = 16, 1000
    vals = [
        frechet_distance(
            torch.randn(n, k, generator=g, dtype=torch.float64),
            torch.randn(n, k, generator=g, dtype=torch.float64),
        ).trace_term
        for _ in range(30)
    ]
    assert np.mean(vals) == pytest.approx(k * (k + 1) / (2 * n), rel=0.1)


def test_refuses_bad_input():
    a = _features(50, 4, 8)
    with pytest.raises(InputError, match="widths differ"):
        frechet_distance(a, _features(50, 5, 9))
    with pytest.raises(InputError, match="not comparable"):
        frechet_distance(feature_stats(a, "digits8"), feature_stats(a, "inception"))
    with pytest.raises(InputError, match="n >= 2"):
        frechet_distance(a[:1], a)
    with pytest.raises(InputError, match=r"\(n, k\)"):
        frechet_distance(a.reshape(50, 2, 2), a)
    bad = a.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        frechet_distance(bad, a)
    with pytest.raises(InputError, match="FeatureStats"):
        frechet_distance([[1.0, 2.0]], a)
