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

import torch

from .. import _atomic
from ..engine import RunConfig, load_run, sampling_context
from ..geometry import exact_ot
from ..metrics import ADAPTIVE, evaluate_run, fresh_data
from ..samplers import adaptive_sampler
from . import figures
from .context import Context, ExperimentResult, Verdict, table
from .training import profile_config, train_and_load

CLAIM = (
    "Every model family, however trained, reaches the data measure: at its best NFE its "
    "samples are far closer to fresh data (in W2) than its reference noise; OT-coupled "
    "flows (OT-CFM, rectified flow after reflow) sample along straighter paths (smaller "
    "normalized path energy) than the independent-coupling flow."
)
FAR = 0.5  # "far closer": closes more than half of W2(noise, data) - W2(data, data)


def family(cfg: RunConfig) -> str:
    """The family a run belongs to, read off its configuration: "diffusion" (a Gaussian path
    other than the linear one, independent coupling), "independent-flow" (the linear path with
    independent pairs: I-CFM), "ot-flow" (the linear path with OT, entropic or reflow pairs and no
    bridge noise: OT-CFM, rectified flow), "ot-bridge" (the same with bridge noise: SB-CFM), or
    "other" (Energy Matching, the JKO flow)."""
    if sampling_context(cfg).path is None:  # sampled on no affine path
        return "other"
    linear = cfg.path.schedule["name"] == "linear"
    if not linear:
        return "diffusion"
    coupled = cfg.coupling.kind != "independent" or cfg.reflow.rounds > 0
    if not coupled:
        return "independent-flow"
    return "ot-bridge" if cfg.path.bridge_sigma > 0 else "ot-flow"


def _overrides(cfg: dict) -> dict:
    """The profile's settings as run-configuration keys, applied to the runs that have them
    (reflow pairs, Energy Matching's Langevin steps per negative batch, the JKO flow's blocks)."""
    return {
        "reflow.pairs": cfg["reflow_pairs"],
        "reflow.nfe": cfg["reflow_nfe"],
        "objective.negative_steps": cfg["em_negative_steps"],
        **{f"objective.{k}": v for k, v in cfg["jko"].items()},
    }


def _one(ctx: Context, data: str, method: str, cfg: dict, frac: tuple[float, float]) -> dict:
    run_dir = ctx.out / "runs" / data / method
    cache = run_dir / "reproduce.json"
    if cache.exists():
        return json.loads(cache.read_text())
    rc = profile_config(method, data, cfg, ctx.seed, _overrides(cfg))
    run, train_seconds = train_and_load(ctx, rc, run_dir, f"{data}: training {method}", frac)
    n = cfg["n_eval"]
    own, ode = run.default_sampler, run.ode_sampler
    nfes = run.budgets(list(cfg["nfes"]), ode)  # a JKO flow: its own number of blocks
    g = torch.Generator().manual_seed(ctx.seed)
    # path geometry (an extra exact OT per row) only where it is reported: the ODE at 100
    rows_ode = [
        r
        for k in nfes
        for r in evaluate_run(run, [k], n=n, seed=ctx.seed, sampler=ode, geometry=k == max(nfes))
    ]
    rows_own = (
        list(rows_ode)
        if own == ode
        else evaluate_run(run, run.budgets(list(cfg["nfes"])), n=n, seed=ctx.seed, geometry=False)
    )
    if cfg["adaptive"] and run.supports(adaptive_sampler()):
        rows_ode += evaluate_run(run, [ADAPTIVE], n=n, seed=ctx.seed)
    s = run.sample(n, sampler=ode, nfe=max(nfes), generator=g, return_trajectory=True)
    data_x = fresh_data(run, n, ctx.seed + 1)
    noise = run.scaler.inverse(s.start).reshape(n, -1).to(torch.float64)
    traj = s.trajectory[:: max(1, s.trajectory.shape[0] // 25), : cfg["n_traj"]]
    rec = {
        "method": method,
        "family": family(run.config),
        "data": data,
        "own_sampler": own,
        "train_seconds": train_seconds,
        "own": [r.to_dict() for r in rows_own],
        "ode": [r.to_dict() for r in rows_ode],
        "reference_w2": exact_ot(noise, data_x).w2,
        "floor_w2": exact_ot(fresh_data(run, n, ctx.seed + 2), data_x).w2,
        "samples": s.x.reshape(n, -1)[:n].to(torch.float64).tolist(),
        "trajectory": traj.reshape(traj.shape[0], traj.shape[1], -1).tolist(),
    }
    _atomic.write_json(cache, rec)
    return rec


def best(rows: list[dict]) -> dict:
    return min(rows, key=lambda r: r["w2"])


def run(ctx: Context) -> ExperimentResult:
    cfg = ctx.config["learned"]
    t0 = time.perf_counter()
    methods, datas = cfg["methods"], cfg["data"]
    out: dict = {}
    total = len(methods) * len(datas)
    for i, data in enumerate(datas):
        out[data] = {}
        for j, m in enumerate(methods):
            k = i * len(methods) + j
            out[data][m] = _one(ctx, data, m, cfg, (k / total, (k + 1) / total))
    cross = {}
    for data in datas:
        xs = {m: torch.tensor(out[data][m].pop("samples"), dtype=torch.float64) for m in methods}
        cross[data] = [
            [0.0 if a == b else exact_ot(xs[a], xs[b]).w2 for b in methods] for a in methods
        ]
    return _result(ctx, out, cross, time.perf_counter() - t0)


def closed_fraction(rec: dict) -> float:
    """(W2_noise - W2_best) / (W2_noise - W2_floor): the share of the noise-to-data distance
    a method closes, measured above the sampling floor (1 = indistinguishable from data)."""
    b = best(rec["own"] + rec["ode"])["w2"]
    return (rec["reference_w2"] - b) / max(rec["reference_w2"] - rec["floor_w2"], 1e-300)


def _verdict(out: dict) -> Verdict:
    fr = {f"{d}/{m}": closed_fraction(r) for d in out for m, r in out[d].items()}
    worst = min(fr, key=fr.get)
    far = fr[worst] > FAR
    text = (
        f"every method closes at least {100 * fr[worst]:.0f}% of its noise's W2 to the "
        f"data above the sampling floor (worst {worst}; needed > {100 * FAR:.0f}%)"
    )
    straight = []
    for d in out:
        refs = [_npe(r) for r in out[d].values() if r["family"] == "independent-flow"]
        ref = next((v for v in refs if v is not None), None)
        for m, r in out[d].items():
            if r["family"] == "ot-flow" and ref is not None and _npe(r) is not None:
                straight.append((f"{d}/{m}", _npe(r), ref))
    ok = all(a < b for _, a, b in straight)
    if straight:
        text += "; path energy OT-coupled vs I-CFM: " + ", ".join(
            f"{k} {a:.3f} vs {b:.3f}" for k, a, b in straight
        )
    holds = far and ok
    return Verdict(holds, f"{'holds' if holds else 'does not hold'}: {text}")


def _npe(rec: dict) -> float | None:
    for r in rec["ode"]:
        if r["nfe_requested"] is not None and r["normalized_path_energy"] is not None:
            return r["normalized_path_energy"]
    return None


def _result(ctx: Context, out: dict, cross: dict, seconds: float) -> ExperimentResult:
    tables, figs = [], []
    for d, recs in out.items():
        rows = []
        for m, r in recs.items():
            b_own, b_ode = best(r["own"]), best(r["ode"])
            ada = [x for x in r["ode"] if x["nfe_requested"] is None]
            rows.append(
                [
                    m,
                    r["own_sampler"],
                    b_own["w2"],
                    b_own["nfe"],
                    b_ode["w2"],
                    b_ode["nfe"],
                    ada[0]["w2"] if ada else None,
                    ada[0]["nfe"] if ada else None,
                    _npe(r),
                    r["reference_w2"],
                    r["floor_w2"],
                    closed_fraction(r),
                    r["train_seconds"],
                ]
            )
        tables.append(
            table(
                f"{d}: best W2 to fresh data",
                [
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
                ],
                rows,
            )
        )
        nfes = sorted(
            {
                x["nfe_requested"]
                for r in recs.values()
                for x in r["ode"]
                if x["nfe_requested"] is not None
            }
        )
        tables.append(
            table(
                f"{d}: W2 versus NFE (probability-flow ODE, Euler)",
                ["method"] + [str(k) for k in nfes],
                [
                    [m]
                    + [
                        next((x["w2"] for x in r["ode"] if x["nfe_requested"] == k), None)
                        for k in nfes
                    ]
                    for m, r in recs.items()
                ],
            )
        )
        for kind, label in (("ode", "probability-flow ODE (Euler)"), ("own", "own sampler")):
            series = [
                {
                    "x": [x["nfe"] for x in r[kind] if x["nfe_requested"] is not None],
                    "y": [x["w2"] for x in r[kind] if x["nfe_requested"] is not None],
                    "label": m,
                }
                for m, r in recs.items()
            ]
            floor = max(r["floor_w2"] for r in recs.values())
            series.append(
                {"x": [1, 100], "y": [floor, floor], "label": "data floor", "style": "k:"}
            )
            figs.append(
                figures.curves(
                    ctx.figures,
                    f"learned-{d}-w2-{kind}",
                    f"{d}: W2 to fresh data versus NFE, {label}",
                    series,
                    xlabel="NFE",
                    ylabel="W2",
                    logx=True,
                    logy=True,
                )
            )
        src = fresh_data(load_run(ctx.out / "runs" / d / next(iter(recs))), 400, ctx.seed + 3)
        # one frame for all panels: the data and N(0, I) out to 3 sigma; VE paths start from
        # N(0, sigma_max^2 I), mostly outside it, and are seen entering
        lo = torch.minimum(src.min(0).values, torch.full((2,), -3.0)) - 0.5
        hi = torch.maximum(src.max(0).values, torch.full((2,), 3.0)) + 0.5
        box = [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]
        panels = [
            {"title": m, "traj": r["trajectory"], "data": src.tolist(), "box": box}
            for m, r in recs.items()
        ]
        figs.append(
            figures.trajectory_panels(
                ctx.figures,
                f"learned-{d}-trajectories",
                f"{d}: sampling trajectories (ODE: Euler, 100 "
                "NFE; JKO flow: its blocks) over the data (grey), "
                "one frame for all (VE starts lie outside it)",
                panels,
            )
        )
        figs.append(
            figures.heatmap(
                ctx.figures,
                f"learned-{d}-cross",
                f"{d}: W2 between the methods' samples (same endpoints?)",
                list(recs),
                cross[d],
            )
        )
        tables.append(
            table(
                f"{d}: W2 between methods' samples (ODE, 100 NFE)",
                ["method"] + list(recs),
                [[m] + row for m, row in zip(recs, cross[d])],
            )
        )
    return ExperimentResult(
        name="learned",
        title="Learned models: quality, steps and path geometry",
        claim=CLAIM,
        verdict=_verdict(out),
        numbers={"runs": out, "cross_w2": cross},
        tables=tables,
        figures=figs,
        seconds=seconds,
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
