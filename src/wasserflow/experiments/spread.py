"""One experiment over several seeds: its verdict on each and the spread of what it compares.

A run with ``seeds > 1`` (the ``full`` profile: 3) runs every experiment once per seed, each in
its own folder (``seed-<s>/``, a complete one-seed run: its own trainings, samples, report).
:func:`across_seeds` joins one experiment's results into the run's: the verdict holds only
where it holds on every seed, and a table gives each :class:`~.context.Check` of the verdict per
seed (with its interval, as the seed's verdict compared it) and the spread of its point values
over the seeds (mean, sample standard deviation, min and max). The per-seed intervals measure
the sampling error of one trained model; the spread over seeds adds the training's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ..metrics import Interval
from .context import Check, ExperimentResult, Figure, Measured, Table, Verdict


def point(v: Measured) -> float | None:
    """The point value of a measured number: the number, an interval's value (its midpoint
    where it has none), or None (not computed, or a one-sided interval without a value)."""
    if v is None:
        return None
    if isinstance(v, Interval):
        if v.value is not None:
            return v.value
        return None if v.upper is None else (v.lower + v.upper) / 2
    return float(v)


@dataclass(frozen=True)
class Spread:
    """Point values over seeds (None where a seed has none), written as their mean, sample
    standard deviation, count, min and max (one number where they are all equal)."""

    values: tuple[float | None, ...]

    @property
    def finite(self) -> list[float]:
        return [v for v in self.values if v is not None and math.isfinite(v)]

    def __str__(self) -> str:
        xs = self.finite
        if not xs:
            return "n/a"
        if min(xs) == max(xs):
            return f"{xs[0]:.4g}"  # e.g. a fixed tolerance
        sd = statistics.stdev(xs)
        return (
            f"{statistics.fmean(xs):.4g} +- {sd:.2g} (sd of {len(xs)}; "
            f"{min(xs):.4g} to {max(xs):.4g})"
        )


def _checks_by_name(results: Sequence[ExperimentResult]) -> dict[str, list[Check | None]]:
    """Each check's ``what`` (in the order first met) with its check on every seed (None
    where that seed's verdict has no such check)."""
    names: dict[str, list[Check | None]] = {}
    for i, r in enumerate(results):
        for c in r.verdict.checks:
            row = names.setdefault(c.what, [None] * len(results))
            if row[i] is None:
                row[i] = c
    return names


def spread_table(seeds: Sequence[int], results: Sequence[ExperimentResult]) -> Table:
    """The checks of the verdicts over ``seeds``: each seed's comparison, the spread of its
    value and of its bound, and on how many seeds it holds."""
    rows = []
    for what, checks in _checks_by_name(results).items():
        present = [c for c in checks if c is not None]
        rows.append(
            [
                what,
                *(str(c) if c is not None else "-" for c in checks),
                str(Spread(tuple(point(c.value) if c else None for c in checks))),
                str(Spread(tuple(point(c.bound) if c else None for c in checks))),
                f"{sum(c.holds for c in present)} of {len(checks)}",
            ]
        )
    columns = ["check", *(f"seed {s}" for s in seeds), "value over seeds", "bound over seeds"]
    return Table("The verdict's checks on each seed", [*columns, "holds on"], rows)


def _verdict(seeds: Sequence[int], results: Sequence[ExperimentResult]) -> Verdict:
    holds = [r.verdict.holds for r in results]
    failed = [(s, r) for s, r in zip(seeds, results, strict=True) if r.verdict.holds is False]
    pending = [s for s, h in zip(seeds, holds, strict=True) if h is None]
    n = len(results)
    if failed:
        s, r = failed[0]
        text = (
            f"does not hold: holds on {holds.count(True)} of {n} seeds; seed {s}: {r.verdict.text}"
        )
        return Verdict(False, text)
    if pending:
        return Verdict(None, f"pending on seed(s) {', '.join(map(str, pending))}")
    first = results[0].verdict.text.removeprefix("holds: ")
    return Verdict(True, f"holds on every one of {n} seeds; seed {seeds[0]}: {first}")


def across_seeds(
    seeds: Sequence[int], results: Sequence[ExperimentResult], folders: Sequence[str]
) -> ExperimentResult:
    """One experiment's ``results`` on ``seeds`` (run in the run folder's sub-``folders``) as
    one result: the joint verdict, the spread table, the first seed's tables and figures
    (labelled with its seed) and each seed's numbers under ``per_seed``."""
    if not results or len(results) != len(seeds) or len(folders) != len(seeds):
        raise ValueError("across_seeds needs one result and one folder per seed")
    first = results[0]
    tables = [spread_table(seeds, results)]
    tables += [Table(f"{t.title} (seed {seeds[0]})", t.columns, t.rows) for t in first.tables]
    figures = [
        Figure(f"{folders[0]}/{f.file}", f"{f.caption} (seed {seeds[0]})") for f in first.figures
    ]
    notes = [
        *first.notes,
        "Each seed's own report: " + ", ".join(f"{f}/report.html" for f in folders),
    ]
    return ExperimentResult(
        name=first.name,
        title=first.title,
        claim=first.claim,
        verdict=_verdict(seeds, results),
        numbers={
            "seeds": list(seeds),
            "per_seed": {str(s): r.numbers for s, r in zip(seeds, results, strict=True)},
        },
        tables=tables,
        figures=figures,
        notes=notes,
        seconds=sum(r.seconds for r in results),
    )
