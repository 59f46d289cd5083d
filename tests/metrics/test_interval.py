"""Intervals against what they claim: coverage of known truths over replications, the W2
interval's width against the spread of W2 over independent replications, the bootstrap against
the closed-form standard error, and NFE* read off constructed rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from scipy import stats

from wasserflow.metrics import Interval
from wasserflow.metrics.interval import (
    bootstrap_interval,
    mean_interval,
    median_interval,
    replicate_interval,
    two_sided_z,
)
from wasserflow.metrics.quality import nfe_to_converge, w2_interval


def test_two_sided_z_is_the_normal_quantile():
    for level in (0.5, 0.9, 0.95, 0.99):
        assert two_sided_z(level) == pytest.approx(stats.norm.ppf(0.5 + level / 2), rel=1e-12)
    with pytest.raises(ValueError, match="level"):
        two_sided_z(1.0)


def test_mean_interval_covers_the_true_mean_at_its_level():
    """Exponential(1) terms (skewed), n = 200: the 95 % interval holds the mean 1 in 95 % of
    400 replications, within the binomial spread (0.93..0.97 is about +-2.6 sigma)."""
    g = torch.Generator().manual_seed(0)
    hits = 0
    for _ in range(400):
        terms = -torch.log(torch.rand(200, generator=g, dtype=torch.float64))
        hits += mean_interval(terms).contains(1.0)
    assert 0.92 <= hits / 400 <= 0.98


def test_w2_interval_width_matches_the_spread_over_replications():
    """Two different Gaussians in d = 2 (W2 well away from 0, where the CLT applies): the
    interval's standard error (half-width / z) against the standard deviation of W2 over 60
    independent replications of both samples."""
    g = torch.Generator().manual_seed(1)
    scale = torch.tensor([1.0, 0.5], dtype=torch.float64)
    values, ses = [], []
    for _ in range(60):
        x = torch.randn(300, 2, generator=g, dtype=torch.float64)
        y = torch.randn(300, 2, generator=g, dtype=torch.float64) * scale + 2.0
        iv = w2_interval(x, y)
        values.append(iv.value)
        ses.append(iv.half_width / two_sided_z(0.95))
    spread = torch.tensor(values).std().item()
    predicted = float(torch.tensor(ses).median())
    assert 0.7 < predicted / spread < 1.4, (predicted, spread)


def test_replicate_interval_covers_at_its_level_with_few_replicates():
    """R = 4 normal replicates: the Student-t interval holds the mean in 95 % of 2,000
    replications (binomial sd 0.5 %); the normal interval of the same four values covers only
    about 83 % (the t quantile on 3 degrees of freedom is 3.18, not 1.96)."""
    g = torch.Generator().manual_seed(3)
    draws = 2.0 + 0.3 * torch.randn(2000, 4, generator=g, dtype=torch.float64)
    t_hits = sum(replicate_interval(v).contains(2.0) for v in draws) / 2000
    z_hits = sum(mean_interval(v).contains(2.0) for v in draws) / 2000
    assert 0.935 <= t_hits <= 0.965, t_hits
    assert z_hits < 0.88, z_hits
    iv = replicate_interval(draws[0])
    assert (iv.method, iv.n) == ("replicates", 4)
    with pytest.raises(ValueError, match="at least 2 finite"):
        replicate_interval([1.0])
    with pytest.raises(ValueError, match="at least 2 finite"):
        replicate_interval([1.0, float("nan")])


def test_near_the_floor_the_w2_interval_overstates_the_spread_and_replicates_do_not():
    """Particles of a 2-D three-mode mixture against that mixture's own density on a grid (W2
    at its floor, the case of the ``paths`` experiment's OT geodesic): over 96 independent
    draws of 300 particles the central-limit half-width of one draw is more than 1.2x the
    spread of W2 it claims (z sd; 1.5x here), while the Student-t intervals of 24 groups of 4
    draws hold the mean of all 96 at about their level (22.8 of 24 expected, 21 here)."""
    from wasserflow.geometry import GaussianMixture, regular_grid

    mix = GaussianMixture.create(
        [0.3, 0.3, 0.4], [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], 0.25 * torch.eye(2).expand(3, 2, 2)
    )
    pts = regular_grid(-4.0, 4.0, (24, 24)).points()
    w = mix.log_prob(pts).exp()
    keep = w > 1e-9 * w.max()
    pts, w = pts[keep], w[keep] / w[keep].sum()
    g = torch.Generator().manual_seed(5)
    ivs = [w2_interval(mix.sample(300, g), pts, ref_weights=w) for _ in range(96)]
    v = torch.tensor([iv.value for iv in ivs], dtype=torch.float64)
    clt_sd = float(torch.tensor([iv.half_width for iv in ivs]).median()) / two_sided_z(0.95)
    assert clt_sd > 1.2 * float(v.std()), (clt_sd, float(v.std()))
    grand = float(v.mean())
    hits = sum(replicate_interval(group).contains(grand) for group in v.split(4))
    assert hits >= 20, hits


def test_bootstrap_interval_matches_the_standard_error_of_a_mean():
    """The bootstrap of a mean of n normal terms: its half-width within 25 % of z s / sqrt(n),
    at 40 resamples (percentile interval) and 20 (normal interval of the spread)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(400, generator=g, dtype=torch.float64) * 3.0
    expected = two_sided_z(0.95) * float(x.std()) / math.sqrt(400)
    for resamples in (20, 40, 200):
        iv = bootstrap_interval(
            lambda i: float(x[i].mean()),
            400,
            resamples=resamples,
            generator=torch.Generator().manual_seed(3),
        )
        assert iv.value == pytest.approx(float(x.mean()), rel=1e-12)
        assert iv.lower <= iv.value <= iv.upper
        assert iv.half_width == pytest.approx(expected, rel=0.35 if resamples < 100 else 0.25)


def test_median_interval_brackets_the_median():
    ivs = [Interval(v, v - 1, v + 1, 0.95, "mean", 10) for v in (1.0, 5.0, 2.0)]
    m = median_interval(ivs)
    assert (m.value, m.lower, m.upper) == (2.0, 1.0, 3.0)
    open_ended = median_interval([Interval(None, 0.0, None, 0.95, "x", 5)] * 3)
    assert open_ended.value is None and open_ended.upper is None


@dataclass
class _Row:  # the two fields nfe_to_converge reads of an Evaluation
    nfe_requested: int | None
    nfe: int
    w2: Interval | float


def test_nfe_to_converge_gives_the_budgets_the_intervals_allow():
    """W2 at 1, 2, 4, 8, 16 NFE with intervals of +-0.05 around 2.0, 1.3, 1.12, 1.05, 1.0:
    within 10 % of the converged 1.0 the point reading is 8 NFE (1.05 <= 1.1); the favourable
    reading (lower end 1.07 <= 1.1 * 1.05) 4 NFE; the unfavourable one (upper end <= 1.1 *
    0.95 = 1.045) none before 16."""

    def row(k, v):
        return _Row(k, k, Interval(v, v - 0.05, v + 0.05, 0.95, "clt", 100))

    rows = [row(1, 2.0), row(2, 1.3), row(4, 1.12), row(8, 1.05), row(16, 1.0)]
    iv = nfe_to_converge(rows, lambda r: r.w2, within=0.10)
    assert (iv.value, iv.lower, iv.upper) == (8.0, 4.0, 16.0)
    exact = [_Row(r.nfe_requested, r.nfe, r.w2.value) for r in rows]
    assert nfe_to_converge(exact, lambda r: r.w2).half_width == 0.0
    assert nfe_to_converge([_Row(None, 37, 1.0)], lambda r: r.w2) is None


def test_plain_drops_a_subclass_fields_and_keeps_the_interval():
    from wasserflow.metrics.quality import PairedDistance

    p = PairedDistance(0.5, 0.4, 0.6, 0.95, "paired", 100, against=64)
    q = p.plain()
    assert type(q) is Interval
    assert q.to_dict() == {k: v for k, v in p.to_dict().items() if k != "against"}
    i = Interval(1.0, 0.0, 2.0, 0.95, "t", 3)
    assert i.plain() is i
