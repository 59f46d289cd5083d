"""Experiment ``one-step``: does a flow map's one-step error grow with the curvature of the path
it learns? (from ``learned``'s and ``images``' numbers, no training).

A flow map learns the jumps X(x, t, s) of an ODE; on a straight path (a geodesic) the average
velocity of every jump is the instantaneous one, so the one-jump map is as easy to learn as the
velocity, and every bend of the path is something one jump must learn on top
(:mod:`wasserflow.objectives.flowmap`). For each flow-map model of the report (``learned``'s on
each 2-D data set, ``images``' on the digits) three numbers, each with its 95 % interval:

* the one-step error: how far one jump lands from where the model's many small jumps (its
  largest budget K, its converged path) take the same noise, sqrt(E|X_1(z) - X_K(z)|^2) in
  data units (``Evaluation.to_converged``, :func:`~wasserflow.metrics.paired_distance`: i.i.d.
  pairs, an interval that shrinks with the distance). It is the error flow-map matching
  minimises against its target map (Boffi et al. 2024), and it needs no distance to the data:
  the W2 of a good model lies near its sampling floor, where one draw's W2 interval is wide
  (``paths``: 1.3-2x wider than the spread of draws);
* the excess of the model's distance to the data at one jump over its distance at K, W2(1) /
  W2(K) - 1 in 2-D, FD(1) / FD(K) - 1 on images, with the paired interval of the ratio (both
  budgets sample the same noise against the same data: ``Evaluation.w2_ratio`` /
  ``fd_ratio``; the difference of the two intervals where a record has no ratio);
* the curvature of the path it learns: the curvature PE - E|x1 - x0|^2 of its jumps at K
  (:mod:`wasserflow.metrics.path_energy`), i.e. of the ODE of its instantaneous velocity
  (MeanFlow, shortcut) or of the teacher's ODE it was distilled from, as it learned it.

The profiles train two flow maps by default whose paths differ most: ``shortcut`` (independent
pairs, the curved path of I-CFM) and ``flowmap-distill`` (the report's OT-CFM run as teacher, a
nearly straight path); ``full`` adds ``meanflow`` and ``meanflow-ot``, and ``--methods`` names
any. The claim is read on each data set with at least two flow maps: the model whose path is the
most curved has the larger one-step error than the least curved one, each by more than both
intervals (two checks: the curvatures differ, and the errors differ the same way). A data set
whose flow maps' curvatures are not measurably different tests nothing and is named and left out
(the digits of the default profile on seed 1: shortcut 2.429 +- 0.036 against the distilled
map's 2.422 +- 0.029; in 64-D minibatch OT straightens the teacher's path little).

The one-step error needs its reference, a converged path: a model whose many jumps are
measurably farther from the data than its one (the excess's interval below 0) has not learned
its small jumps u(x, t, t), and is named and left out of the comparison; a data set left with
fewer than two flow maps decides nothing. A MeanFlow trained for the default profile's 600
steps is such a model (moons: W2 0.71 at one jump, 1.07 at 100, excess -0.34 +- 0.14; the
digits: -0.03 +- 0.009), which is why the default curved map is ``shortcut``: it trains its
instantaneous velocity by flow matching on a share of every batch, so its K jumps are its ODE.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..metrics import Evaluation, Interval
from .context import Check, Context, ExperimentResult, Table, Verdict, table
from .images_exp import ImagesNumbers
from .learned import FLOW_MAP, LearnedNumbers
from .records import FLATTEN, to_json
from .registry import register_experiment

CLAIM = (
    "A flow map's one-step error grows with the curvature of the path it learns (its own ODE's "
    "or its teacher's): the more curved path gives the larger one-step error."
)


@dataclass(frozen=True)
class OneStep:
    """One flow map's one-step error (the paired distance of its one jump to its ``nfe`` jumps
    from the same noise), the relative excess of ``metric`` at one jump over ``nfe`` jumps and
    the curvature of its jumps at ``nfe``, with the metric at both budgets (module doc)."""

    metric: str
    one_jump: Interval
    converged: Interval
    nfe: int
    excess: Interval
    error: Interval
    curvature: Interval


@dataclass(frozen=True)
class OneStepNumbers:
    """The flow maps' numbers by data set (the data sets are the record's keys)."""

    data: dict[str, dict[str, OneStep]] = field(metadata=FLATTEN)


def _point(v: float) -> Interval:
    return Interval(v, v, v, 1.0, "point", 0)


def difference(a: Interval, b: Interval) -> Interval:
    """a - b within the interval the two allow: from a's lower end less b's upper end to a's
    upper end less b's lower end (no upper end where a has none; b's value where b has no
    upper end: W2's and FD's intervals always have one)."""
    b_up = b.value if b.upper is None else b.upper
    up = None if a.upper is None else a.upper - b.lower
    value = None if a.value is None or b.value is None else a.value - b.value
    return Interval(value, a.lower - b_up, up, min(a.level, b.level), "difference", min(a.n, b.n))


def one_step(rows: tuple[Evaluation, ...], metric: str) -> OneStep | None:
    """:class:`OneStep` of a flow map from its jumps' evaluations ("w2" or "fd"), or None
    without one jump, a larger budget, the geometry at it or the paired distance to it."""
    fixed = sorted((r for r in rows if r.nfe_requested is not None), key=lambda r: r.nfe)
    if len(fixed) < 2 or fixed[0].nfe != 1 or fixed[-1].geometry is None:
        return None
    first, top = fixed[0], fixed[-1]
    paired = first.to_converged
    if paired is None or paired.against != top.nfe_requested:
        return None

    def value(r: Evaluation) -> Interval | None:
        iv = r.w2_interval if metric == "w2" else r.fd_interval
        raw = r.w2 if metric == "w2" else r.fd
        return iv if iv is not None else (None if raw is None else _point(raw))

    one, conv = value(first), value(top)
    if one is None or conv is None:
        return None
    excess = _excess(first, top, metric, one, conv)
    return OneStep(metric, one, conv, top.nfe, excess, paired.plain(), top.geometry.curvature)


def _excess(first: Evaluation, top: Evaluation, metric: str, one: Interval, conv: Interval):
    """metric(1 jump) / metric(top) - 1: from the paired ratio where the row has it (against
    ``top``), else from the difference of the two intervals over the converged value."""
    ratio = first.w2_ratio if metric == "w2" else first.fd_ratio
    if ratio is not None and ratio.against == top.nfe_requested:
        up = None if ratio.upper is None else ratio.upper - 1
        return Interval(ratio.value - 1, ratio.lower - 1, up, ratio.level, "paired ratio", ratio.n)
    d, c = difference(one, conv), max(conv.value, 1e-300)
    up = None if d.upper is None else d.upper / c
    return Interval(d.value / c, d.lower / c, up, d.level, "difference", d.n)


def measure(learned: LearnedNumbers | None, images: ImagesNumbers | None) -> OneStepNumbers:
    out: dict[str, dict[str, OneStep]] = {}
    for d, recs in (learned.runs if learned else {}).items():
        found = {m: one_step(r.own, "w2") for m, r in recs.items() if r.family == FLOW_MAP}
        out[d] = {m: s for m, s in found.items() if s is not None}
    if images is not None:
        found = {m: one_step(r.ode, "fd") for m, r in images.runs.items() if r.family == FLOW_MAP}
        out[images.data] = {m: s for m, s in found.items() if s is not None}
    return OneStepNumbers({d: v for d, v in out.items() if v})


def unreferenced(s: OneStep) -> bool:
    """True where the model's many jumps are measurably farther from the data than its one (the
    excess's upper end below 0): its small jumps are not learned, so the largest budget is no
    converged path and the one-step error says nothing about the path's curvature."""
    return s.excess.upper is not None and s.excess.upper < 0


def verdict(n: OneStepNumbers) -> Verdict:
    """Per data set, the most against the least curved of the flow maps that have a reference
    (:func:`unreferenced` ones are named and left out), where their curvatures differ beyond
    both intervals (a data set where they do not cannot test how the error grows with the
    curvature: named, and left out); pending where no data set is left."""
    checks, parts, left_out = [], [], []
    for d, found in n.data.items():
        recs = {m: s for m, s in found.items() if not unreferenced(s)}
        left_out += [
            f"{d}: {m}'s {s.nfe} jumps are farther from the data than its one ({s.metric} "
            f"1 jump / {s.nfe} - 1 = {s.excess}): its small jumps are not learned, no reference"
            for m, s in found.items()
            if m not in recs
        ]
        if len(recs) < 2:
            continue
        ranked = sorted(recs, key=lambda m: recs[m].curvature.value)
        lo, hi = ranked[0], ranked[-1]
        a, b = recs[hi], recs[lo]
        curved = Check(f"{d}: curvature of {hi} against {lo}", a.curvature, ">", b.curvature)
        if not curved.holds:  # the curvature does not vary here: no test of the claim
            left_out.append(
                f"{d}: the curvatures are not measurably different ({hi} {a.curvature}, {lo} "
                f"{b.curvature}; one-step errors {a.error} and {b.error}): no test"
            )
            continue
        checks += [
            curved,
            Check(f"{d}: one-step error of {hi} against {lo}", a.error, ">", b.error),
        ]
        parts.append(
            f"{d}: {hi} (curvature {a.curvature}) one-step error {a.error} against {lo} "
            f"({b.curvature}) {b.error}"
        )
    if not checks:
        why = "; ".join(left_out) or (
            "needs two flow-map models on one data set (learned's methods or images' with flow maps)"
        )
        return Verdict(None, f"not decided: {why}")
    return Verdict.judge(checks, "; ".join(parts + left_out))


def _table(n: OneStepNumbers) -> Table:
    return table(
        "Flow maps: one-step error and the curvature of the learned path (95 % intervals)",
        [
            "data",
            "method",
            "metric",
            "1 jump",
            "largest NFE",
            "at largest NFE",
            "excess (1 jump / largest - 1)",
            "one-step error (RMS distance of 1 jump to K, same noise)",
            "curvature",
        ],
        [
            [d, m, s.metric, s.one_jump, s.nfe, s.converged, s.excess, s.error, s.curvature]
            for d, recs in n.data.items()
            for m, s in recs.items()
        ],
    )


@register_experiment(
    "one-step", None, title="One step along the path", order=65, requires=("learned", "images")
)
def run(ctx: Context) -> ExperimentResult:
    t0 = time.perf_counter()
    learned = ctx.results["learned"].record(LearnedNumbers)
    images = ctx.results["images"].record(ImagesNumbers)
    numbers = measure(learned, images)
    return ExperimentResult(
        name="one-step",
        title="One step along the path: flow maps",
        claim=CLAIM,
        verdict=verdict(numbers),
        numbers=to_json(numbers),
        seconds=time.perf_counter() - t0,
        tables=[_table(numbers)],
    )
