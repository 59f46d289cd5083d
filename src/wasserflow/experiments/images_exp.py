"""Experiment ``images``: the paper's open question asked on images.

Every network-trained method (the JKO flow's blocks act on vectors and are left to the 2-D
experiments) is trained on the same image data with the same backbone and budget, then sampled
with the probability-flow ODE (Euler at each NFE of the profile, dopri5 when asked). For every
budget: the Frechet distance to the data in a feature network's space (the shipped 8 x 8
digits classifier, :mod:`wasserflow.metrics.features`), exact W2 (n samples against the data
set), and the path-energy decomposition of the ODE actually solved
(:mod:`wasserflow.metrics.path_energy`): path energy = curvature + coupling gap + W2^2(noise,
samples). Two claims are checked, each with a computed verdict:

* straightness: the OT-coupled flows' sampling curves have a smaller normalized path energy
  ((curvature + coupling gap) / W2^2(noise, samples), at the largest fixed NFE; normalized
  because VE paths start from a far wider noise) than every diffusion model and the
  independent-coupling flow;
* steps: the NFE at which FD comes within 10 % of its converged value (the largest NFE) is
  smaller, in median, for the OT-coupled flows than for the diffusion models.

Beside Euler, every method is also sampled with the explicit midpoint rule at the profile's
budgets of 2 and 4 NFE (one and two steps), reported in a table, not in a verdict: one midpoint
step on the linear path returns 2 D_1/2(x_1/2) - D_0(x0), D_t the denoiser E[x1 | x_t], where
2 Euler steps return D_1/2(x_1/2), so it sharpens; benchmarks/README.md measures it on the
digits UNet (FD below the converged ODE's, W2 above).

FD is biased upward at finite n and comparable only at equal n: every table states n.
"""

from __future__ import annotations

import json
import statistics
import time

from .. import _atomic
from .._image_grid import image_grid
from ..engine import make_config
from ..metrics import ADAPTIVE, default_feature_extractor, evaluate_run, feature_extractor
from ..metrics.quality import reference_data
from ..samplers import adaptive_sampler
from . import figures
from .context import Context, ExperimentResult, Verdict, table
from .learned import family
from .training import train_and_load

CLAIM = (
    "On images, OT-coupled flows still sample along the straightest paths (the smallest "
    "curvature and coupling gap of their sampling ODE) and reach their converged FD with the "
    "fewest NFE."
)
WITHIN = 0.10
MIDPOINT = (2, 4)  # the budgets (where the profile has them) compared with Euler's
OT = ("ot-flow",)
OTHERS = ("diffusion", "independent-flow")


def _overrides(cfg: dict) -> dict:
    return {
        "reflow.pairs": cfg["reflow_pairs"],
        "reflow.nfe": cfg["reflow_nfe"],
        "objective.negative_steps": cfg["em_negative_steps"],
    }


def _one(ctx: Context, method: str, cfg: dict, extractor, ref, frac) -> dict:
    run_dir = ctx.out / "runs" / "images" / method
    cache = run_dir / "reproduce.json"
    if cache.exists():
        return json.loads(cache.read_text())
    rc = make_config(
        method,
        cfg["data"],
        steps=cfg["steps"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        warmup=cfg["warmup"],
        seed=ctx.seed,
        model=cfg["model"],
        model_options=cfg["model_options"],
    )
    own = {**_overrides(cfg), **cfg["method_overrides"].get(method, {})}
    rc = rc.with_overrides({k: v for k, v in own.items() if rc.has(k)})
    run, train_seconds = train_and_load(ctx, rc, run_dir, f"{cfg['data']}: training {method}", frac)
    n, ode = cfg["n_eval"], run.ode_sampler
    tiles: dict[str, list] = {}

    def keep(row, x):
        tiles[str(row.nfe_requested or "adaptive")] = image_grid(x[: cfg["n_tile"]]).tolist()

    nfes: list = list(cfg["nfes"]) + (
        [ADAPTIVE] if cfg["adaptive"] and run.supports(adaptive_sampler()) else []
    )
    rows = evaluate_run(
        run, nfes, n=n, seed=ctx.seed, sampler=ode, features=extractor, data=ref, on_samples=keep
    )
    mids = [k for k in cfg["nfes"] if k in MIDPOINT] if run.supports("midpoint") else []
    mid = evaluate_run(
        run, mids, n=n, seed=ctx.seed, sampler="midpoint", features=extractor, data=ref
    )
    rec = {
        "method": method,
        "family": family(run.config),
        "train_seconds": train_seconds,
        "ode": [r.to_dict() for r in rows],
        "midpoint": [r.to_dict() for r in mid],
        "tiles": tiles,
    }
    _atomic.write_json(cache, rec)
    return rec


def nfe_needed(rows: list[dict], key: str = "fd", within: float = WITHIN) -> int | None:
    """The smallest fixed NFE whose ``key`` is within ``within`` of its value at the largest."""
    fixed = sorted(
        (r for r in rows if r["nfe_requested"] is not None and r[key] is not None),
        key=lambda r: r["nfe_requested"],
    )
    if not fixed:
        return None
    conv = fixed[-1][key]
    return next(r["nfe"] for r in fixed if r[key] <= (1 + within) * conv)


def _at_max(rec: dict) -> dict:
    fixed = [r for r in rec["ode"] if r["nfe_requested"] is not None]
    return max(fixed, key=lambda r: r["nfe_requested"])


def run(ctx: Context) -> ExperimentResult:
    cfg = ctx.config["images"]
    t0 = time.perf_counter()
    methods = cfg["methods"]
    ref = reference_data(cfg["data"], cfg["n_eval"], ctx.seed + 1)
    extractor = (
        default_feature_extractor(tuple(ref.shape[1:]), ctx.device)
        if cfg["features"] == "auto"
        else feature_extractor(cfg["features"], ctx.device)
    )
    out = {}
    for k, m in enumerate(methods):
        out[m] = _one(ctx, m, cfg, extractor, ref, (k / len(methods), (k + 1) / len(methods)))
    name = getattr(extractor, "name", cfg["features"])
    return _result(ctx, cfg, out, int(ref.shape[0]), name, time.perf_counter() - t0)


def _relative(row: dict) -> dict[str, float]:
    """Curvature, coupling gap and their sum relative to W2^2(noise, samples): comparable
    across paths whose reference noises differ (VE paths start from sigma_max)."""
    w = max(row["endpoint_w2_squared"], 1e-300)
    return {
        "curvature": row["straightness"] / w,
        "coupling": row["coupling_gap"] / w,
        "total": row["normalized_path_energy"],
    }


def _verdicts(out: dict) -> tuple[Verdict, dict]:
    rel = {m: _relative(_at_max(r)) for m, r in out.items()}
    ot = [m for m in out if out[m]["family"] in OT]
    other = [m for m in out if out[m]["family"] in OTHERS]
    need = {m: nfe_needed(r["ode"]) for m, r in out.items()}
    summary = {"relative_geodesic_gap": rel, "nfe_fd": need}
    if not ot or not other:
        return Verdict(
            None,
            "not decided: needs an OT-coupled flow and a diffusion or independent flow",
        ), summary
    worst = max(ot, key=lambda m: rel[m]["total"])
    best = min(other, key=lambda m: rel[m]["total"])
    straight = rel[worst]["total"] < rel[best]["total"]

    def parts(m: str) -> str:
        r = rel[m]
        return (
            f"{m}: {r['total']:.3g} = curvature {r['curvature']:.3g} + coupling {r['coupling']:.3g}"
        )

    text = (
        f"straightest: {'yes' if straight else 'no'} (normalized path energy at the largest "
        f"NFE, largest OT-coupled flow [{parts(worst)}] against the smallest other "
        f"[{parts(best)}])"
    )
    a = [need[m] for m in ot if need[m]]
    b = [need[m] for m in out if out[m]["family"] == "diffusion" and need[m]]
    fewest = None
    if a and b:
        ma, mb = statistics.median(a), statistics.median(b)
        fewest = ma < mb
        text += (
            f"; fewest NFE: {'yes' if fewest else 'no'} (median NFE within 10% of the "
            f"converged FD {ma:g} for OT-coupled flows against {mb:g} for diffusion models)"
        )
    holds = straight and (fewest is not False)
    return Verdict(holds, f"{'holds' if holds else 'does not hold'}: {text}"), summary


def _midpoint_table(out: dict, n: int) -> list[dict]:
    """Euler against the midpoint rule at equal NFE (FD and W2), for the runs that have both."""
    # runs cached before the midpoint rows existed have none
    mid = {m: {r["nfe_requested"]: r for r in rec.get("midpoint", [])} for m, rec in out.items()}
    ks = sorted({k for rows in mid.values() for k in rows})
    if not ks:
        return []
    euler = {m: {r["nfe_requested"]: r for r in rec["ode"]} for m, rec in out.items()}
    cols = ["method", "family"]
    for k in ks:
        cols += [f"FD Euler {k}", f"FD midpoint {k}", f"W2 Euler {k}", f"W2 midpoint {k}"]
    rows = []
    for m, rec in out.items():
        if not mid[m]:
            continue
        row = [m, rec["family"]]
        for k in ks:
            e, q = euler[m].get(k), mid[m].get(k)
            row += [e and e["fd"], q and q["fd"], e and e["w2"], q and q["w2"]]
        rows.append(row)
    return [
        table(
            f"Euler against the midpoint rule at equal NFE (FD and exact W2, n = {n}); on the "
            "linear path one midpoint step is 2 D_1/2 - D_0, an extrapolation that sharpens",
            cols,
            rows,
        )
    ]


def _result(
    ctx: Context, cfg: dict, out: dict, n_data: int, extractor_name: str, seconds: float
) -> ExperimentResult:
    import numpy as np

    n = cfg["n_eval"]
    verdict, summary = _verdicts(out)
    methods = list(out)
    nfes = [str(k) for k in cfg["nfes"]]
    fd_rows, dec_rows = [], []
    for m, rec in out.items():
        by = {str(r["nfe_requested"] or "adaptive"): r for r in rec["ode"]}
        fd_rows.append([m, rec["family"]] + [by[k]["fd"] if k in by else None for k in nfes])
        for r in by.values():
            dec_rows.append(
                [
                    m,
                    r["sampler"],
                    r["nfe"],
                    r["fd"],
                    r["w2"],
                    r["action"],
                    r["straightness"],
                    r["coupling_gap"],
                    r["endpoint_w2_squared"],
                    r["normalized_path_energy"],
                ]
            )
    tables = [
        table(
            f"FD ({extractor_name} features, {n} samples against {n_data} data images) versus "
            "NFE, probability-flow ODE (Euler)",
            ["method", "family"] + nfes,
            fd_rows,
        ),
        *_midpoint_table(out, n),
        table(
            f"Path-energy decomposition of the solved ODE (model space, n = {n}): "
            "path energy = curvature + coupling gap + W2^2(noise, samples)",
            [
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
            ],
            dec_rows,
        ),
        table(
            "Training",
            ["method", "family", "train s", "NFE within 10% of converged FD"],
            [[m, out[m]["family"], out[m]["train_seconds"], summary["nfe_fd"][m]] for m in out],
        ),
    ]
    show = [k for k in list(out[methods[0]]["tiles"]) if k in nfes or k == "adaptive"]
    figs = [
        figures.image_tiles(
            ctx.figures,
            "images-samples",
            f"Samples of every method (rows) at each NFE (columns), {cfg['data']}, the same "
            "noise in every cell",
            methods,
            show,
            [
                [
                    np.array(out[m]["tiles"][k], dtype=np.uint8) if k in out[m]["tiles"] else None
                    for k in show
                ]
                for m in methods
            ],
        ),
        figures.curves(
            ctx.figures,
            "images-fd",
            f"FD against NFE (probability-flow ODE, Euler; n = {n})",
            [
                {
                    "x": [int(k) for k in nfes],
                    "y": [row[2 + i] for i in range(len(nfes))],
                    "label": row[0],
                }
                for row in fd_rows
            ],
            xlabel="NFE",
            ylabel="FD",
            logx=True,
            logy=True,
        ),
        figures.stacked_bars(
            ctx.figures,
            "images-decomposition",
            "Path energy of each method's sampling ODE at the largest fixed NFE, relative to "
            "W2^2(noise, samples): 1 (the geodesic's share) + coupling gap + curvature",
            methods,
            {
                "W2^2(noise, samples)": [1.0 for _ in methods],
                "coupling gap": [summary["relative_geodesic_gap"][m]["coupling"] for m in methods],
                "curvature": [summary["relative_geodesic_gap"][m]["curvature"] for m in methods],
            },
            ylabel="E int |v|^2 dt / W2^2(noise, samples)",
        ),
    ]
    numbers = {
        "data": cfg["data"],
        "n": n,
        "n_data": n_data,
        "features": extractor_name,
        "runs": {m: {k: v for k, v in r.items() if k != "tiles"} for m, r in out.items()},
        **summary,
    }
    return ExperimentResult(
        name="images",
        title="Images: straightness and steps",
        claim=CLAIM,
        verdict=verdict,
        numbers=numbers,
        tables=tables,
        figures=figs,
        notes=[
            f"Backbone {cfg['model']} {cfg['model_options']}, {cfg['steps']} training steps "
            f"(batch {cfg['batch_size']}) per method. FD is comparable only at equal n "
            f"(here {n} samples against {n_data} data images).",
        ],
        seconds=seconds,
    )
