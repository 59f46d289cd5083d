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

from . import figures
from .context import Context, ExperimentResult, Verdict, table

CLAIM = (
    "Straight (OT) paths need far fewer sampling steps: the NFE at which W2 comes within "
    "10% of its converged value is smaller for OT-coupled flows than for diffusion models."
)
WITHIN = 0.10
OT_FAMILIES = ("ot-flow", "ot-bridge")  # learned.family: OT-CFM, rectified flow, SB-CFM


def nfe_needed(rows: list[dict], within: float = WITHIN) -> tuple[int | None, float | None]:
    """(NFE*, converged W2) from evaluation rows with fixed budgets (adaptive rows ignored)."""
    fixed = sorted(
        (r for r in rows if r["nfe_requested"] is not None), key=lambda r: r["nfe_requested"]
    )
    if not fixed:
        return None, None
    conv = fixed[-1]["w2"]
    for r in fixed:
        if r["w2"] <= (1 + within) * conv:
            return r["nfe"], conv
    return fixed[-1]["nfe"], conv


def run(ctx: Context) -> ExperimentResult:
    t0 = time.perf_counter()
    learned = ctx.results["learned"].numbers["runs"]
    out: dict = {}
    rows = []
    for d, recs in learned.items():
        out[d] = {}
        for m, r in recs.items():
            ode, ode_conv = nfe_needed(r["ode"])
            own, own_conv = nfe_needed(r["own"])
            out[d][m] = {
                "ode_nfe": ode,
                "ode_converged_w2": ode_conv,
                "own_nfe": own,
                "own_converged_w2": own_conv,
                "own_sampler": r["own_sampler"],
                "family": r["family"],
            }
            rows.append([d, m, ode, ode_conv, r["own_sampler"], own, own_conv])
    figs = []
    for d in out:
        ms = list(out[d])
        figs.append(
            figures.curves(
                ctx.figures,
                f"steps-{d}",
                f"{d}: NFE needed to reach 1.1 x converged W2",
                [
                    {
                        "x": list(range(len(ms))),
                        "y": [out[d][m]["ode_nfe"] for m in ms],
                        "label": "probability-flow ODE (Euler); x = " + ", ".join(ms),
                        "style": "o",
                    },
                    {
                        "x": list(range(len(ms))),
                        "y": [out[d][m]["own_nfe"] for m in ms],
                        "label": "own sampler",
                        "style": "s",
                    },
                ],
                xlabel="method index",
                ylabel="NFE*",
                logy=True,
            )
        )
    return ExperimentResult(
        name="steps",
        title="Steps needed",
        claim=CLAIM,
        verdict=_verdict(out),
        numbers=out,
        seconds=time.perf_counter() - t0,
        figures=figs,
        tables=[
            table(
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
                rows,
            )
        ],
    )


def _verdict(out: dict) -> Verdict:
    ot = [
        r["ode_nfe"]
        for d in out
        for r in out[d].values()
        if r["family"] in OT_FAMILIES and r["ode_nfe"]
    ]
    diff = [
        r["ode_nfe"]
        for d in out
        for r in out[d].values()
        if r["family"] == "diffusion" and r["ode_nfe"]
    ]
    if not ot or not diff:
        return Verdict(
            None,
            "not decided: needs at least one OT-coupled flow and one diffusion "
            "model among --methods",
        )
    a, b = statistics.median(ot), statistics.median(diff)
    holds = a < b
    return Verdict(
        holds,
        f"{'holds' if holds else 'does not hold'}: median NFE* (ODE) {a:g} "
        f"for OT-coupled flows against {b:g} for diffusion models "
        f"({b / a:.1f}x)",
    )
