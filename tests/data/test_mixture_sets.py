"""Named Gaussian-mixture data sets against scipy densities and autograd scores."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from wasserflow.data import MIXTURES, get_mixture


def _scipy_log_prob(gm, x: np.ndarray) -> np.ndarray:
    comps = [
        math.log(float(w)) + multivariate_normal(m.numpy(), c.numpy()).logpdf(x)
        for w, m, c in zip(gm.weights, gm.means, gm.covs, strict=True)
    ]
    return logsumexp(np.stack(comps, 0), axis=0)


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_log_prob_matches_scipy_and_score_matches_autograd(name):
    gm = get_mixture(name)
    g = torch.Generator().manual_seed(0)
    x = gm.sample(200, g) + 0.5 * torch.randn(200, gm.dim, generator=g, dtype=torch.float64)
    lp = gm.log_prob(x)
    np.testing.assert_allclose(lp.numpy(), _scipy_log_prob(gm, x.numpy()), rtol=1e-10, atol=1e-10)
    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(gm.log_prob(xr).sum(), xr)
    torch.testing.assert_close(gm.score(x), auto, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_samples_have_the_mixture_moments(name):
    gm = get_mixture(name)
    n = 40_000
    x = gm.sample(n, torch.Generator().manual_seed(1))
    w, m, S = gm.weights.numpy(), gm.means.numpy(), gm.covs.numpy()
    mean = w @ m  # law of total expectation / variance, from the parameters
    cov = sum(
        wk * (Sk + np.outer(mk - mean, mk - mean)) for wk, mk, Sk in zip(w, m, S, strict=True)
    )
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(x.mean(0).numpy() - mean) < 5 * sd / math.sqrt(n))
    emp = np.cov(x.numpy().T)
    assert np.all(np.abs(emp - cov) < 6 * np.outer(sd, sd) * math.sqrt(2 / n) + 1e-12)


def test_builtins_are_what_they_claim():
    g2 = get_mixture("gmm2d")
    assert g2.dim == 2 and len(set(g2.weights.tolist())) == 3  # unequal weights
    for S in g2.covs:
        ev = torch.linalg.eigvalsh(S)
        assert float(ev[1] / ev[0]) > 1.5  # anisotropic
    assert get_mixture("gaussian2d").weights.shape == (1,)
    assert float(get_mixture("gaussian2d").covs[0, 0, 1]) != 0
    assert get_mixture("GMM8D").dim == 8
    with pytest.raises(ValueError, match="unknown mixture"):
        get_mixture("gmm3")
