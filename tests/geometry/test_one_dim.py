"""1-D W2 by quantiles equals the exact LP; sliced W2 against known values."""

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wasserflow.geometry import exact_ot, sliced_w2, w2_1d


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000), n=st.integers(1, 30), m=st.integers(1, 30), weighted=st.booleans()
)
def test_quantiles_equal_exact_lp(seed, n, m, weighted):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), rng.exponential(size=m) * 3
    a = b = None
    if weighted:
        a, b = rng.random(n) + 0.05, rng.random(m) + 0.05
        a, b = torch.tensor(a / a.sum()), torch.tensor(b / b.sum())
    ours = w2_1d(torch.tensor(x), torch.tensor(y), a, b).cost
    lp = exact_ot(torch.tensor(x)[:, None], torch.tensor(y)[:, None], a, b).cost
    assert ours == pytest.approx(lp, rel=1e-9, abs=1e-12)
    aa = np.full(n, 1 / n) if a is None else a.numpy()
    bb = np.full(m, 1 / m) if b is None else b.numpy()
    assert ours == pytest.approx(ot.emd2_1d(x, y, aa, bb), rel=1e-9, abs=1e-12)


def test_1d_needs_one_dimension():
    with pytest.raises(ValueError, match="R\\^1"):
        w2_1d(torch.zeros(3, 2), torch.zeros(3, 2))


def test_sliced_closed_form_for_a_shift():
    """For y = x + a, every projection is shifted by <theta, a>: SW2^2 = E<theta, a>^2 = |a|^2/d."""
    g = torch.Generator().manual_seed(0)
    d = 8
    x = torch.randn(300, d, generator=g, dtype=torch.float64)
    a = torch.ones(d, dtype=torch.float64)
    r = sliced_w2(x, x + a, n_projections=4000, generator=torch.Generator().manual_seed(1))
    assert r.cost == pytest.approx(float(a @ a) / d, rel=0.05)
    assert r.cost <= exact_ot(x, x + a).cost


def test_sliced_matches_pot():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64)
    y = torch.randn(200, 3, generator=g, dtype=torch.float64) * 2 + 1
    ours = sliced_w2(x, y, n_projections=3000, generator=torch.Generator().manual_seed(3)).cost
    pot = ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), n_projections=3000, seed=4) ** 2
    assert ours == pytest.approx(pot, rel=0.05)
