"""Two samplers' outputs from the same noise compared pair by pair: their paired distance
(coverage of its interval on a closed form; Euler's first order on a curved path, one exact
step on a straight one, the OT path between two Gaussians) and the ratio of their W2 to one
reference (its interval against Monte Carlo), and the NFE* readings the ratio gives."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from wasserflow.interop import from_callable
from wasserflow.metrics import (
    Interval,
    evaluate_run,
    nfe_to_converge,
    paired_distance,
    paired_fd_ratio,
)
from wasserflow.metrics.interval import two_sided_z
from wasserflow.metrics.quality import PairedDistance, paired_w2_ratio, w2_dual


def test_the_interval_covers_the_closed_form_at_its_level():
    """y = x + c u with u ~ N(0, I_d) independent of x: sqrt(E|x - y|^2) = c sqrt(d)."""
    g = torch.Generator().manual_seed(0)
    c, d, hits = 0.3, 5, 0
    for _ in range(300):
        x = torch.randn(400, d, generator=g, dtype=torch.float64)
        y = x + c * torch.randn(400, d, generator=g, dtype=torch.float64)
        hits += paired_distance(x, y).contains(c * math.sqrt(d))
    assert 0.92 <= hits / 300 <= 0.98
    same = paired_distance(x, x)
    assert (same.value, same.lower, same.upper) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="one shape"):
        paired_distance(x, y[:10])


def test_the_paired_w2_ratio_interval_matches_its_spread_over_replications():
    """a = 1.3 z and b = 1.5 z from the same noise z ~ N(0, I_2), each against one fresh
    reference sample of N(0, I) (n = 800): the predicted standard error of W2(a) / W2(b)
    (half-width / z) against the standard deviation of the ratio over 40 replications of z and
    the reference (1.09x at n = 1,000, 1.56x at n = 300: conservative where the two exact
    problems' dual potentials, each one vertex of a degenerate LP, cancel less); and a quarter
    of W2's own relative interval or less."""
    g = torch.Generator().manual_seed(2)
    values, ses, own = [], [], []
    for _ in range(40):
        z = torch.randn(800, 2, generator=g, dtype=torch.float64)
        y = torch.randn(800, 2, generator=g, dtype=torch.float64)
        da, db = w2_dual(1.3 * z, y), w2_dual(1.5 * z, y)
        iv = paired_w2_ratio(da, db)
        values.append(iv.value)
        ses.append(iv.half_width / two_sided_z(0.95))
        own.append(db.interval().half_width / db.w2)
    spread = torch.tensor(values).std().item()
    predicted = float(torch.tensor(ses).median())
    assert 0.8 < predicted / spread < 1.5, (predicted, spread)
    assert predicted * two_sided_z(0.95) < 0.25 * float(torch.tensor(own).median())
    with pytest.raises(ValueError, match="one size"):
        paired_w2_ratio(da, w2_dual(z[:100], y))


@dataclass
class _Row:  # the fields nfe_to_converge reads of an Evaluation
    nfe_requested: int | None
    nfe: int
    w2: Interval
    w2_ratio: PairedDistance | None = None


def test_the_paired_ratio_gives_the_nfe_readings():
    """The rows of test_interval's NFE* test (point 8, range [4, 16] from the overlap of the W2
    intervals); with the ratios to 16 NFE 1.9, 1.3, 1.12 +- 0.01, 1.05 +- 0.01, 1, the three
    readings are all 8 (1.13 > 1.1 >= 1.06); rows whose ratio is to another budget (e.g. each
    from its own call) are not read."""
    w2 = {1: 2.0, 2: 1.3, 4: 1.12, 8: 1.05, 16: 1.0}
    ratio = {1: 1.9, 2: 1.3, 4: 1.12, 8: 1.05, 16: 1.0}

    def row(k, against=16):
        q = ratio[k]
        return _Row(
            k,
            k,
            Interval(w2[k], w2[k] - 0.05, w2[k] + 0.05, 0.95, "clt", 100),
            PairedDistance(q, q - 0.01, q + 0.01, 0.95, "paired-clt", 100, against),
        )

    rows = [row(k) for k in w2]
    plain = nfe_to_converge(rows, lambda r: r.w2)
    assert (plain.value, plain.lower, plain.upper) == (8.0, 4.0, 16.0)
    sharp = nfe_to_converge(rows, lambda r: r.w2, paired=lambda r: r.w2_ratio)
    assert (sharp.value, sharp.lower, sharp.upper) == (8.0, 8.0, 8.0)
    alone = [row(k, against=k) for k in w2]
    assert nfe_to_converge(alone, lambda r: r.w2, paired=lambda r: r.w2_ratio) == plain


def _gaussian_model(ot: bool, s: float):
    """The linear path from N(0, I) to N(0, s^2 I) with its exact marginal velocity: under the
    OT coupling x1 = s x0 (straight lines at constant speed, v = (s - 1) x / (1 - t + t s)),
    under the independent one sigma_t^2 = (1 - t)^2 + t^2 s^2 and v = (sigma_t' / sigma_t) x."""

    def velocity(x, t):
        t = t.reshape(-1, *([1] * (x.dim() - 1)))
        if ot:
            return (s - 1.0) * x / (1.0 - t + t * s)
        var = (1 - t) ** 2 + t**2 * s**2
        return (t * s**2 - (1 - t)) / var * x

    return from_callable(velocity, "velocity", "linear", shape=(2,))


def test_euler_on_the_straight_path_is_converged_at_one_step_and_first_order_on_the_curved():
    s, g = 3.0, torch.Generator().manual_seed(1)
    data = s * torch.randn(500, 2, generator=g, dtype=torch.float64)
    budgets = [1, 2, 4, 8, 16, 32, 64]
    straight = evaluate_run(_gaussian_model(True, s), budgets, n=500, data=data, geometry=False)
    assert all(r.to_converged.upper < 1e-10 and r.to_converged.against == 64 for r in straight)
    assert all(abs(r.w2_ratio.value - 1) < 1e-9 and r.w2_ratio.half_width < 1e-6 for r in straight)
    nfe = nfe_to_converge(straight, lambda r: r.w2_interval, paired=lambda r: r.w2_ratio)
    assert (nfe.value, nfe.upper) == (1.0, 1.0)
    curved = evaluate_run(_gaussian_model(False, s), budgets, n=500, data=data, geometry=False)
    d = {r.nfe_requested: r.to_converged.value for r in curved}
    # Euler's global error is first order: the distance to 64 steps halves with each doubling
    # (up to the 1/64 left in the reference: e(k) - e(64) with e(k) ~ C / k)
    ratios = [(d[k] / d[2 * k]) for k in (4, 8, 16)]
    expected = [(1 / k - 1 / 64) / (1 / (2 * k) - 1 / 64) for k in (4, 8, 16)]
    for r, e in zip(ratios, expected, strict=True):
        assert r == pytest.approx(e, rel=0.15)
    assert d[64] == 0.0 and d[1] > d[2] > d[4]


def test_the_paired_fd_ratio_cancels_the_shared_noise():
    """Features z + m2 and z + m1 of one noise z ~ N(0, I_8) against a reference N(0, I_8):
    FD is |m|^2 plus a small covariance term, so the ratio is near |m2|^2 / |m1|^2 = 1.21;
    its paired interval holds it and is far narrower than the ratio of FD's own intervals."""
    from wasserflow.metrics import frechet_distance

    g = torch.Generator().manual_seed(3)
    z = torch.randn(2000, 8, generator=g, dtype=torch.float64)
    ref = torch.randn(4000, 8, generator=g, dtype=torch.float64)
    m1, m2 = torch.full((8,), 0.5, dtype=torch.float64), torch.full((8,), 0.55, dtype=torch.float64)
    iv = paired_fd_ratio(z + m2, z + m1, ref, resamples=40, generator=g)
    exact = frechet_distance(z + m2, ref).value / frechet_distance(z + m1, ref).value
    assert iv.value == pytest.approx(exact) and iv.contains(1.21)
    # each FD's own bootstrap interval is about +-4 % (2.39 [2.31, 2.51], 1.98 [1.90, 2.09]):
    # their ratio would be about +-0.1; the paired one is +-0.007
    assert iv.half_width < 0.02
    with pytest.raises(ValueError, match="one shape"):
        paired_fd_ratio(z, z[:10], ref)
