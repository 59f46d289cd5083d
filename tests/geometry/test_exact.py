"""Exact OT against POT's network simplex at full convergence, and W2's metric invariants."""

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wasserflow.geometry import exact_ot, w2


def pot_w2sq(x, y, a=None, b=None):
    x, y = x.double().numpy(), y.double().numpy()
    a = np.full(len(x), 1 / len(x)) if a is None else a.double().numpy()
    b = np.full(len(y), 1 / len(y)) if b is None else b.double().numpy()
    return ot.emd2(a, b, ot.dist(x, y), numItermax=10**9)


def clouds(seed, n, m, d):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), 2 * torch.rand(
        m, d, generator=g, dtype=torch.float64
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    m=st.integers(1, 40),
    d=st.integers(1, 5),
    weighted=st.booleans(),
)
def test_equals_pot(seed, n, m, d, weighted):
    x, y = clouds(seed, n, m, d)
    a = b = None
    if weighted:
        g = torch.Generator().manual_seed(seed + 1)
        a = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
        b = torch.rand(m, generator=g, dtype=torch.float64) + 0.1
        a, b = a / a.sum(), b / b.sum()
    r = exact_ot(x, y, a, b)
    assert r.converged and r.status == "optimal"
    assert r.cost == pytest.approx(pot_w2sq(x, y, a, b), rel=1e-8, abs=1e-12)
    # the plan is a coupling of a and b
    aa = a if a is not None else torch.full((n,), 1 / n, dtype=torch.float64)
    bb = b if b is not None else torch.full((m,), 1 / m, dtype=torch.float64)
    assert torch.allclose(r.plan.sum(1), aa, atol=1e-12)
    assert torch.allclose(r.plan.sum(0), bb, atol=1e-12)
    assert r.marginal_error < 1e-10
    # strong duality: <a, f> + <b, g> = cost, and f_i + g_j <= C_ij
    f, gpot = r.potentials
    assert float(aa @ f + bb @ gpot) == pytest.approx(r.cost, rel=1e-8, abs=1e-10)
    C = torch.cdist(x, y) ** 2
    assert float((f[:, None] + gpot[None, :] - C).max()) < 1e-8 * (1 + float(C.max()))


def test_large_problem_is_not_silently_truncated():
    """POT's default limit (1e5) stops early here with only a warning; exact_ot must not."""
    x, y = clouds(3, 2500, 2500, 2)
    a = np.full(2500, 1 / 2500)
    C = ot.dist(x.numpy(), y.numpy())
    with pytest.warns(UserWarning, match="numItermax"):
        truncated = ot.emd2(a, a, C)
    r = exact_ot(x, y)
    assert r.converged and r.status == "optimal"
    assert r.cost == pytest.approx(ot.emd2(a, a, C, numItermax=10**9), rel=1e-9)
    assert truncated > r.cost  # POT stopped before optimality


def test_limit_reported_when_too_small():
    x, y = clouds(4, 300, 300, 2)
    r = exact_ot(x, y, max_iter=10, max_retries=0)
    assert not r.converged and r.status == "max_iter_reached"
    assert r.marginal_error > 1e-3  # the truncated plan is not even a coupling: reported


def test_gaussian_shift_closed_form():
    """N(0,1) -> N(10,1): W2 = 10 exactly for the same draws shifted by 10."""
    z = torch.randn(500, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert exact_ot(z, z + 10).w2 == pytest.approx(10.0, rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 30), d=st.integers(1, 4))
def test_metric_invariants(seed, n, d):
    g = torch.Generator().manual_seed(seed)
    x, y, z = (torch.randn(n + k, d, generator=g, dtype=torch.float64) * (k + 1) for k in range(3))
    assert w2(x, x).cost == pytest.approx(0.0, abs=1e-12)
    assert w2(x, y).cost == pytest.approx(w2(y, x).cost, rel=1e-10, abs=1e-12)
    assert w2(x, z).w2 <= w2(x, y).w2 + w2(y, z).w2 + 1e-9
    # W2^2(x + a, y) = W2^2(x, y) + |a|^2 + 2 a . (mean x - mean y)
    shift = torch.randn(d, generator=g, dtype=torch.float64)
    lhs = w2(x + shift, y).cost
    rhs = w2(x, y).cost + float(shift @ shift) + 2 * float(shift @ (x.mean(0) - y.mean(0)))
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    "x, y, a, match",
    [
        (torch.zeros(0, 2), torch.zeros(3, 2), None, "empty"),
        (torch.zeros(3, 2), torch.zeros(3, 3), None, "dimension mismatch"),
        (torch.tensor([[float("nan"), 0.0]]), torch.zeros(3, 2), None, "NaN"),
        (torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor([0.5, 0.5]), "one weight per point"),
        (torch.zeros(2, 2), torch.zeros(3, 2), torch.tensor([0.7, 0.7]), "normalise"),
        (torch.zeros(2, 2), torch.zeros(3, 2), torch.tensor([1.5, -0.5]), "non-negative"),
        (torch.zeros(2, 2, 2), torch.zeros(3, 2), None, "shape"),
    ],
)
def test_bad_inputs(x, y, a, match):
    with pytest.raises(ValueError, match=match):
        exact_ot(x, y, a)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown method"):
        w2(torch.zeros(2, 1), torch.zeros(2, 1), method="bogus")


def test_too_large_is_refused_before_allocating(monkeypatch):
    """A solve needing more than the free memory raises TooLarge (a ValueError and a
    MemoryError) naming the need, the alternatives and a subsample that fits."""
    from wasserflow.errors import TooLarge
    from wasserflow.geometry.ot import exact

    monkeypatch.setattr(exact, "available_bytes", lambda: 2**20)
    allocated = []
    monkeypatch.setattr(exact, "squared_distances", lambda *a: allocated.append(a))
    x = torch.zeros(3000, 2, dtype=torch.float64)  # 369 MB: above CHECKED_FROM
    with pytest.raises(TooLarge) as e:
        exact_ot(x, x)
    assert isinstance(e.value, ValueError) and isinstance(e.value, MemoryError)
    assert e.value.needed > e.value.available == 2**20 and not allocated
    assert "sinkhorn" in str(e.value) and "sliced" in str(e.value) and "subsample" in str(e.value)
    fits = int(str(e.value).split("at most ")[1].split()[0].replace(",", ""))
    exact.check_memory(fits, fits, 2**20)  # the subsample it names is accepted
    with pytest.raises(TooLarge):
        exact.check_memory(fits + 1, fits + 1, 2**20)


@pytest.mark.parametrize("method", ["exact", "sinkhorn", "sliced", "gaussian"])
def test_huge_coordinates_are_named(method):
    x = torch.tensor([[1e300, 0.0], [0.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="1e\\+300 in magnitude.*overflow"):
        w2(x, torch.zeros(3, 2, dtype=torch.float64), method=method)
    with pytest.raises(ValueError, match="overflow"):
        exact_ot(torch.zeros(3, 2, dtype=torch.float64), x)
