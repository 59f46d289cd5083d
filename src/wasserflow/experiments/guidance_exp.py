"""Experiment ``guidance``: what classifier-free guidance samples, against the tilted law.

CFG samples a class c with the field f_s = f(., c) + s (f(., c) - f(., null)) (s = 1: the
conditional model, :mod:`wasserflow.samplers.guidance`). A common reading is that it samples the
tilted law q_s ∝ p(x | c)^s p(x)^(1 - s); Bradley & Nakkiran (2024) show it does not, and
"characteristic guidance" (Zheng & Lan 2024) that the guided field violates the Fokker-Planck
(continuity) equation of the tilted marginals. Measured on a labelled 2-D mixture (three
overlapping isotropic classes, std 0.5, means on the unit circle, so that q_s differs from
p(x | c)) with the linear path, for each scale s of the profile:

* exact fields (:class:`~wasserflow.paths.ClassOracle`): W2 of the guided ODE's end points for
  class 0 (RK4) to draws of q_s normalised on a grid, beside the W2 between two draws of q_s
  (the floor at that n); the relative residual of the continuity equation of the guided field
  with the tilted marginals q_{s,t} at the profile's times (:mod:`wasserflow.metrics.guidance_geometry`);
* a trained model: a class-conditional I-CFM MLP (label dropout 0.1) on labelled draws of the
  mixture, guided alike: W2 of its class-0 samples to the exact fields' CFG and to q_s, and the
  fraction the Bayes classifier assigns to class 0.

W2 intervals are the empirical transport cost's CLT intervals (:func:`~wasserflow.metrics.w2_interval`).
The claim holds when, at every s > 1 of the profile, exact CFG lies farther from q_s than the
floor, the continuity residual exceeds ten times its s = 1 value (the discretisation), and the
trained model's guided samples lie nearer to exact CFG than to q_s, each by a margin beyond
the intervals.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import _atomic
from ..engine import make_config
from ..geometry import GaussianMixture, regular_grid
from ..metrics import Interval, w2_interval
from ..metrics.guidance_geometry import continuity_residual, exact_cfg, tilted_target
from ..paths import AffinePath, ClassOracle, LinearSchedule
from . import figures
from .context import Check, Context, ExperimentResult, Figure, Table, Verdict, table
from .records import to_json
from .registry import Profile, register_experiment
from .training import MLPBudget, train_and_load

CLAIM = (
    "Classifier-free guidance does not sample the tilted law p(x|c)^s p(x)^(1-s): with exact "
    "fields its samples lie farther from it than two draws of it, its field leaves a "
    "continuity residual with the tilted marginals, and a trained conditional model, guided, "
    "follows the exact fields' CFG rather than the tilted law."
)
TITLE = "Classifier-free guidance against the tilted law"
RESIDUAL_FACTOR = 10.0

THREE = GaussianMixture.isotropic(
    torch.tensor([[math.cos(a), math.sin(a)] for a in (0.0, 2.1, 4.2)], dtype=torch.float64),
    std=0.5,
)
"""Three overlapping isotropic classes (means on the unit circle, std 0.5, equal weights)."""


@dataclass(frozen=True)
class GuidanceProfile(Profile):
    """The guidance scales (1 first: the reference of the residual), samples per draw ``n``,
    the RK4 steps of the exact guided ODE, the grid (``cells`` per axis on [-``extent``,
    ``extent``]^2) of the tilted law and the continuity residual, the residual's times, the
    conditional I-CFM MLP's budget, its training draws and its RK4 evaluations."""

    scales: tuple[float, ...]
    n: int
    ode_steps: int
    cells: int
    extent: float
    times: tuple[float, ...]
    train: MLPBudget
    train_points: int
    nfe: int


def _profile(scales, n, cells, steps, points) -> GuidanceProfile:
    budget = MLPBudget(steps=steps, warmup=50, width=128, depth=3, batch_size=256, lr=2e-3)
    return GuidanceProfile(scales, n, 100, cells, 4.5, (0.25, 0.5, 0.75), budget, points, 80)


PROFILES = {
    "test": _profile((1.0, 3.0), 300, 80, 300, 5_000),
    "quick": _profile((1.0, 2.0, 3.0), 600, 120, 1500, 10_000),
    "default": _profile((1.0, 2.0, 3.0, 5.0), 1000, 150, 3000, 20_000),
    "full": _profile((1.0, 1.5, 2.0, 3.0, 5.0, 8.0), 2000, 200, 8000, 50_000),
}


@dataclass(frozen=True)
class GuidanceRow:
    """One scale: exact CFG against q_s (and the floor of two q_s draws), against the class
    p(x | c); the continuity residual at each time; the trained model's guided samples
    against exact CFG and q_s, and its Bayes accuracy."""

    scale: float
    exact_to_tilted: Interval
    floor: Interval
    exact_to_class: Interval
    residual: tuple[float, ...]
    trained_to_exact: Interval
    trained_to_tilted: Interval
    trained_accuracy: float


@dataclass(frozen=True)
class GuidanceNumbers:
    """The rows by scale, the residual's times, n, and the trained model's steps and seconds."""

    times: tuple[float, ...]
    n: int
    rows: tuple[GuidanceRow, ...]
    train_steps: int
    train_seconds: float


def _draws(cfg: GuidanceProfile, oracle, grid, s: float, x0, trained_x) -> GuidanceRow:
    """The numbers of one scale s (module doc); ``trained_x``: the trained model's samples."""
    n = cfg.n
    ex = exact_cfg(oracle, 0, s, x0, cfg.ode_steps)
    a = tilted_target(oracle, 0, s, n, grid, torch.Generator().manual_seed(2))
    b = tilted_target(oracle, 0, s, n, grid, torch.Generator().manual_seed(3))
    cls = oracle.oracle(0).mixture.sample(n, torch.Generator().manual_seed(4))
    hit = THREE.log_joint(trained_x).argmax(dim=1) == 0
    return GuidanceRow(
        scale=s,
        exact_to_tilted=w2_interval(ex, a),
        floor=w2_interval(b, a),
        exact_to_class=w2_interval(ex, cls),
        residual=tuple(continuity_residual(oracle, 0, s, t, grid) for t in cfg.times),
        trained_to_exact=w2_interval(trained_x, ex),
        trained_to_tilted=w2_interval(trained_x, a),
        trained_accuracy=float(hit.double().mean()),
    )


def _train(ctx: Context, cfg: GuidanceProfile):
    """The conditional I-CFM MLP on ``train_points`` labelled draws of the mixture (an .npz
    of x and y in the run folder), trained resumably."""
    folder = ctx.out / "guidance"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "three.npz"
    x, y = THREE.sample_with_components(cfg.train_points, ctx.generator(23))
    with _atomic.atomic_path(data) as tmp:
        np.savez(tmp, x=x.numpy(), y=y.numpy())
    b = cfg.train
    rc = make_config("icfm", f"file:{data}", steps=b.steps, batch_size=b.batch_size, lr=b.lr,
                     warmup=b.warmup, width=b.width, depth=b.depth, seed=ctx.seed,
                     overrides={"condition": {}})  # fmt: skip
    return train_and_load(ctx, rc, folder / "icfm-cond", "conditional I-CFM", (0.0, 0.6))


def measure(ctx: Context, cfg: GuidanceProfile) -> GuidanceNumbers:
    """Every scale's row (module doc)."""
    run, seconds = _train(ctx, cfg)
    oracle = ClassOracle(THREE, AffinePath(LinearSchedule()))
    grid = regular_grid(-cfg.extent, cfg.extent, (cfg.cells, cfg.cells))
    x0 = torch.randn(cfg.n, 2, generator=ctx.generator(29), dtype=torch.float64)
    rows = []
    for i, s in enumerate(cfg.scales):
        ctx.report(f"guidance s = {s:g}", 0.6 + 0.4 * i / len(cfg.scales))
        xs = run.sample(cfg.n, sampler="rk4", nfe=cfg.nfe, labels=0, guidance=s,
                        generator=ctx.generator(31)).x.to(torch.float64)  # fmt: skip
        rows.append(_draws(cfg, oracle, grid, float(s), x0, xs))
    return GuidanceNumbers(tuple(cfg.times), cfg.n, tuple(rows), cfg.train.steps, seconds)


@register_experiment(
    "guidance",
    GuidanceProfile,
    title=TITLE,
    profiles=PROFILES,
    order=70,
)
def run(ctx: Context) -> ExperimentResult:
    t0 = time.perf_counter()
    numbers = measure(ctx, ctx.config.of(GuidanceProfile))
    return ExperimentResult(
        name="guidance",
        title=TITLE,
        claim=CLAIM,
        verdict=verdict(numbers),
        numbers=to_json(numbers),
        figures=[_figure(ctx, numbers)],
        tables=[_table(numbers)],
        seconds=time.perf_counter() - t0,
    )


def _table(n: GuidanceNumbers) -> Table:
    times = " / ".join(f"{t:g}" for t in n.times)
    return table(
        f"Class 0 of the 2-D mixture, n = {n.n}: W2 (CLT intervals) and the continuity residual",
        [
            "s",
            "w",
            "exact CFG to tilted",
            "tilted to tilted (floor)",
            "exact CFG to class",
            f"residual t = {times}",
            "trained CFG to exact CFG",
            "trained CFG to tilted",
            "trained Bayes accuracy",
        ],  # fmt: skip
        [
            [
                r.scale,
                r.scale - 1,
                r.exact_to_tilted,
                r.floor,
                r.exact_to_class,
                " / ".join(f"{v:.3g}" for v in r.residual),
                r.trained_to_exact,
                r.trained_to_tilted,
                r.trained_accuracy,
            ]  # fmt: skip
            for r in n.rows
        ],
    )


def _figure(ctx: Context, n: GuidanceNumbers) -> Figure:
    s = [r.scale for r in n.rows]
    return figures.curves(
        ctx.figures,
        "guidance",
        "CFG against the tilted law p(x|c)^s p(x)^(1-s) on a 2-D mixture (class 0)",
        [
            figures.Series(s, [r.exact_to_tilted for r in n.rows], "W2 exact CFG to tilted"),
            figures.Series(s, [r.floor for r in n.rows], "W2 tilted to tilted (floor)"),
            figures.Series(s, [r.trained_to_exact for r in n.rows], "W2 trained CFG to exact CFG"),
            figures.Series(s, [r.trained_to_tilted for r in n.rows], "W2 trained CFG to tilted"),
        ],
        xlabel="guidance scale s",
        ylabel="W2 (95 % CLT intervals)",
    )


def verdict(n: GuidanceNumbers) -> Verdict:
    one = next((r for r in n.rows if r.scale == 1.0), None)
    mid = len(n.times) // 2
    checks = []
    for r in n.rows:
        if r.scale <= 1.0:
            continue
        checks += [
            Check(f"s = {r.scale:g}: W2 exact CFG to tilted against the floor",
                  r.exact_to_tilted, ">", r.floor),
            Check(f"s = {r.scale:g}: continuity residual at t = {n.times[mid]:g} against "
                  f"{RESIDUAL_FACTOR:g} x its s = 1 value", r.residual[mid], ">",
                  None if one is None else RESIDUAL_FACTOR * one.residual[mid]),
            Check(f"s = {r.scale:g}: W2 trained CFG to exact CFG against trained CFG to tilted",
                  r.trained_to_exact, "<", r.trained_to_tilted),
        ]  # fmt: skip
    top = max(n.rows, key=lambda r: r.scale)
    return Verdict.judge(
        checks,
        f"at s = {top.scale:g} exact CFG lies at W2 {top.exact_to_tilted} from the tilted law "
        f"(floor {top.floor}), the continuity residual is {top.residual[mid]:.3g} "
        f"(s = 1: {one.residual[mid] if one else float('nan'):.2g}), and the trained model's "
        f"guided samples lie at {top.trained_to_exact} from exact CFG and "
        f"{top.trained_to_tilted} from the tilted law",
    )
