"""The coupling-gap bracket against maps whose gap is known in closed form or by the definition
itself (wasserflow.metrics.gap_cases: the Brenier map known, G = E|Phi(X) - X|^2 -
E|T(X) - X|^2 by Monte Carlo), in d = 2, 64 and 784; the plug-in gap against scipy's
assignment solver."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from wasserflow.metrics import GAP_BOUNDS, coupling_gap, plugin_gap
from wasserflow.metrics.gap_cases import gap_case, plane_rotation

N = 2000


def _normal(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _case(d, name):
    case = gap_case(name, d, n_mc=400_000 if d <= 64 else 50_000)
    return case.map, case.gap


def _check_bracket(x, y, truth, source="normal", folds=5):
    res = coupling_gap(x, y, source=source, folds=folds)
    assert res.lower <= truth + 1e-9 and truth - 2e-9 <= res.upper, (res, truth)
    for b in res.bounds:  # each one-sided bound is on its side of the truth
        assert (b.bound <= truth + 1e-9) if b.side == "lower" else (b.bound >= truth - 1e-9), b
    return res


@pytest.mark.parametrize("d", [2, 64])
@pytest.mark.parametrize(
    "case", ["rotation", "linear", "spd-linear", "convex-gradient", "rotated-convex-gradient"]
)
def test_every_bound_is_on_its_side_of_the_true_gap(d, case):
    phi, truth = _case(d, case)
    n = N if d > 2 else 1000  # the plug-in's bootstrap assignments are the cost in 2-D
    x = _normal(n, d, 0)
    res = _check_bracket(x, phi(x), truth)
    assert res.n == n and res.method == "rotation+gaussian-dual+plugin"


def test_the_bracket_holds_in_784_dimensions():
    """MNIST's dimension at n = 2,000 (two folds: each fit sees 1,000 > 784 pairs)."""
    phi, truth = _case(784, "rotation")
    x = _normal(N, 784, 0)
    res = _check_bracket(x, phi(x), truth, folds=2)
    assert res.upper - res.lower < 0.01 * res.chord  # resolved to 1 % of the chord


@pytest.mark.slow
@pytest.mark.parametrize(
    "case", ["spd-linear", "linear", "convex-gradient", "rotated-convex-gradient"]
)
def test_the_bracket_holds_in_784_dimensions_slow(case):
    phi, truth = _case(784, case)
    x = _normal(N, 784, 0)
    _check_bracket(x, phi(x), truth)


def test_a_rotation_in_64_dimensions_is_detected_from_the_samples_alone():
    """The issue's case: the plug-in gap reads 0, the rotation bound sees the whole gap."""
    phi, truth = _case(64, "rotation")
    x = _normal(N, 64, 3)
    y = phi(x)
    assert plugin_gap(x, y) < 1e-9 * truth  # blind
    res = coupling_gap(x, y, source="normal")
    assert res.lower > 0.98 * truth and res.contains(truth)
    assert res.upper < 1.03 * truth  # the Gaussian dual is near-exact: the image is Gaussian


def test_an_optimal_linear_map_brackets_zero_tightly():
    phi, _ = _case(64, "spd-linear")
    x = _normal(N, 64, 4)
    res = coupling_gap(x, phi(x), source="normal")
    assert res.lower == 0.0 and res.upper < 1e-6 * res.chord


def test_the_gaussian_dual_is_near_the_gelbrich_equality_for_a_linear_map():
    """For a Gaussian image law the quadratic potential is the Brenier one: the upper bound
    approaches the true gap (power, not just validity)."""
    phi, truth = _case(64, "linear")
    x = _normal(N, 64, 6)
    res = coupling_gap(x, phi(x), method="gaussian-dual")
    assert truth <= res.upper < 1.08 * truth and res.lower == 0.0


def test_without_the_source_only_the_source_free_bounds_run():
    phi, truth = _case(64, "rotation")
    x = _normal(N, 64, 7)
    res = coupling_gap(x, phi(x))
    assert res.method == "gaussian-dual+plugin" and res.lower == 0.0 and res.upper >= truth


def test_the_plugin_gap_is_the_pairs_cost_minus_scipys_optimal_assignment():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(300, 2, generator=g, dtype=torch.float64)
    y = torch.randn(300, 2, generator=g, dtype=torch.float64) + 1.0
    cost = torch.cdist(x, y).pow(2).numpy()
    r, c = linear_sum_assignment(cost)
    want = float((y - x).pow(2).sum(1).mean()) - cost[r, c].mean()
    assert plugin_gap(x, y) == pytest.approx(want, rel=1e-10)
    res = coupling_gap(x, y, method="plugin")
    assert res.estimate == pytest.approx(want, rel=1e-10) and res.upper is None
    assert 0 < res.lower < want


def test_the_bracket_is_a_typed_record():
    rot = plane_rotation(2, 0.5)
    x = _normal(500, 2, 9)
    res = coupling_gap(x, x @ rot.T, source="normal", level=0.9)
    d = res.to_dict()
    assert set(d) >= {"lower", "upper", "n", "method", "value", "level", "bounds"}
    assert d["level"] == 0.9 and len(d["bounds"]) == 3 and str(res).startswith("[")
    assert set(GAP_BOUNDS) == {"rotation", "gaussian-dual", "plugin"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x1": torch.zeros(50, 3)}, "one shape"),
        ({"x0": torch.zeros(10, 2), "x1": torch.zeros(10, 2)}, "at least 20"),
        ({"x1": torch.full((50, 2), float("nan"))}, "NaN"),
        ({"method": "sinkhorn"}, "unknown coupling-gap method"),
        ({"method": "rotation", "source": None}, "needs source='normal'"),
        ({"source": "uniform"}, "source must be"),
        ({"x0": torch.rand(50, 2, dtype=torch.float64) + 3}, "N\\(0, s\\^2 I\\)"),
        ({"level": 1.0}, "level"),
    ],
)
def test_bad_input_is_refused_in_one_line(kwargs, match):
    x = _normal(50, 2, 10)
    args = {"x0": x, "x1": x * 2, "source": "normal", **kwargs}
    x0, x1 = args.pop("x0"), args.pop("x1")
    with pytest.raises(ValueError, match=match) as e:
        coupling_gap(x0, x1, **args)
    assert "\n" not in str(e.value)


def test_a_fixed_generator_gives_the_same_bracket():
    x = _normal(400, 8, 11)
    y = torch.tanh(x) * 2
    a = coupling_gap(x, y, source="normal", generator=torch.Generator().manual_seed(1))
    b = coupling_gap(x, y, source="normal", generator=torch.Generator().manual_seed(1))
    assert a == b
    assert a.upper is not None and np.isfinite(a.upper)
