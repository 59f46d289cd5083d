"""Toy 2-D samplers against their written laws, TorchCFM's samplers and exact W2 noise floors."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from wasserflow.data import DATASETS, eight_gaussians, eight_gaussians_mixture, get_dataset, moons
from wasserflow.data.toy2d import checkerboard
from wasserflow.geometry import exact_ot

torchcfm_utils = pytest.importorskip("torchcfm.utils")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _moons_moment(f) -> float:
    """E f(X) for the moons law, by 2-D quadrature over (theta, u), written from the spec."""

    def outer(u, th):
        return f(3 * (math.cos(th) + 0.2 * u) - 1, 3 * (math.sin(th) + 0.2 * u) - 1)

    def inner(u, th):
        return f(3 * (1 - math.cos(th) + 0.2 * u) - 1, 3 * (0.5 - math.sin(th) + 0.2 * u) - 1)

    dens = 1 / math.pi  # theta ~ U(0, pi), u ~ U(0, 1)
    a = integrate.dblquad(outer, 0, math.pi, 0, 1)[0] * dens
    b = integrate.dblquad(inner, 0, math.pi, 0, 1)[0] * dens
    return 0.5 * (a + b)  # n even: half the points on each moon


def test_moons_moments_match_the_law():
    n = 200_000
    x = moons(n, gen(0)).double()
    # exact means by formula: E cos = 0, E sin = 2/pi, E u = 1/2 -> (0.6, 0.35) -> 3 m - 1
    assert _moons_moment(lambda a, b: a) == pytest.approx(0.8, abs=1e-9)
    assert _moons_moment(lambda a, b: b) == pytest.approx(0.05, abs=1e-9)
    for f in (
        lambda a, b: a,
        lambda a, b: b,
        lambda a, b: a * a,
        lambda a, b: b * b,
        lambda a, b: a * b,
        lambda a, b: a * a * b,
        lambda a, b: (a - b) ** 2,
    ):
        exact = _moons_moment(f)
        var = _moons_moment(lambda a, b, f=f: f(a, b) ** 2) - exact**2
        emp = float(f(x[:, 0], x[:, 1]).mean())
        assert abs(emp - exact) < 5 * math.sqrt(var / n), (emp, exact)


def test_moons_difference_law_ks():
    """(x - y) / 3 is free of the shared u: cos th - sin th (outer), 1/2 - that (inner)."""
    th = np.linspace(0, np.pi, 2_000_001)
    grid = np.sort(np.cos(th) - np.sin(th))

    def cdf(s):  # P(cos th - sin th <= s), th ~ U(0, pi), by a fine deterministic grid
        return np.searchsorted(grid, s, side="right") / grid.size

    n = 40_000
    x = moons(n, gen(7)).double().numpy()
    w = (x[:, 0] - x[:, 1]) / 3
    assert stats.kstest(w[: n // 2], cdf).pvalue > 1e-3
    assert stats.kstest(0.5 - w[n // 2 :], cdf).pvalue > 1e-3


def test_moons_first_half_is_outer_moon():
    x = moons(1001, gen(1)).double()
    p = (x + 1) / 3  # undo the affine map; then subtract the shared u: y - x is u-free
    outer, inner = p[:500], p[500:]
    # outer: x - y = cos th - sin th in [-sqrt2, 1]; inner: x - y = 1/2 - cos th + sin th
    assert ((outer[:, 0] - outer[:, 1]) <= 1 + 1e-6).all()
    assert ((inner[:, 0] - inner[:, 1]) >= -0.5 - 1e-6).all()
    assert inner.shape[0] == 501


def test_moons_w2_noise_floor_and_torchcfm():
    a, b = moons(2000, gen(0)), moons(2000, gen(1))
    w_ii = exact_ot(a, b).w2
    assert 0.10 < w_ii < 0.22, w_ii
    state = np.random.get_state()
    try:
        np.random.seed(0)
        c = torchcfm_utils.sample_moons(2000)
    finally:
        np.random.set_state(state)
    w_ref = exact_ot(a, c.double()).w2
    assert w_ref < 0.22, w_ref  # TorchCFM (angle grid, same law) sits within the noise floor


def test_iid_no_grid_and_reproducible():
    for name, sampler in DATASETS.items():
        a, b = sampler(500, gen(3)), sampler(500, gen(4))
        assert a.shape == (500, 2) and a.dtype == torch.float32
        assert torch.isfinite(a).all()
        assert float(torch.cdist(a.double(), b.double()).min()) > 0, name  # no shared points
        assert torch.equal(a, sampler(500, gen(3))), name
        assert sampler(3, gen(0), dtype=torch.float64).dtype == torch.float64
    assert get_dataset("Swiss-Roll") is DATASETS["swissroll"]
    with pytest.raises(ValueError, match="unknown 2-D data set"):
        get_dataset("nope")
    with pytest.raises(ValueError, match="non-negative int"):
        moons(-1)


def test_eight_gaussians_matches_torchcfm_law():
    gm = eight_gaussians_mixture()
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    centres = 5 * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    assert torch.allclose(gm.means, centres, atol=1e-12)
    assert torch.allclose(gm.covs, math.sqrt(0.1) * torch.eye(2).double().expand(8, 2, 2))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref = torchcfm_utils.sample_8gaussians(4000).double()
    ours = eight_gaussians(20000, gen(5)).double()
    exact_cov = (12.5 + math.sqrt(0.1)) * torch.eye(2, dtype=torch.float64)
    for x, n in ((ref, 4000), (ours, 20000)):
        assert torch.allclose(torch.cov(x.T), exact_cov, atol=6 * 13 / math.sqrt(n))
        # squared distance to the nearest centre: chi^2_2 * sqrt(0.1), mean 2 sqrt(0.1)
        d2 = torch.cdist(x, centres).min(1).values ** 2
        assert float(d2.mean()) == pytest.approx(2 * math.sqrt(0.1), rel=6 * 1 / math.sqrt(n))


def test_checkerboard_cells():
    x = checkerboard(8000, gen(6)).double()
    assert float(x.abs().max()) <= 4
    i = torch.floor((x[:, 0] + 4) / 2).long()
    j = torch.floor((x[:, 1] + 4) / 2).long()
    assert ((i + j) % 2 == 0).all()
    counts = torch.bincount(4 * i + j, minlength=16).double()
    black = counts[counts > 0]
    assert black.numel() == 8
    assert float(((black - 1000) ** 2 / 1000).sum()) < 24.3  # chi^2_7 99.9 % quantile
