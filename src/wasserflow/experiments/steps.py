"""Experiment ``steps``: the NFE each method needs, from ``learned``'s numbers (no training).

For each method and sampler, NFE* is the smallest NFE of the grid whose W2 to fresh data is
within 10% of the method's own converged W2 (its W2 at the largest NFE):
W2(NFE*) <= 1.1 W2(NFE_max), with the range W2's intervals allow
(:func:`~wasserflow.metrics.nfe_to_converge`), read off the ratio W2(k) / W2(NFE_max) of the
samples drawn from the same noise, whose paired interval does not carry W2's sampling error
twice (``Evaluation.w2_ratio``). The claim "OT flow matching needs far fewer
sampling steps" is read as: the median NFE* (probability-flow ODE) of the OT-coupled flows is
below that of the diffusion models (DDPM, NCSN, score-SDE VP and VE), by more than those ranges
(the largest OT-coupled reading against the smallest diffusion one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..metrics import Evaluation, Interval, median_interval, nfe_to_converge
from . import figures
from .context import Check, Context, ExperimentResult, Figure, Table, Verdict, table
from .learned import LearnedNumbers
from .records import FLATTEN, to_json
from .registry import register_experiment

CLAIM = (
    "Straight (OT) paths need far fewer sampling steps: the NFE at which W2 comes within "
    "10% of its converged value is smaller for OT-coupled flows than for diffusion models."
)
WITHIN = 0.10
OT_FAMILIES = ("ot-flow", "ot-bridge")  # learned.family: OT-CFM, rectified flow, SB-CFM


@dataclass(frozen=True)
class StepsNeeded:
    """One method's NFE* (with its range) and converged W2 (with its interval), with the ODE
    and with its own sampler."""

    ode_nfe: Interval | None
    ode_converged_w2: Interval | None
    own_nfe: Interval | None
    own_converged_w2: Interval | None
    own_sampler: str
    family: str


@dataclass(frozen=True)
class StepsNumbers:
    """NFE* of every method, by data set (the data sets are the record's keys)."""

    data: dict[str, dict[str, StepsNeeded]] = field(metadata=FLATTEN)


def _w2(row: Evaluation) -> Interval | float:
    return row.w2_interval if row.w2_interval is not None else row.w2


def nfe_needed(
    rows: tuple[Evaluation, ...], within: float = WITHIN
) -> tuple[Interval | None, Interval | None]:
    """(NFE*, converged W2) from evaluation rows with fixed budgets (adaptive rows ignored)."""
    fixed = [r for r in rows if r.nfe_requested is not None]
    if not fixed:
        return None, None
    conv = max(fixed, key=lambda r: r.nfe_requested)
    return nfe_to_converge(fixed, _w2, within, paired=lambda r: r.w2_ratio), conv.w2_interval


def measure(learned: LearnedNumbers) -> StepsNumbers:
    out: dict[str, dict[str, StepsNeeded]] = {}
    for d, recs in learned.runs.items():
        out[d] = {}
        for m, r in recs.items():
            ode, ode_conv = nfe_needed(r.ode)
            own, own_conv = nfe_needed(r.own)
            out[d][m] = StepsNeeded(ode, ode_conv, own, own_conv, r.own_sampler, r.family)
    return StepsNumbers(out)


@register_experiment("steps", None, title="Steps needed", order=30, requires=("learned",))
def run(ctx: Context) -> ExperimentResult:
    t0 = time.perf_counter()
    numbers = measure(ctx.results["learned"].record(LearnedNumbers))
    return ExperimentResult(
        name="steps",
        title="Steps needed",
        claim=CLAIM,
        verdict=verdict(numbers),
        numbers=to_json(numbers),
        seconds=time.perf_counter() - t0,
        figures=[_figure(ctx, d, recs) for d, recs in numbers.data.items()],
        tables=[_table(numbers)],
    )


def _table(n: StepsNumbers) -> Table:
    return table(
        "NFE within 10% of the converged W2 (the range its 95 % intervals allow)",
        [
            "data",
            "method",
            "NFE* (ODE)",
            "converged W2 (ODE)",
            "own sampler",
            "NFE* (own)",
            "converged W2 (own)",
        ],
        [
            [d, m, r.ode_nfe, r.ode_converged_w2, r.own_sampler, r.own_nfe, r.own_converged_w2]
            for d, recs in n.data.items()
            for m, r in recs.items()
        ],
    )


def _figure(ctx: Context, d: str, recs: dict[str, StepsNeeded]) -> Figure:
    ms = list(recs)
    x = list(range(len(ms)))
    return figures.curves(
        ctx.figures,
        f"steps-{d}",
        f"{d}: NFE needed to reach 1.1 x converged W2",
        [
            figures.Series(
                x,
                [recs[m].ode_nfe for m in ms],
                "probability-flow ODE (Euler); x = " + ", ".join(ms),
                "o",
            ),
            figures.Series(x, [recs[m].own_nfe for m in ms], "own sampler", "s"),
        ],
        xlabel="method index",
        ylabel="NFE*",
        logy=True,
    )


def verdict(n: StepsNumbers) -> Verdict:
    rows = [r for recs in n.data.values() for r in recs.values()]
    ot = [r.ode_nfe for r in rows if r.family in OT_FAMILIES and r.ode_nfe]
    diff = [r.ode_nfe for r in rows if r.family == "diffusion" and r.ode_nfe]
    if not ot or not diff:
        return Verdict(
            None,
            "not decided: needs at least one OT-coupled flow and one diffusion "
            "model among --methods",
        )
    a, b = median_interval(ot), median_interval(diff)
    return Verdict.judge(
        [Check("median NFE* (ODE) of OT-coupled flows against diffusion models", a, "<", b)],
        f"median NFE* (ODE) {a.value:g} (range {a.bracket()}) for OT-coupled flows against "
        f"{b.value:g} ({b.bracket()}) for diffusion models ({b.value / a.value:.1f}x)",
    )
