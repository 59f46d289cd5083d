"""Experiment ``learned``: every method of ``wasserflow train`` on the same data and budget.

Each method is trained into ``<out>/runs/<data>/<method>`` (resumable checkpoints) and measured
with :func:`wasserflow.metrics.evaluate_run`: W2 (exact OT, n points) between its samples and
fresh data versus NFE, both with the method's own sampler and with the deterministic
probability-flow ODE (Euler; adaptive dopri5 too), the action and normalized path energy of
the ODE trajectories, training time, and the W2 between different methods' samples (ODE at 100
NFE, one shared noise seed). The reference W2 is that of the method's own noise (its start
points, mapped to data space) to the same fresh data; the floor is the W2 of two fresh data sets.
Per-method numbers are cached in the run folder, so an interrupted experiment resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace

import torch

from .. import _atomic
from ..data import make_source
from ..engine import METHODS, RunConfig, load_run, sampling_context
from ..geometry import exact_ot
from ..metrics import ADAPTIVE, Evaluation, Interval, evaluate_run, fresh_data
from ..samplers import adaptive_sampler
from . import figures
from .context import Check, Context, ExperimentResult, Figure, Table, Verdict, table
from .records import OMIT_NONE, from_json, to_json
from .registry import Profile, Request, register_experiment
from .training import (
    MLPBudget,
    flow_map_config,
    profile_config,
    report_teacher,
    train_and_load,
)
from .workers import run_jobs

CLAIM = (
    "Every model family, however trained, reaches the data measure: at its best NFE its "
    "samples are far closer to fresh data (in W2) than its reference noise; OT-coupled "
    "flows (OT-CFM, rectified flow after reflow) sample along straighter paths (smaller "
    "normalized path energy) than the independent-coupling flow."
)
FAR = 0.5  # "far closer": closes more than half of W2(noise, data) - W2(data, data)


FLOW_MAP = "flow-map"


def family(cfg: RunConfig) -> str:
    """The family a run belongs to, read off its configuration: "flow-map" (a model of the
    jumps X(x, t, s), sampled by them: MeanFlow, shortcut, flow-map distillation), "diffusion"
    (a Gaussian path other than the linear one, independent coupling), "independent-flow" (the
    linear path with independent pairs: I-CFM), "ot-flow" (the linear path with OT, entropic or
    reflow pairs and no bridge noise: OT-CFM, rectified flow), "ot-bridge" (the same with bridge
    noise: SB-CFM), or "other" (Energy Matching, the JKO flow)."""
    ctx = sampling_context(cfg)
    if ctx.path is None:  # sampled on no affine path
        return "other"
    if ctx.flow_map:  # compared with each other (experiment one-step), not with the flows
        return FLOW_MAP
    linear = cfg.path.schedule["name"] == "linear"
    if not linear:
        return "diffusion"
    coupled = cfg.coupling.kind != "independent" or cfg.reflow.rounds > 0
    if not coupled:
        return "independent-flow"
    return "ot-bridge" if cfg.path.bridge_sigma > 0 else "ot-flow"


@dataclass(frozen=True)
class JKOBlocks:
    """The JKO flow's size: blocks, hidden units per block, training particles, and the
    iterations of its inner solver (its ``objective.*`` keys)."""

    blocks: int
    units: int
    particles: int
    max_iter: int


@dataclass(frozen=True)
class LearnedProfile(Profile, MLPBudget):
    """The data sets, the MLP budget every method trains with, the evaluation (n_eval points,
    the NFE grid, dopri5 or not, n_traj trajectories drawn), the reflow pairs, Energy
    Matching's Langevin steps per negative batch, the JKO flow's size, the methods
    (``--methods``; when not given every method of ``wasserflow train`` but the flow maps
    outside ``flow_maps``), and the flow maps' training steps (None: ``steps``)."""

    data: tuple[str, ...]
    n_eval: int
    nfes: tuple[int, ...]
    adaptive: bool
    reflow_pairs: int
    reflow_nfe: int
    n_traj: int
    em_negative_steps: int
    jko: JKOBlocks
    methods: tuple[str, ...] = ()
    flow_maps: tuple[str, ...] = ()
    flowmap_steps: int | None = None

    def resolve(self, request: Request) -> LearnedProfile:
        for d in request.data or ():
            make_source(d)  # raises ValueError naming the data set and the choices
        methods = request.methods or request.default_methods(METHODS, self.flow_maps)
        return replace(self, methods=methods, data=request.data or self.data)


NFES = (1, 2, 4, 8, 16, 32, 100)

PROFILES = {
    "test": LearnedProfile(
        data=("moons",),
        steps=300,
        warmup=20,
        width=48,
        depth=3,
        batch_size=128,
        lr=2e-3,
        n_eval=300,
        nfes=(1, 4, 16, 100),
        adaptive=False,
        reflow_pairs=1024,
        reflow_nfe=20,
        n_traj=16,
        em_negative_steps=10,
        jko=JKOBlocks(blocks=4, units=8, particles=500, max_iter=30),
        flow_maps=("shortcut", "flowmap-distill"),
    ),
    "quick": LearnedProfile(
        data=("moons",),
        steps=400,
        warmup=40,
        width=64,
        depth=2,
        batch_size=128,
        lr=2e-3,
        n_eval=500,
        nfes=NFES,
        adaptive=True,
        reflow_pairs=2048,
        reflow_nfe=40,
        n_traj=32,
        em_negative_steps=20,
        jko=JKOBlocks(blocks=12, units=32, particles=1500, max_iter=60),
        flow_maps=("shortcut", "flowmap-distill"),
    ),
    "default": LearnedProfile(
        data=("moons",),
        steps=3000,
        warmup=100,
        width=128,
        depth=3,
        batch_size=256,
        lr=2e-3,
        n_eval=1000,
        nfes=NFES,
        adaptive=True,
        reflow_pairs=8192,
        reflow_nfe=100,
        n_traj=48,
        em_negative_steps=50,
        jko=JKOBlocks(blocks=24, units=64, particles=4000, max_iter=100),
        flow_maps=("shortcut", "flowmap-distill"),
        flowmap_steps=600,
    ),
    "full": LearnedProfile(
        data=("moons", "8gaussians", "checkerboard"),
        steps=20000,
        warmup=500,
        width=256,
        depth=4,
        batch_size=512,
        lr=1e-3,
        n_eval=4000,
        nfes=NFES,
        adaptive=True,
        reflow_pairs=32768,
        reflow_nfe=100,
        n_traj=64,
        em_negative_steps=100,
        jko=JKOBlocks(blocks=32, units=128, particles=8000, max_iter=150),
        flow_maps=("meanflow", "meanflow-ot", "shortcut", "flowmap-distill"),
    ),
}


@dataclass(frozen=True)
class MethodRecord:
    """One method's numbers on one data set: W2 to fresh data at each budget with its own
    sampler and with the ODE, the reference (its noise) and floor (fresh data) W2, training
    seconds, a few trajectories ([frames][particles][d]) and, in the run's cache only, the
    samples the cross-method W2 uses."""

    method: str
    family: str
    data: str
    own_sampler: str
    train_seconds: float
    own: tuple[Evaluation, ...]
    ode: tuple[Evaluation, ...]
    reference_w2: float
    floor_w2: float
    trajectory: list[list[list[float]]]
    samples: list[list[float]] | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class LearnedNumbers:
    """Every method's record by data set and method, and the W2 between methods' samples."""

    runs: dict[str, dict[str, MethodRecord]]
    cross_w2: dict[str, list[list[float]]]


def _overrides(cfg: LearnedProfile) -> dict:
    """The profile's settings as run-configuration keys, applied to the runs that have them
    (reflow pairs, Energy Matching's Langevin steps per negative batch, the JKO flow's blocks)."""
    return {
        "reflow.pairs": cfg.reflow_pairs,
        "reflow.nfe": cfg.reflow_nfe,
        "objective.negative_steps": cfg.em_negative_steps,
        **{f"objective.{k}": v for k, v in to_json(cfg.jko).items()},
    }


@dataclass(frozen=True)
class _Job:
    """One method on one data set."""

    data: str
    method: str
    cfg: LearnedProfile

    def config(self, ctx: Context) -> RunConfig:
        rc = profile_config(self.method, self.data, self.cfg, ctx.seed, _overrides(self.cfg))
        return flow_map_config(rc, self.cfg.flowmap_steps, ctx.out / "runs" / self.data)


def _one(ctx: Context, job: _Job, frac: tuple[float, float]) -> MethodRecord:
    """Train (or resume) and measure one method, cached in its run folder's reproduce.json;
    ``frac``: its share of the experiment's progress."""
    data, method, cfg = job.data, job.method, job.cfg
    run_dir = ctx.out / "runs" / data / method
    cache = run_dir / "reproduce.json"
    if cache.exists():
        return from_json(MethodRecord, json.loads(cache.read_text()), str(cache))
    rc = job.config(ctx)
    run, train_seconds = train_and_load(ctx, rc, run_dir, f"{data}: training {method}", frac)
    n = cfg.n_eval
    own, ode = run.default_sampler, run.ode_sampler
    nfes = run.budgets(list(cfg.nfes), ode)  # a JKO flow: its own number of blocks
    g = torch.Generator().manual_seed(ctx.seed)
    # path geometry (an extra exact OT per row) only where it is reported: the ODE at 100;
    # one call, so every budget is paired with the largest (to_converged, read by ``steps``)
    rows_ode = evaluate_run(run, nfes, n=n, seed=ctx.seed, sampler=ode, geometry=[max(nfes)])
    rows_own = (
        list(rows_ode)
        if own == ode
        else evaluate_run(run, run.budgets(list(cfg.nfes)), n=n, seed=ctx.seed, geometry=False)
    )
    if cfg.adaptive and run.supports(adaptive_sampler()):
        rows_ode += evaluate_run(run, [ADAPTIVE], n=n, seed=ctx.seed)
    s = run.sample(n, sampler=ode, nfe=max(nfes), generator=g, return_trajectory=True)
    data_x = fresh_data(run, n, ctx.seed + 1)
    noise = run.scaler.inverse(s.start).reshape(n, -1).to(torch.float64)
    traj = s.trajectory[:: max(1, s.trajectory.shape[0] // 25), : cfg.n_traj]
    rec = MethodRecord(
        method=method,
        family=family(run.config),
        data=data,
        own_sampler=own,
        train_seconds=train_seconds,
        own=tuple(rows_own),
        ode=tuple(rows_ode),
        reference_w2=exact_ot(noise, data_x).w2,
        floor_w2=exact_ot(fresh_data(run, n, ctx.seed + 2), data_x).w2,
        trajectory=traj.reshape(traj.shape[0], traj.shape[1], -1).tolist(),
        samples=s.x.reshape(n, -1)[:n].to(torch.float64).tolist(),
    )
    _atomic.write_json(cache, to_json(rec))
    return rec


def best(rows: tuple[Evaluation, ...]) -> Evaluation:
    return min(rows, key=lambda r: r.w2)


def measure(ctx: Context, cfg: LearnedProfile) -> LearnedNumbers:
    """Train and evaluate every method on every data set (resuming finished ones; in
    ``ctx.workers`` processes at once, distillations after their teachers), then the W2
    between the methods' samples."""
    methods, datas = cfg.methods, cfg.data
    jobs = [_Job(d, m, cfg) for d in datas for m in methods]
    labels = [f"{j.data}: training {j.method}" for j in jobs]
    later = [report_teacher(j.config(ctx)) is not None for j in jobs]
    records = dict(zip(jobs, run_jobs(ctx, _one, jobs, labels, later)))
    runs = {d: {m: records[_Job(d, m, cfg)] for m in methods} for d in datas}
    cross = {}
    for data in datas:
        xs = {m: torch.tensor(runs[data][m].samples, dtype=torch.float64) for m in methods}
        cross[data] = [
            [0.0 if a == b else exact_ot(xs[a], xs[b]).w2 for b in methods] for a in methods
        ]
        runs[data] = {m: replace(r, samples=None) for m, r in runs[data].items()}
    return LearnedNumbers(runs, cross)


@register_experiment(
    "learned", LearnedProfile, title="Learned models", profiles=PROFILES, order=20, weight=6.0
)
def run(ctx: Context) -> ExperimentResult:
    t0 = time.perf_counter()
    numbers = measure(ctx, ctx.config.of(LearnedProfile))
    return ExperimentResult(
        name="learned",
        title="Learned models: quality, steps and path geometry",
        claim=CLAIM,
        verdict=verdict(numbers),
        numbers=to_json(numbers),
        tables=[t for d, recs in numbers.runs.items() for t in _tables(d, recs, numbers)],
        figures=[f for d, recs in numbers.runs.items() for f in _figures(ctx, d, recs, numbers)],
        seconds=time.perf_counter() - t0,
        notes=[
            "W2 is exact OT between n generated and n fresh data points; 'W2 floor' is the "
            "W2 between two fresh data sets of the same size (the best any model can show).",
            "Path energy |A - W2^2| / W2^2 of the Euler ODE trajectories at 100 NFE (Tong et "
            "al. 2023); for VE-type methods the start is N(0, sigma_max^2 I).",
            "The JKO flow has no ODE: its rows are its own deterministic sampler (the K "
            "blocks inverted by Newton's method; NFE counts every map evaluation), its "
            "trajectory the K + 1 block states on t_k = 1 - (h_1 + ... + h_k) / tau.",
        ],
    )


def closed_fraction(rec: MethodRecord) -> Interval:
    """(W2_noise - W2_best) / (W2_noise - W2_floor): the share of the noise-to-data distance
    a method closes, measured above the sampling floor (1 = indistinguishable from data), with
    the range W2_best's interval gives it (the normalisation taken as exact)."""
    b = best(rec.own + rec.ode)
    span = max(rec.reference_w2 - rec.floor_w2, 1e-300)
    iv = b.w2_interval or Interval(b.w2, b.w2, b.w2, 1.0, "point", b.n)
    return Interval(
        (rec.reference_w2 - b.w2) / span,
        (rec.reference_w2 - iv.upper) / span,
        (rec.reference_w2 - iv.lower) / span,
        iv.level,
        "ratio",
        iv.n,
    )


def verdict(n: LearnedNumbers) -> Verdict:
    fr = {f"{d}/{m}": closed_fraction(r) for d in n.runs for m, r in n.runs[d].items()}
    worst = min(fr, key=lambda k: fr[k].lower)
    checks = [Check(f"share of the noise's W2 closed by {worst}", fr[worst], ">", FAR)]
    text = (
        f"every method closes at least {100 * fr[worst].lower:.0f}% of its noise's W2 to the "
        f"data above the sampling floor (worst {worst}: {fr[worst]}; needed > {100 * FAR:.0f}%)"
    )
    straight = []
    for d, recs in n.runs.items():
        refs = [_npe(r) for r in recs.values() if r.family == "independent-flow"]
        ref = next((v for v in refs if v is not None), None)
        for m, r in recs.items():
            if r.family == "ot-flow" and ref is not None and _npe(r) is not None:
                straight.append((f"{d}/{m}", _npe(r), ref))
    checks += [Check(f"path energy of {k} against I-CFM", a, "<", b) for k, a, b in straight]
    if straight:
        text += "; normalized path energy OT-coupled vs I-CFM (95 % brackets): " + ", ".join(
            f"{k} {a.bracket()} vs {b.bracket()}" for k, a, b in straight
        )
    return Verdict.judge(checks, text)


def _npe(rec: MethodRecord) -> Interval | None:
    for r in rec.ode:
        if r.nfe_requested is not None and r.normalized_path_energy is not None:
            return r.normalized_path_energy
    return None


BEST_COLUMNS = [
    "method",
    "own sampler",
    "W2 own",
    "NFE own",
    "W2 ODE",
    "NFE ODE",
    "W2 dopri5",
    "NFE dopri5",
    "path energy (ODE, max NFE)",
    "W2 noise",
    "W2 floor",
    "closed",
    "train s",
]


def _best_row(m: str, r: MethodRecord) -> list:
    b_own, b_ode = best(r.own), best(r.ode)
    ada = [x for x in r.ode if x.nfe_requested is None]
    return [
        m,
        r.own_sampler,
        b_own.w2,
        b_own.nfe,
        b_ode.w2,
        b_ode.nfe,
        ada[0].w2 if ada else None,
        ada[0].nfe if ada else None,
        _npe(r),
        r.reference_w2,
        r.floor_w2,
        closed_fraction(r),
        r.train_seconds,
    ]


def _tables(d: str, recs: dict[str, MethodRecord], n: LearnedNumbers) -> list[Table]:
    """Data set ``d``'s tables: best W2, W2 against NFE (ODE), W2 between methods."""
    nfes = sorted(
        {x.nfe_requested for r in recs.values() for x in r.ode if x.nfe_requested is not None}
    )
    by_nfe = [
        [m] + [next((x.w2 for x in r.ode if x.nfe_requested == k), None) for k in nfes]
        for m, r in recs.items()
    ]
    return [
        table(
            f"{d}: best W2 to fresh data",
            BEST_COLUMNS,
            [_best_row(m, r) for m, r in recs.items()],
        ),
        table(
            f"{d}: W2 versus NFE (probability-flow ODE, Euler)",
            ["method"] + [str(k) for k in nfes],
            by_nfe,
        ),
        table(
            f"{d}: W2 between methods' samples (ODE, 100 NFE)",
            ["method"] + list(recs),
            [[m] + row for m, row in zip(recs, n.cross_w2[d])],
        ),
    ]


def _figures(
    ctx: Context, d: str, recs: dict[str, MethodRecord], n: LearnedNumbers
) -> list[Figure]:
    """Data set ``d``'s figures: W2 against NFE (ODE, own sampler), trajectories, W2 between
    methods."""
    floor = max(r.floor_w2 for r in recs.values())
    out = [
        _w2_figure(
            ctx,
            f"learned-{d}-w2-ode",
            f"{d}: W2 to fresh data versus NFE, probability-flow ODE (Euler)",
            {m: r.ode for m, r in recs.items()},
            floor,
        ),
        _w2_figure(
            ctx,
            f"learned-{d}-w2-own",
            f"{d}: W2 to fresh data versus NFE, own sampler",
            {m: r.own for m, r in recs.items()},
            floor,
        ),
        _trajectory_figure(ctx, d, recs),
    ]
    out.append(
        figures.heatmap(
            ctx.figures,
            f"learned-{d}-cross",
            f"{d}: W2 between the methods' samples (same endpoints?)",
            list(recs),
            n.cross_w2[d],
        )
    )
    return out


def _w2_figure(
    ctx: Context, name: str, caption: str, rows: dict[str, tuple[Evaluation, ...]], floor: float
) -> Figure:
    """W2 against NFE, one line per method (its fixed budgets), and the data floor."""
    series = []
    for m, evals in rows.items():
        fixed = [x for x in evals if x.nfe_requested is not None]
        series.append(figures.Series([x.nfe for x in fixed], [x.w2 for x in fixed], m))
    series.append(figures.Series([1, 100], [floor, floor], "data floor", "k:"))
    return figures.curves(
        ctx.figures, name, caption, series, xlabel="NFE", ylabel="W2", logx=True, logy=True
    )


def _trajectory_figure(ctx: Context, d: str, recs: dict[str, MethodRecord]) -> Figure:
    src = fresh_data(load_run(ctx.out / "runs" / d / next(iter(recs))), 400, ctx.seed + 3)
    # one frame for all panels: the data and N(0, I) out to 3 sigma; VE paths start from
    # N(0, sigma_max^2 I), mostly outside it, and are seen entering
    lo = torch.minimum(src.min(0).values, torch.full((2,), -3.0)) - 0.5
    hi = torch.maximum(src.max(0).values, torch.full((2,), 3.0)) + 0.5
    box = [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]
    panels = [figures.Panel(m, r.trajectory, src.tolist(), box) for m, r in recs.items()]
    return figures.trajectory_panels(
        ctx.figures,
        f"learned-{d}-trajectories",
        f"{d}: sampling trajectories (ODE: Euler, 100 "
        "NFE; JKO flow: its blocks) over the data (grey), "
        "one frame for all (VE starts lie outside it)",
        panels,
    )
