"""A measured number with its confidence interval, and the two ways wasserflow gets one.

* :func:`mean_interval`: a mean of i.i.d. terms (per-curve path energies, per-pair costs) with
  the normal-approximation interval mean +- z s / sqrt(n);
* :func:`replicate_interval`: the mean of R independent replications of a statistic (each
  computed on its own fresh sample) with the Student-t interval on R - 1 degrees of freedom:
  no asymptotics in the statistic, where its own interval is not calibrated (W2 near its floor);
* :func:`bootstrap_interval`: a statistic of n samples (W2 to the data, a Frechet distance)
  recomputed on resamples of the samples drawn with replacement, the percentile interval of
  Efron & Tibshirani (1993), ch. 13 (B resamples; the statistic's own value is the estimate).

A verdict compares two :class:`Interval` s and holds only where their margin exceeds them
(:meth:`Interval.below`): "0.258 +- 0.010 against 0.371 +- 0.012".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import torch
from torch import Tensor


@dataclass(frozen=True)
class Interval:
    """``value`` (None where only bounds are known) in [``lower``, ``upper``] at ``level``,
    by ``method`` over ``n`` samples; ``upper`` None: no upper bound."""

    value: float | None
    lower: float
    upper: float | None
    level: float
    method: str
    n: int

    def __post_init__(self) -> None:
        if self.upper is not None and not self.lower <= self.upper:
            raise ValueError(f"an interval needs lower <= upper, got {self.lower}, {self.upper}")

    @property
    def half_width(self) -> float:
        return math.inf if self.upper is None else (self.upper - self.lower) / 2

    def contains(self, value: float) -> bool:
        return self.lower <= value and (self.upper is None or value <= self.upper)

    def below(self, other: Interval) -> bool:
        """Whether this interval lies entirely below ``other`` (a margin beyond both)."""
        return self.upper is not None and self.upper < other.lower

    def bracket(self) -> str:
        """``[lower, upper]`` (``inf`` for no upper bound)."""
        up = "inf" if self.upper is None else f"{self.upper:.4g}"
        return f"[{self.lower:.4g}, {up}]"

    def __str__(self) -> str:
        """ "0.258 +- 0.01" (symmetric), "0.258 [0.25, 0.31]" (not) or "[0, 1.34]" (no value)."""
        if self.value is None or self.upper is None:
            return self.bracket()
        hw = self.half_width
        if abs(self.value - (self.lower + self.upper) / 2) <= 0.05 * hw:
            return f"{self.value:.4g} +- {hw:.2g}"
        return f"{self.value:.4g} {self.bracket()}"

    def plain(self) -> Interval:
        """This interval as an :class:`Interval` itself, a subclass's own fields dropped (as
        records that hold plain intervals store it)."""
        if type(self) is Interval:
            return self
        return Interval(self.value, self.lower, self.upper, self.level, self.method, self.n)

    def to_dict(self) -> dict:
        return asdict(self)


def two_sided_z(level: float) -> float:
    """z with P(|N(0, 1)| <= z) = level."""
    if not 0.5 <= level < 1:
        raise ValueError(f"level must be in [0.5, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def mean_interval(terms: Tensor, level: float = 0.95) -> Interval:
    """The mean of the (n,) i.i.d. ``terms`` and its two-sided normal interval."""
    t = torch.as_tensor(terms, dtype=torch.float64).reshape(-1)
    if t.numel() < 2 or not torch.isfinite(t).all():
        raise ValueError(f"a mean interval needs at least 2 finite terms, got {t.numel()}")
    m = float(t.mean())
    half = two_sided_z(level) * float(t.std()) / math.sqrt(t.numel())
    return Interval(m, m - half, m + half, level, "mean", t.numel())


def replicate_interval(values: Sequence[float] | Tensor, level: float = 0.95) -> Interval:
    """The mean of R independent replications of a statistic (``values`` (R,): the statistic
    on R fresh samples of one size) and its Student-t interval mean +- t_{R-1} s / sqrt(R).

    It needs nothing of the statistic but independent draws, so it stays calibrated where a
    single draw's asymptotic interval is not: exact W2 of particles near the floor of their
    measure, whose central-limit interval (:func:`~wasserflow.metrics.quality.w2_interval`) was
    1.3-2.0x too wide against the spread of 20 replications in the ``paths`` experiment (the
    empirical dual potentials of a degenerate LP vary more than the population ones). The mean
    keeps the statistic's bias at that sample size: compare replicate means at equal sizes."""
    from scipy.stats import t as student_t  # scipy: a core dependency, imported where used

    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if v.numel() < 2 or not torch.isfinite(v).all():
        raise ValueError(f"a replicate interval needs at least 2 finite values, got {v.numel()}")
    two_sided_z(level)  # checks level
    r = v.numel()
    m = float(v.mean())
    half = float(student_t.ppf(0.5 + level / 2, r - 1)) * float(v.std()) / math.sqrt(r)
    return Interval(m, m - half, m + half, level, "replicates", r)


def bootstrap_interval(
    statistic: Callable[[Tensor], float],
    n: int,
    *,
    resamples: int = 20,
    level: float = 0.95,
    generator: torch.Generator | None = None,
    value: float | None = None,
) -> Interval:
    """``statistic(idx)`` of the n samples (idx = arange(n); ``value`` when already computed)
    and its interval over ``resamples`` index draws with replacement (the statistic picks its
    samples by ``idx``; the draws are :func:`resample_indices`): the percentile interval from
    40 resamples on, below that the normal interval of the resamples' spread
    (:func:`resampled_interval`)."""
    if resamples < 2:
        raise ValueError(f"the bootstrap needs at least 2 resamples, got {resamples}")
    two_sided_z(level)  # checks level
    value = float(statistic(torch.arange(n))) if value is None else float(value)
    boots = torch.tensor(
        [float(statistic(i)) for i in resample_indices(n, resamples, generator)],
        dtype=torch.float64,
    )
    return resampled_interval(value, boots, level, n)


def resample_indices(
    n: int, resamples: int, generator: torch.Generator | None = None
) -> list[Tensor]:
    """``resamples`` draws of n indices with replacement (a default generator seeded 0): one
    generator seed gives the same draws, so two statistics of paired samples resampled with it
    are resampled together."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    return [torch.randint(n, (n,), generator=g) for _ in range(resamples)]


def resampled_interval(value: float, boots: Tensor, level: float, n: int) -> Interval:
    """``value`` with the interval of its bootstrap replicates ``boots``: their percentile
    interval from 40 replicates on, below that the normal interval of their spread."""
    z = two_sided_z(level)
    boots = torch.as_tensor(boots, dtype=torch.float64)
    a = (1 - level) / 2
    lo, hi = float(torch.quantile(boots, a)), float(torch.quantile(boots, 1 - a))
    if boots.numel() < 40:  # too few for tail quantiles: the normal interval of their spread
        half = z * float(boots.std())
        lo, hi = value - half, value + half
    return Interval(value, min(lo, value), max(hi, value), level, "bootstrap", n)


def median_interval(intervals: Sequence[Interval]) -> Interval:
    """The median of numbers known within intervals: the median of the values within the
    medians of the lower and of the upper ends (the median is monotone in each number)."""
    if not intervals:
        raise ValueError("the median of no intervals")
    values = [iv.value for iv in intervals]
    ups = [iv.upper for iv in intervals]
    return Interval(
        None if None in values else statistics.median(values),
        statistics.median(iv.lower for iv in intervals),
        None if None in ups else statistics.median(ups),
        min(iv.level for iv in intervals),
        "median",
        len(intervals),
    )
