"""The class and guidance options of ``wasserflow sample`` and ``evaluate --guidance``.

``--guidance S`` is the scale s (s = 1 off, diffusers' / EDM2's convention), ``--cfg-w W`` the
same setting as Ho & Salimans' w = s - 1 (flow_matching's ``--cfg_scale``); every table prints
both. ``--guidance-interval LO,HI`` guides only at model times t in [LO, HI] (t = 0 noise).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .app import UsageError, console

ClassOption = Annotated[
    int,
    typer.Option(
        "--class",
        min=0,
        help="class-conditional runs: the class to sample (its number, 0..K-1; K: the "
        "unconditional model)",
    ),
]
GuidanceOption = Annotated[
    float,
    typer.Option(
        "--guidance",
        help="classifier-free guidance scale s (1: off, the conditional model; 0: the "
        "unconditional one); needs --class",
    ),
]
CfgWOption = Annotated[
    float,
    typer.Option(
        "--cfg-w", help="the guidance as Ho & Salimans' w = s - 1 (instead of --guidance)"
    ),
]
IntervalOption = Annotated[
    str,
    typer.Option(
        "--guidance-interval",
        help="guide only at model times t in [LO, HI] (t = 0 noise, t = 1 data), e.g. 0.2,0.8",
    ),
]


def parse_interval(text: str | None) -> tuple[float, float] | None:
    """``LO,HI`` as a pair of floats (None when not given)."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--guidance-interval {text!r}: give two model times LO,HI, e.g. 0.2,0.8"
        ) from None
    return lo, hi


def parse_scales(text: str) -> list[float]:
    """``1,1.5,2,3`` as guidance scales."""
    try:
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UsageError(
            f"--guidance {text!r}: give scales separated by commas, e.g. 1,1.5,2,3"
        ) from None


def guidance_of(scale: float | None, w: float | None, interval: str | None):
    """The :class:`~wasserflow.samplers.Guidance` of ``--guidance`` / ``--cfg-w`` (one of them)
    and ``--guidance-interval``, or None when neither scale is given."""
    from ..samplers import Guidance

    if scale is not None and w is not None:
        raise UsageError("give --guidance S or --cfg-w W (w = s - 1), not both")
    if scale is None and w is None:
        if interval is not None:
            raise UsageError("--guidance-interval needs --guidance S (or --cfg-w W)")
        return None
    s = scale if scale is not None else 1.0 + w
    return Guidance(scale=s, interval=parse_interval(interval))


def print_sweep(r, rows: list, n_per_class: int) -> None:
    """The guidance sweep as a table (overall and mean / worst per-class FD or W2)."""
    fd = any(row.fd is not None for row in rows)
    what = "FD" if fd else "W2"
    t = Table(title=f"{r.method}: {n_per_class} samples per class, {r.num_classes} classes")
    cols = ["s", "w", "sampler", "NFE", "passes", what, f"class {what} mean", f"class {what} max"]
    for c in [*cols, "accuracy", "path energy", "curvature", "seconds"]:
        t.add_column(c)
    f = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    for row in rows:
        per = row.class_fd if fd else row.class_w2
        if row.diverged or not per:
            mean = worst = None
        else:
            mean, worst = sum(per) / len(per), max(per)
        t.add_row(
            f"{row.scale:g}",
            f"{row.w:g}",
            row.sampler,
            str(row.nfe),
            f(row.passes),
            "diverged" if row.diverged else f(row.fd if fd else row.w2),
            f(mean),
            f(worst),
            f(row.accuracy),
            f(row.path_energy),
            f(row.curvature),
            f"{row.seconds:.2f}",
        )
    console.print(t)
    console.print(
        "s: guidance scale (1 off), w = s - 1; NFE: the sampler's field evaluations, passes: "
        "network calls (a guided evaluation is one call of 2n rows); accuracy: samples the "
        "classifier assigns to the class they were drawn for"
    )
