"""Experiment ``images``: the paper's open question asked on images.

Every network-trained method (the JKO flow's blocks act on vectors and are left to the 2-D
experiments) is trained on the same image data with the same backbone and budget, then sampled
with the probability-flow ODE (Euler at each NFE of the profile, dopri5 when asked). For every
budget: the Frechet distance to the data in a feature network's space (the shipped 8 x 8
digits classifier, :mod:`wasserflow.metrics.features`), exact W2 (n samples against the data
set), and the path-energy decomposition of the ODE actually solved
(:mod:`wasserflow.metrics.path_energy`): path energy = curvature + coupling gap + W2^2(noise,
samples). Two claims are checked, each number with its 95 % interval, and a check holds only
where its margin exceeds both intervals:

* straightness: the OT-coupled flows' sampling curves have a smaller curvature relative to
  W2^2(noise, samples) (normalized because VE paths start from a far wider noise; at the
  largest fixed NFE) than every diffusion model and the independent-coupling flow;
* steps: the NFE at which FD comes within 10 % of its converged value (the largest NFE) is
  smaller, in median, for the OT-coupled flows than for the diffusion models (FD's bootstrap
  intervals give each NFE* a range).

The coupling gap, the other half of the normalized path energy, is stated beside them with its
bracket (:func:`~wasserflow.metrics.coupling_gap`), not checked: in d = 64 no sample resolves
it to a point, and whether the OT-coupled maps are measurably closer to optimal is the open
question the report answers as measured. Each ODE map's Brenier criterion (its Jacobian's
asymmetry, :func:`~wasserflow.metrics.jacobian_symmetry`) is in the decomposition table.

Beside Euler, every method is also sampled with the explicit midpoint rule at the profile's
budgets of 2 and 4 NFE (one and two steps), reported in a table, not in a verdict: one midpoint
step on the linear path returns 2 D_1/2(x_1/2) - D_0(x0), D_t the denoiser E[x1 | x_t], where
2 Euler steps return D_1/2(x_1/2), so it sharpens; benchmarks/README.md measures it on the
digits UNet (FD below the converged ODE's, W2 above).

FD is biased upward at finite n and comparable only at equal n: every table states n.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .. import _atomic
from .._image_grid import image_grid
from ..data import make_source
from ..engine import RunConfig, make_config
from ..metrics import (
    ADAPTIVE,
    Evaluation,
    Interval,
    default_feature_extractor,
    evaluate_run,
    feature_extractor,
    median_interval,
    nfe_to_converge,
)
from ..metrics.quality import reference_data
from ..samplers import adaptive_sampler
from . import figures
from .context import Check, Context, ExperimentResult, Figure, Table, Verdict, table
from .learned import family
from .records import OMIT_NONE, from_json, to_json
from .registry import Profile, Request, register_experiment
from .training import flow_map_config, report_teacher, train_and_load
from .workers import run_jobs

CLAIM = (
    "On images, OT-coupled flows still sample along the straightest paths (the smallest "
    "curvature of their sampling ODE) and reach their converged FD with the fewest NFE; whether "
    "their noise-to-sample maps are also closer to optimal (the coupling gap) is measured."
)
WITHIN = 0.10
MIDPOINT = (2, 4)  # the budgets (where the profile has them) compared with Euler's
JACOBIAN_POINTS = 256  # of each ODE map's Brenier test (metrics.jacobian_symmetry)
OT = ("ot-flow",)
OTHERS = ("diffusion", "independent-flow")


@dataclass(frozen=True)
class ImagesProfile(Profile):
    """The image data spec and the network methods trained on it (None: every one but the flow
    maps outside ``flow_maps``), the backbone and its options, the training budget, the
    evaluation (n_eval samples, the NFE grid, dopri5 or not, the FD feature network: a name or
    "auto" for the data's shape, n_tile samples per figure cell), the reflow pairs, Energy
    Matching's Langevin steps per negative batch, per-method run-configuration overrides
    (dotted keys), and the flow maps' training steps (None: ``steps``)."""

    data: str
    methods: tuple[str, ...] | None
    model: str
    model_options: dict[str, Any]
    steps: int
    warmup: int
    batch_size: int
    lr: float
    n_eval: int
    nfes: tuple[int, ...]
    adaptive: bool
    features: str
    n_tile: int
    reflow_pairs: int
    reflow_nfe: int
    em_negative_steps: int
    method_overrides: dict[str, dict[str, Any]]
    flow_maps: tuple[str, ...] = ()
    flowmap_steps: int | None = None

    def resolve(self, request: Request) -> ImagesProfile:
        network = request.network_methods
        default = self.methods or request.default_methods(network, self.flow_maps)
        methods = [m for m in default if m in network]
        if request.methods:
            methods = [m for m in request.methods if m in network]
        out = replace(self, methods=tuple(methods))
        if request.image_data:
            src = make_source(request.image_data)  # raises ValueError naming the problem
            if len(src.shape) != 3:
                raise ValueError(
                    f"--image-data {request.image_data!r} holds points of shape {src.shape}, "
                    "not images: give an image spec (mnist:FILE, cifar10:FILE, images:FOLDER, "
                    "array:FILE)"
                )
            out = replace(out, data=request.image_data, features="auto")
        return out


# TorchCFM's SB-CFM sigma: reg = 2 sigma^2 = 0.5 (the 2-D recipe) needs > 10^4
# Sinkhorn iterations per batch of 64-d digits, reg = 2 about 50
SBCFM = {"sbcfm": {"coupling.sigma": 1.0, "path.bridge_sigma": 1.0}}


_TEST = ImagesProfile(
    data="digits_images",
    methods=("icfm", "otcfm", "ddpm"),
    model="mlp",
    model_options={"width": 64, "depth": 2},
    steps=60,
    warmup=6,
    batch_size=128,
    lr=2e-3,
    n_eval=200,
    nfes=(1, 4),
    adaptive=False,
    features="digits8",
    n_tile=16,
    reflow_pairs=256,
    reflow_nfe=8,
    em_negative_steps=5,
    method_overrides=SBCFM,
)
PROFILES = {  # methods None: every network-trained method
    "test": _TEST,
    "quick": replace(
        _TEST,
        methods=("icfm", "otcfm", "ddpm", "sde-vp"),
        model_options={"width": 128, "depth": 2},
        steps=300,
        warmup=30,
        n_eval=500,
        nfes=(1, 2, 4, 16),
        reflow_pairs=1024,
        reflow_nfe=16,
        em_negative_steps=10,
    ),
    "default": replace(
        _TEST,
        methods=None,
        model_options={"width": 256, "depth": 3},
        steps=800,
        warmup=100,
        n_eval=1000,
        nfes=(1, 2, 4, 8, 16, 32),
        reflow_pairs=4096,
        reflow_nfe=32,
        em_negative_steps=20,
        flow_maps=("shortcut", "flowmap-distill"),
        flowmap_steps=300,
    ),
    "full": replace(
        _TEST,
        methods=None,
        model="unet",
        model_options={"size": "digits"},
        steps=20000,
        warmup=100,
        n_eval=1797,
        nfes=(1, 2, 4, 8, 16, 32, 100),
        adaptive=True,
        reflow_pairs=16384,
        reflow_nfe=100,
        em_negative_steps=50,
        flow_maps=("meanflow", "meanflow-ot", "shortcut", "flowmap-distill"),
    ),
}


@dataclass(frozen=True)
class ImagesRun:
    """One method's evaluations: the ODE (Euler) at each budget, the midpoint rule at the
    budgets of MIDPOINT, and, in the run's cache only, the sample tiles by budget."""

    method: str
    family: str
    train_seconds: float
    ode: tuple[Evaluation, ...]
    midpoint: tuple[Evaluation, ...] = ()  # runs cached before the midpoint rows had none
    tiles: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class RelativeEnergy:
    """Curvature, coupling gap and their sum (the normalized path energy) relative to
    W2^2(noise, samples), at the largest fixed NFE, each as an interval: the curvature's
    normal interval and the coupling gap's bracket (W2^2 = chord - gap is bracketed by it);
    the curvature's value is its ratio at a zero gap (to the chord)."""

    curvature: Interval
    coupling: Interval
    total: Interval


@dataclass(frozen=True)
class ImagesNumbers:
    data: str
    n: int
    n_data: int
    features: str
    runs: dict[str, ImagesRun]
    relative_geodesic_gap: dict[str, RelativeEnergy]
    nfe_fd: dict[str, Interval | None]


def _overrides(cfg: ImagesProfile) -> dict:
    return {
        "reflow.pairs": cfg.reflow_pairs,
        "reflow.nfe": cfg.reflow_nfe,
        "objective.negative_steps": cfg.em_negative_steps,
    }


@dataclass(frozen=True)
class _Job:
    """One method, with the feature extractor and reference data every method is scored by."""

    method: str
    cfg: ImagesProfile
    extractor: Any
    ref: torch.Tensor

    def config(self, ctx: Context) -> RunConfig:
        cfg = self.cfg
        rc = make_config(
            self.method,
            cfg.data,
            steps=cfg.steps,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            warmup=cfg.warmup,
            seed=ctx.seed,
            model=cfg.model,
            model_options=cfg.model_options,
        )
        own = {**_overrides(cfg), **cfg.method_overrides.get(self.method, {})}
        rc = rc.with_overrides({k: v for k, v in own.items() if rc.has(k)})
        return flow_map_config(rc, cfg.flowmap_steps, ctx.out / "runs" / "images")


def _one(ctx: Context, job: _Job, frac: tuple[float, float]) -> ImagesRun:
    """Train (or resume) and measure one method, cached in its run folder's reproduce.json;
    ``frac``: its share of the experiment's progress."""
    method, cfg, extractor, ref = job.method, job.cfg, job.extractor, job.ref
    run_dir = ctx.out / "runs" / "images" / method
    cache = run_dir / "reproduce.json"
    if cache.exists():
        return from_json(ImagesRun, json.loads(cache.read_text()), str(cache))
    rc = job.config(ctx)
    run, train_seconds = train_and_load(ctx, rc, run_dir, f"{cfg.data}: training {method}", frac)
    n, ode = cfg.n_eval, run.ode_sampler
    tiles: dict[str, list] = {}

    def keep(row, x):
        tiles[str(row.nfe_requested or "adaptive")] = image_grid(x[: cfg.n_tile]).tolist()

    nfes: list = list(cfg.nfes) + (
        [ADAPTIVE] if cfg.adaptive and run.supports(adaptive_sampler()) else []
    )
    rows = evaluate_run(
        run,
        nfes,
        n=n,
        seed=ctx.seed,
        sampler=ode,
        features=extractor,
        data=ref,
        on_samples=keep,
        jacobian=JACOBIAN_POINTS,
    )
    mids = [k for k in cfg.nfes if k in MIDPOINT] if run.supports("midpoint") else []
    mid = evaluate_run(
        run, mids, n=n, seed=ctx.seed, sampler="midpoint", features=extractor, data=ref
    )
    rec = ImagesRun(method, family(run.config), train_seconds, tuple(rows), tuple(mid), tiles)
    _atomic.write_json(cache, to_json(rec))
    return rec


def nfe_needed(rows: tuple[Evaluation, ...], within: float = WITHIN) -> Interval | None:
    """The smallest fixed NFE whose FD is within ``within`` of its value at the largest, with
    the range the paired bootstrap of FD(k) / FD(largest) allows (the same noise at every
    budget; :func:`~wasserflow.metrics.nfe_to_converge`, ``Evaluation.fd_ratio``)."""
    return nfe_to_converge(
        rows, lambda r: r.fd_interval or r.fd, within, paired=lambda r: r.fd_ratio
    )


def _at_max(rec: ImagesRun) -> Evaluation:
    fixed = [r for r in rec.ode if r.nfe_requested is not None]
    return max(fixed, key=lambda r: r.nfe_requested)


def _relative(row: Evaluation) -> RelativeEnergy:
    """Curvature, coupling gap and their sum relative to W2^2(noise, samples): comparable
    across paths whose reference noises differ (VE paths start from sigma_max). Each end takes
    the least and the most favourable of the curvature's interval, the gap's bracket and the
    bracket of W2^2 = chord - gap."""
    dec = row.geometry
    k, g, w = dec.curvature, dec.coupling_gap, dec.w2_squared
    w_lo, w_hi = max(w.lower, 1e-300), max(w.upper, 1e-300)

    def ratio(lo: float, hi: float | None, value: float | None) -> Interval:
        up = None if hi is None else hi / w_lo
        v = None if value is None else value / dec.chord_energy.value
        return Interval(v, lo / w_hi, up, g.level, "ratio", dec.n)

    total_hi = None if g.upper is None else k.upper + g.upper
    return RelativeEnergy(
        curvature=ratio(k.lower, k.upper, k.value),
        coupling=ratio(g.lower, g.upper, None),
        total=ratio(k.lower + g.lower, total_hi, None),
    )


def measure(ctx: Context, cfg: ImagesProfile) -> tuple[ImagesNumbers, dict[str, ImagesRun]]:
    """Train and evaluate every method (resuming finished ones). Returns the numbers and the
    runs with their sample tiles (for the figure)."""
    methods = cfg.methods
    ref = reference_data(cfg.data, cfg.n_eval, ctx.seed + 1)
    extractor = (
        default_feature_extractor(tuple(ref.shape[1:]), ctx.device)
        if cfg.features == "auto"
        else feature_extractor(cfg.features, ctx.device)
    )
    jobs = [_Job(m, cfg, extractor, ref) for m in methods]
    later = [report_teacher(j.config(ctx)) is not None for j in jobs]
    labels = [f"{cfg.data}: training {m}" for m in methods]
    runs = dict(zip(methods, run_jobs(ctx, _one, jobs, labels, later)))
    numbers = ImagesNumbers(
        data=cfg.data,
        n=cfg.n_eval,
        n_data=int(ref.shape[0]),
        features=getattr(extractor, "name", cfg.features),
        runs={m: replace(r, tiles=None) for m, r in runs.items()},
        relative_geodesic_gap={m: _relative(_at_max(r)) for m, r in runs.items()},
        nfe_fd={m: nfe_needed(r.ode) for m, r in runs.items()},
    )
    return numbers, runs


@register_experiment(
    "images", ImagesProfile, title="Images: straightness and steps", profiles=PROFILES, order=60
)
def run(ctx: Context) -> ExperimentResult:
    t0 = time.perf_counter()
    cfg = ctx.config.of(ImagesProfile)
    numbers, runs = measure(ctx, cfg)
    return ExperimentResult(
        name="images",
        title="Images: straightness and steps",
        claim=CLAIM,
        verdict=verdict(numbers),
        numbers=to_json(numbers),
        tables=tables(numbers, cfg.nfes),
        figures=_figures(ctx, numbers, runs, cfg.nfes),
        notes=[
            f"Backbone {cfg.model} {cfg.model_options}, {cfg.steps} training steps "
            f"(batch {cfg.batch_size}) per method. FD is comparable only at equal n "
            f"(here {numbers.n} samples against {numbers.n_data} data images).",
        ],
        seconds=time.perf_counter() - t0,
    )


def verdict(n: ImagesNumbers) -> Verdict:
    rel, need = n.relative_geodesic_gap, n.nfe_fd
    ot = [m for m in n.runs if n.runs[m].family in OT]
    other = [m for m in n.runs if n.runs[m].family in OTHERS]
    if not ot or not other:
        return Verdict(
            None, "not decided: needs an OT-coupled flow and a diffusion or independent flow"
        )
    worst = max(ot, key=lambda m: rel[m].curvature.upper)
    best = min(other, key=lambda m: rel[m].curvature.lower)
    checks = [
        Check(
            f"curvature / W2^2 of {worst} (largest OT-coupled) against {best} (smallest other)",
            rel[worst].curvature,
            "<",
            rel[best].curvature,
        )
    ]
    text = (
        f"straightest: {'yes' if checks[0].holds else 'no'} (curvature relative to "
        f"W2^2(noise, samples) at the largest NFE: {worst} {rel[worst].curvature} against "
        f"{best} {rel[best].curvature})"
    )
    a = [need[m] for m in ot if need[m]]
    b = [need[m] for m in n.runs if n.runs[m].family == "diffusion" and need[m]]
    if a and b:
        ma, mb = median_interval(a), median_interval(b)
        checks.append(Check("median NFE* (FD) of OT-coupled flows against diffusion", ma, "<", mb))
        text += (
            f"; fewest NFE: {'yes' if checks[-1].holds else 'no'} (median NFE within 10% of "
            f"the converged FD {ma.value:g}, range {ma.bracket()}, for OT-coupled flows against "
            f"{mb.value:g}, {mb.bracket()}, for diffusion models)"
        )
    return Verdict.judge(checks, text + "; " + _open_question(n))


def _open_question(n: ImagesNumbers) -> str:
    """Whether the OT-coupled flows' maps are measurably closer to optimal (not a check: the
    bracket of a near-optimal map's gap rarely excludes another's), said with the brackets."""
    rel = n.relative_geodesic_gap
    ot = [m for m in n.runs if n.runs[m].family in OT]
    other = [m for m in n.runs if n.runs[m].family in OTHERS]
    lo = max(ot, key=lambda m: rel[m].coupling.upper or math.inf)
    hi = min(other, key=lambda m: rel[m].coupling.lower)
    resolved = Check("", rel[lo].coupling, "<", rel[hi].coupling).holds
    return (
        f"coupling gap / W2^2, the open question: OT-coupled maps "
        f"{'measurably' if resolved else 'not measurably'} closer to optimal ({lo} "
        f"{rel[lo].coupling.bracket()} against {hi} {rel[hi].coupling.bracket()}, 95 % brackets)"
    )


def _by_budget(rec: ImagesRun) -> dict[str, Evaluation]:
    """A run's ODE rows by budget ("1", "2", ..., "adaptive")."""
    return {str(r.nfe_requested or "adaptive"): r for r in rec.ode}


def _fd_rows(n: ImagesNumbers, nfes: list[str]) -> list[list]:
    rows = []
    for m, rec in n.runs.items():
        by = _by_budget(rec)
        rows.append([m, rec.family] + [by[k].fd if k in by else None for k in nfes])
    return rows


DECOMPOSITION_COLUMNS = [
    "method",
    "sampler",
    "NFE",
    "FD",
    "W2",
    "path energy",
    "curvature",
    "coupling gap",
    "W2^2(noise, samples)",
    "normalized path energy",
    "Jacobian asymmetry",
]


def tables(n: ImagesNumbers, budgets: tuple[int, ...]) -> list[Table]:
    nfes = [str(k) for k in budgets]
    decomposition = [
        [
            m,
            r.sampler,
            r.nfe,
            r.fd,
            r.w2,
            r.geometry and r.geometry.path_energy,
            r.geometry and r.geometry.curvature,
            r.coupling_gap,
            r.endpoint_w2_squared,
            r.normalized_path_energy,
            _asymmetry(r),
        ]
        for m, rec in n.runs.items()
        for r in _by_budget(rec).values()
    ]
    return [
        table(
            f"FD ({n.features} features, {n.n} samples against {n.n_data} data images) versus "
            "NFE, probability-flow ODE (Euler)",
            ["method", "family"] + nfes,
            _fd_rows(n, nfes),
        ),
        *_midpoint_table(n),
        table(
            f"Path-energy decomposition of the solved ODE (model space, n = {n.n}): "
            "path energy = curvature + coupling gap + W2^2(noise, samples)",
            DECOMPOSITION_COLUMNS,
            decomposition,
        ),
        table(
            "Training",
            ["method", "family", "train s", "NFE within 10% of converged FD"],
            [[m, r.family, r.train_seconds, n.nfe_fd[m]] for m, r in n.runs.items()],
        ),
    ]


def _asymmetry(row: Evaluation) -> Interval | None:
    """The Brenier criterion's asymmetry of the row's map (0: a gradient map), where tested."""
    jac = row.coupling_gap and row.coupling_gap.jacobian
    if not jac:
        return None
    return Interval(
        jac.asymmetry, jac.asymmetry_lower, jac.asymmetry_upper, jac.level, "jacobian", jac.n
    )


def _midpoint_table(n: ImagesNumbers) -> list[Table]:
    """Euler against the midpoint rule at equal NFE (FD and W2), for the runs that have both."""
    mid = {m: {r.nfe_requested: r for r in rec.midpoint} for m, rec in n.runs.items()}
    ks = sorted({k for rows in mid.values() for k in rows})
    if not ks:
        return []
    euler = {m: {r.nfe_requested: r for r in rec.ode} for m, rec in n.runs.items()}
    cols = ["method", "family"]
    for k in ks:
        cols += [f"FD Euler {k}", f"FD midpoint {k}", f"W2 Euler {k}", f"W2 midpoint {k}"]
    rows = []
    for m, rec in n.runs.items():
        if not mid[m]:
            continue
        row = [m, rec.family]
        for k in ks:
            e, q = euler[m].get(k), mid[m].get(k)
            row += [e and e.fd, q and q.fd, e and e.w2, q and q.w2]
        rows.append(row)
    return [
        table(
            f"Euler against the midpoint rule at equal NFE (FD and exact W2, n = {n.n}); on the "
            "linear path one midpoint step is 2 D_1/2 - D_0, an extrapolation that sharpens",
            cols,
            rows,
        )
    ]


def _figures(
    ctx: Context, n: ImagesNumbers, runs: dict[str, ImagesRun], budgets: tuple[int, ...]
) -> list[Figure]:
    import numpy as np

    methods = list(n.runs)
    nfes = [str(k) for k in budgets]
    tiles = {m: r.tiles or {} for m, r in runs.items()}
    show = [k for k in tiles[methods[0]] if k in nfes or k == "adaptive"]
    rel = n.relative_geodesic_gap
    return [
        figures.image_tiles(
            ctx.figures,
            "images-samples",
            f"Samples of every method (rows) at each NFE (columns), {n.data}, the same "
            "noise in every cell",
            methods,
            show,
            [
                [np.array(tiles[m][k], dtype=np.uint8) if k in tiles[m] else None for k in show]
                for m in methods
            ],
        ),
        figures.curves(
            ctx.figures,
            "images-fd",
            f"FD against NFE (probability-flow ODE, Euler; n = {n.n})",
            [figures.Series([int(k) for k in nfes], row[2:], row[0]) for row in _fd_rows(n, nfes)],
            xlabel="NFE",
            ylabel="FD",
            logx=True,
            logy=True,
        ),
        figures.stacked_bars(
            ctx.figures,
            "images-decomposition",
            "Path energy of each method's sampling ODE at the largest fixed NFE, relative to "
            "W2^2(noise, samples): 1 (the geodesic's share) + curvature + the coupling gap's "
            "upper bound (its bracket starts at 0 for every method)",
            methods,
            {
                "W2^2(noise, samples)": [1.0 for _ in methods],
                "curvature": [rel[m].curvature.value for m in methods],
                "coupling gap (upper bound)": [rel[m].coupling.upper or 0.0 for m in methods],
            },
            ylabel="E int |v|^2 dt / W2^2(noise, samples)",
        ),
    ]
