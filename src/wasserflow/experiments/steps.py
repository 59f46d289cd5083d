"""Experiment ``steps``: the NFE each method needs, from ``learned``'s numbers (no training).

For each method and sampler, NFE* is the smallest NFE of the grid whose W2 to fresh data is
within 10% of the method's own converged W2 (its W2 at the largest NFE):
W2(NFE*) <= 1.1 W2(NFE_max). The claim "OT flow matching needs far fewer sampling steps" is
read as: the median NFE* (probability-flow ODE) of the OT-coupled flows is below that of the
diffusion models (DDPM, NCSN, score-SDE VP and VE).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from ..metrics import Evaluation
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
    """One method's NFE* and converged W2 with the ODE and with its own sampler."""

    ode_nfe: int | None
    ode_converged_w2: float | None
    own_nfe: int | None
    own_converged_w2: float | None
    own_sampler: str
    family: str


@dataclass(frozen=True)
class StepsNumbers:
    """NFE* of every method, by data set (the data sets are the record's keys)."""

    data: dict[str, dict[str, StepsNeeded]] = field(metadata=FLATTEN)


def nfe_needed(
    rows: tuple[Evaluation, ...], within: float = WITHIN
) -> tuple[int | None, float | None]:
    """(NFE*, converged W2) from evaluation rows with fixed budgets (adaptive rows ignored)."""
    fixed = sorted((r for r in rows if r.nfe_requested is not None), key=lambda r: r.nfe_requested)
    if not fixed:
        return None, None
    conv = fixed[-1].w2
    for r in fixed:
        if r.w2 <= (1 + within) * conv:
            return r.nfe, conv
    return fixed[-1].nfe, conv


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
        "NFE within 10% of the converged W2",
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
    a, b = statistics.median(ot), statistics.median(diff)
    return Verdict.judge(
        [Check("median NFE* (ODE) of OT-coupled flows against diffusion models", a, "<", b)],
        f"median NFE* (ODE) {a:g} "
        f"for OT-coupled flows against {b:g} for diffusion models "
        f"({b / a:.1f}x)",
    )
