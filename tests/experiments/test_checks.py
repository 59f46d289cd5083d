"""A verdict holds only when its margin exceeds the intervals of both sides."""

from __future__ import annotations

import torch

from wasserflow.experiments.context import Check, Verdict
from wasserflow.metrics import Interval
from wasserflow.metrics.interval import mean_interval


def _iv(v, half):
    return Interval(v, v - half, v + half, 0.95, "mean", 100)


def test_a_check_with_intervals_needs_the_margin_beyond_both():
    assert Check("a < b", _iv(1.0, 0.1), "<", _iv(1.5, 0.1)).holds
    assert not Check("a < b", _iv(1.0, 0.3), "<", _iv(1.5, 0.3)).holds  # 1.3 > 1.2
    assert Check("a > b", _iv(2.0, 0.2), ">", 1.7).holds
    assert not Check("a > b", _iv(2.0, 0.2), ">", 1.9).holds
    unbounded = Interval(None, 0.0, None, 0.95, "rotation", 100)  # [0, inf)
    assert not Check("gap < tol", unbounded, "<", 1.0).holds
    assert not Check("missing", None, "<", 1.0).holds


def test_a_verdict_turns_to_does_not_hold_when_the_margin_is_inside_the_error():
    """Two constructed samples whose means differ by 0.1: at n = 50 per side the difference is
    inside the intervals (about +-0.28 each), so the verdict does not hold whatever the point
    values say; at n = 20,000 (+-0.014) it holds. The text prints both sides with their errors."""
    g = torch.Generator().manual_seed(0)

    def verdict(n):
        a = mean_interval(torch.randn(n, generator=g, dtype=torch.float64))
        b = mean_interval(torch.randn(n, generator=g, dtype=torch.float64) + 0.1)
        check = Check("mean a < mean b", a, "<", b)
        return Verdict.judge([check], f"{check}"), a, b

    small, a, b = verdict(50)
    assert small.holds is False and small.text.startswith("does not hold: ")
    assert "+-" in small.text and str(a) in small.text and str(b) in small.text
    large, a, b = verdict(20_000)
    assert a.value < b.value and large.holds is True and large.text.startswith("holds: ")
