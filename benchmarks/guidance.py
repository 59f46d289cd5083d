"""Class-conditional generation and classifier-free guidance: what the guidance scale does to
sample quality, class fidelity and the path, and where CFG stands against the tilted law.

Four parts (``--part``: all, or a comma-separated list), numbers in benchmarks/README.md:

* ``digits``: scikit-learn's 8 x 8 digits (``digits_images``, or ``--data``), one ``unet``
  backbone (``--net``), every model trained for the same number of steps (``--steps``, or the
  steps of ``--seconds`` CPU seconds of OT-CFM measured by a 40-step probe: CPU time, which
  other jobs on a shared machine do not change), so the budgets are equal in compute; each
  model's CPU and wall seconds are printed. OT-CFM (times
  t = u^3, lr 2e-3): unconditional, conditional with the plan solved within each class, and
  conditional with label-blind OT; DDPM's discrete VP path with velocity prediction and the
  log-SNR input ("-fast", lr 2e-3): unconditional and conditional. Label dropout 0.1 per
  sample. For each conditional model and s in ``--scales``: FD (digits8 features) of all
  samples (``--n-per-class`` for each of the 10 classes, against the 1,797 digits) and
  of each class against that class's digits, exact W2 per class, the accuracy of the digits8
  classifier on the samples, path energy and curvature of the solved ODE, and the NFE dopri5
  needs (atol = rtol = ``--tol``) with the network passes. The unconditional models give FD at
  the same sampler and n (the equal-seconds target: conditional FD at s = 1 no worse).
* ``solvers``: the conditional DDPM model guided at s up to ``--solver-scales``'s last, sampled
  by DPM-Solver++ 2M / 3M, UniPC and DDIM at a few NFE; error = RMS distance of the samples to
  those of a 200-step DPM-Solver++ 2M run of the same guided ODE from the same noise, FD and
  accuracy (the guided ODE is stiffer at large s: does a solver break, and what fixes it).
* ``couplings``: conditional OT-CFM on labelled 2-D sets (8gaussians, gmm2d) with the plan
  solved within each class against label-blind OT, and I-CFM: mean per-class W2 and the Bayes
  classifier's accuracy at s = 1 (Euler at 2 and 8 NFE, dopri5).
* ``mixture``: a labelled 2-D mixture of three overlapping isotropic Gaussians with exact
  fields (:class:`~wasserflow.paths.ClassOracle`): W2 of CFG's samples to the tilted law
  p(x | c)^s p(x)^(1 - s) (normalised on a grid) beside the W2 between two draws of it, and the
  relative residual of the continuity equation of the guided field with the tilted marginals
  (:mod:`wasserflow.metrics.guidance_geometry`); then a conditional I-CFM MLP trained on draws
  of the same mixture, guided alike.

    .venv/bin/python benchmarks/guidance.py --seconds 60 --scales 1,1.5,2,3,5 \\
        --n-per-class 100 --tol 1e-3 --json guidance.json   # the README's run (77 min wall)
    .venv/bin/python benchmarks/guidance.py --quick            # smoke run
    .venv/bin/python benchmarks/guidance.py --tables guidance.json   # reprint a --json file
    .venv/bin/python benchmarks/guidance.py --part digits --net cpu16 \\
        --data mnist:PATH/t10k-images-idx3-ubyte.gz --seconds 200 --n-per-class 30 \\
        --models otcfm,otcfm-cond,ddpm,ddpm-cond --scales 1,2,3,5 --tol 1e-3 --json mnist.json
"""

# ruff: noqa: E402  (the thread variables below must be set before numpy is imported)
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from images import NETS  # the sibling script's unet options ("cpu16", "mnist", ...)

from wasserflow.data import make_source
from wasserflow.engine import load_run, make_config, train_run
from wasserflow.experiments.guidance_exp import THREE  # the reproduce experiment's mixture
from wasserflow.geometry import exact_ot, regular_grid
from wasserflow.metrics import Interval, feature_extractor, frechet_distance, guidance_sweep
from wasserflow.metrics.conditional import default_classifier
from wasserflow.metrics.guidance_geometry import (
    continuity_residual,
    exact_cfg,
    tilt_gap,
    tilted_target,
)
from wasserflow.paths import AffinePath, ClassOracle, LinearSchedule
from wasserflow.samplers import Guidance

OTCFM = {"times": {"kind": "power", "power": 3.0}}
FAST = {"prediction": "velocity", "time_input": "logsnr"}
MODELS = {  # name: (method, overrides, conditional)
    "otcfm": ("otcfm", OTCFM, False),
    "otcfm-cond": ("otcfm", {**OTCFM, "condition": {}}, True),
    "otcfm-cond-blind": ("otcfm", {**OTCFM, "condition": {}, "per_class": False}, True),
    "ddpm": ("ddpm", FAST, False),
    "ddpm-cond": ("ddpm", {**FAST, "condition": {}}, True),
}
PARTS = ("digits", "solvers", "mixture", "couplings")
SWEEP_SAMPLER = {"otcfm": ("euler", 32), "ddpm": ("dpm_solver", 16)}
_RUNS = tempfile.TemporaryDirectory()


def _config(args, method, steps, overrides, seed):
    return make_config(method, args.data, steps=steps, batch_size=args.batch, lr=2e-3, seed=seed,
                       model="unet", model_options=NETS[args.net],
                       overrides={**overrides, "train.log_every": 10})  # fmt: skip


def _loop_seconds(folder):
    recs = [json.loads(x) for x in (Path(folder) / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["seconds"] for r in recs if "seconds" in r}


def probe_steps(args, method, overrides, seed):
    """The step count of a ``args.seconds`` CPU-second budget: a 40-step probe's process CPU
    time per step (steps 10 to 40; CPU time, not wall-clock, so other jobs on the machine do
    not change it)."""
    train_run(_config(args, method, 5, overrides, seed), tempfile.mkdtemp(dir=_RUNS.name))
    probe = tempfile.mkdtemp(dir=_RUNS.name)
    c0 = time.process_time()
    train_run(_config(args, method, 40, overrides, seed), probe)
    cpu = time.process_time() - c0
    rec = _loop_seconds(probe)
    share = (rec[40] - rec[10]) / max(rec[40], 1e-9)  # the loop's part of the run's time
    return max(20, int(args.seconds / (cpu * share / 30)))


def train_for(args, method, overrides, seed, steps):
    """A run trained for ``steps`` steps (the same for every model: equal compute); returns the
    loaded run and its wall-clock and process CPU seconds."""
    out = tempfile.mkdtemp(dir=_RUNS.name)
    t0, c0 = time.perf_counter(), time.process_time()
    train_run(_config(args, method, steps, overrides, seed), out)
    info = {"steps": steps, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    return load_run(out), info


def _unconditional_fd(args, run, features, ref_stats, sampler, nfe, n):
    out = run.sample(n, sampler=sampler, nfe=nfe, generator=torch.Generator().manual_seed(1),
                     data_space=True)  # fmt: skip
    return frechet_distance(features.stats(out.x.float()), ref_stats).value


def _sweep_rows(rows):
    keys = ("scale", "nfe", "passes", "fd", "w2", "accuracy", "path_energy", "curvature",
            "coupling_gap", "diverged", "class_fd", "class_w2", "class_accuracy")  # fmt: skip
    return [{k: _plain(getattr(r, k)) for k in keys} for r in rows]


def _plain(v):
    """An interval (the coupling gap's bracket) as [lower, upper]; other values as they are."""
    return [v.lower, v.upper] if isinstance(v, Interval) else v


def digits_part(args, results):
    features = feature_extractor({(1, 8, 8): "digits8", (1, 28, 28): "mnist28"}[_shape(args)])
    src = make_source(args.data)
    ref_stats = features.stats(src.points.float() if src.points is not None
                               else src.sample(10 * args.n_per_class).float())  # fmt: skip
    runs = {}
    if "digits_steps" not in results:
        results["digits_steps"] = args.steps or probe_steps(args, "otcfm", OTCFM, 0)
    steps = results["digits_steps"]
    for name, (method, over, cond) in MODELS.items():
        if name in results.get("digits", {}) or name not in args.models:
            continue
        run, info = train_for(args, method, over, args.seed, steps)
        runs[name] = run
        sampler, nfe = SWEEP_SAMPLER[method]
        row = {"train": info, "sampler": sampler, "nfe": nfe}
        n = 10 * args.n_per_class
        if not cond:
            row["fd"] = _unconditional_fd(args, run, features, ref_stats, sampler, nfe, n)
        else:
            common = {"n_per_class": args.n_per_class, "seed": 1, "features": features}
            row["sweep"] = _sweep_rows(guidance_sweep(run, args.scales, sampler=sampler,
                                                      nfe=nfe, **common))  # fmt: skip
            tol = {"atol": args.tol, "rtol": args.tol}
            row["dopri5"] = _sweep_rows(guidance_sweep(run, args.scales, sampler="dopri5",
                                                       options=tol, **common))  # fmt: skip
        results.setdefault("digits", {})[name] = row
        _save(args, results)
        print(f"digits {name}: {json.dumps(_brief(row))}", flush=True)
    return runs


def _brief(row):
    if "fd" in row:
        return {"fd": row["fd"], **row["train"]}
    if "sweep" not in row:
        return row["train"]
    return {str(r["scale"]): (r["fd"], r["accuracy"]) for r in row["sweep"]}


def _shape(args):
    return tuple(make_source(args.data).shape)


def solvers_part(args, results, run=None):
    """Guided DDPM: high-order solvers at large s against a 200-step reference (module doc)."""
    if "solvers" in results:
        return
    if run is None:
        steps = results.get("digits_steps") or args.steps or 2000
        run, _ = train_for(args, "ddpm", {**FAST, "condition": {}}, args.seed, steps)
    features = feature_extractor({(1, 8, 8): "digits8", (1, 28, 28): "mnist28"}[_shape(args)])
    clf = default_classifier(run, features)
    k = run.num_classes
    labels = torch.arange(k).repeat_interleave(args.solver_n // k)
    n = labels.shape[0]
    src = make_source(args.data)
    ref_stats = features.stats(src.points.float())
    out = {}
    for s in args.solver_scales:

        def draw(sampler, nfe, opts=None, s=s):
            return run.sample(n, sampler=sampler, nfe=nfe, labels=labels, guidance=Guidance(s),
                              generator=torch.Generator().manual_seed(2), options=opts,
                              data_space=False)  # fmt: skip

        ref = draw("dpm_solver", 200).x
        cells = {}
        for sampler, opts in SOLVERS.items():
            for nfe in args.solver_nfes:
                x = draw(sampler.split("+")[0], nfe, opts).x
                cells[f"{sampler} {nfe}"] = _solver_cell(run, x, ref, labels, clf, features,
                                                         ref_stats)  # fmt: skip
        out[str(s)] = cells
        print(f"solvers s={s}: {json.dumps({c: v['err'] for c, v in cells.items()})}", flush=True)
    results["solvers"] = out
    _save(args, results)


SOLVERS = {
    "ddim": {},
    "dpm_solver": {},
    "dpm_solver_3m": {},
    "unipc": {},
    "unipc+order3": {"order": 3},
}
"""The solvers of the stability part: DDIM (first order), DPM-Solver++ 2M and 3M, UniPC-2
(bh2 with its corrector) and UniPC-3 ("+": options)."""


def _solver_cell(run, x, ref, labels, clf, features, ref_stats):
    if not torch.isfinite(x).all():
        return {"err": math.inf, "fd": math.inf, "accuracy": None}
    err = float((x - ref).reshape(x.shape[0], -1).pow(2).sum(1).mean().sqrt())
    xd = run.scaler.inverse(x.reshape(x.shape[0], -1)).reshape(x.shape)
    fd = frechet_distance(features.stats(xd.float()), ref_stats).value
    acc = float((clf(xd.double()).argmax(1) == labels).double().mean())
    return {"err": err, "fd": fd, "accuracy": acc}


def mixture_part(args, results):
    if "mixture" in results:
        return
    oracle = ClassOracle(THREE, AffinePath(LinearSchedule()))
    grid = regular_grid(-4.5, 4.5, (180, 180))
    gaps = tilt_gap(oracle, 0, args.scales, grid, n=args.mixture_n, steps=100, seed=0)
    res = {"exact": [vars(g) for g in gaps]}
    res["continuity"] = {
        str(s): [continuity_residual(oracle, 0, s, t, grid) for t in (0.25, 0.5, 0.75)]
        for s in [0.0, *args.scales]
    }
    res["trained"] = _trained_mixture(args, oracle, grid)
    results["mixture"] = res
    _save(args, results)
    print(f"mixture: {json.dumps(res['exact'])}", flush=True)


def _trained_mixture(args, oracle, grid):
    """A conditional I-CFM MLP on 50,000 labelled draws of the mixture, guided: W2 of its class-0
    samples to the tilted law, to the class and to the exact fields' CFG samples (another
    noise draw), at each s."""
    x, y = THREE.sample_with_components(50_000, torch.Generator().manual_seed(9))
    path = Path(_RUNS.name) / "three.npz"
    np.savez(path, x=x.numpy(), y=y.numpy())
    cfg = make_config("icfm", f"file:{path}", steps=args.mixture_steps, batch_size=256,
                      overrides={"condition": {}}, seed=args.seed)  # fmt: skip
    out = tempfile.mkdtemp(dir=_RUNS.name)
    train_run(cfg, out)
    run = load_run(out)
    n = args.mixture_n
    cls = oracle.oracle(0).mixture.sample(n, torch.Generator().manual_seed(1))
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    rows = []
    for s in args.scales:
        xs = run.sample(n, sampler="rk4", nfe=200, labels=0, guidance=s,
                        generator=torch.Generator().manual_seed(0)).x.double()  # fmt: skip
        tgt = tilted_target(oracle, 0, s, n, grid, torch.Generator().manual_seed(2))
        cfg = exact_cfg(oracle, 0, s, x0, steps=100)
        rows.append({"scale": s, "w2_to_tilted": exact_ot(xs, tgt).w2,
                     "w2_to_class": exact_ot(xs, cls).w2,
                     "w2_to_exact_cfg": exact_ot(xs, cfg).w2})  # fmt: skip
    return rows


COUPLED = {  # name: (method, overrides)
    "icfm-cond": ("icfm", {"condition": {}}),
    "otcfm-cond": ("otcfm", {"condition": {}}),
    "otcfm-cond-blind": ("otcfm", {"condition": {}, "per_class": False}),
}


def couplings_part(args, results):
    """OT-CFM on labelled 2-D sets: the plan within each class against label-blind OT (and
    I-CFM's independent coupling), per-class W2 and the Bayes classifier's accuracy at s = 1,
    with Euler at 2 and 8 NFE and dopri5."""
    if "couplings" in results:
        return
    out = {}
    for data in ("8gaussians", "gmm2d"):
        for name, (method, over) in COUPLED.items():
            cfg = make_config(method, data, steps=args.mixture_steps, batch_size=256,
                              seed=args.seed, overrides=over)  # fmt: skip
            d = tempfile.mkdtemp(dir=_RUNS.name)
            train_run(cfg, d)
            run = load_run(d)
            cells = {}
            for sampler, nfe in (("euler", 2), ("euler", 8), ("dopri5", None)):
                (r,) = guidance_sweep(run, [1.0], n_per_class=args.mixture_n // 2, seed=1,
                                      sampler=sampler, nfe=nfe)  # fmt: skip
                cells[f"{sampler} {r.nfe}" if nfe else "dopri5"] = {
                    "class_w2": _mean(r.class_w2), "accuracy": r.accuracy, "nfe": r.nfe,
                    "curvature": r.curvature, "coupling_gap": _plain(r.coupling_gap),
                }  # fmt: skip
            out[f"{data} {name}"] = cells
            print(f"couplings {data} {name}: {json.dumps(cells)}", flush=True)
    results["couplings"] = out
    _save(args, results)


def print_couplings(d):
    print("\n### Conditional couplings on 2-D sets, s = 1: mean per-class W2 / accuracy\n")
    cols = list(next(iter(d.values())))
    print("| data, model | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for name, cells in d.items():
        vals = [f"{_f(c['class_w2'])} / {_f(c['accuracy'], 3)}" for c in cells.values()]
        print(f"| {name} | " + " | ".join(vals) + " |")


def _save(args, results):
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=_jsonable))


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(type(v))


def _f(v, d=3):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.{d}f}" if abs(v) < 1000 else f"{v:.0f}"


def _mean(v):
    return None if not v else sum(v) / len(v)


def print_digits(d):
    print("\n### Training (the same steps for every model)\n")
    print("| model | steps | CPU seconds | wall seconds |\n|---|---|---|---|")
    for name, row in d.items():
        t = row["train"]
        print(f"| {name} | {t['steps']} | {_f(t['cpu'], 0)} | {_f(t['seconds'], 0)} |")
    print("\n### Conditional at s = 1 against unconditional (FD, same sampler and n)\n")
    print("| family | sampler, NFE | unconditional FD | conditional FD (s = 1) | ratio |")
    print("|---|---|---|---|---|")
    for fam, conds in (("otcfm", ("otcfm-cond", "otcfm-cond-blind")), ("ddpm", ("ddpm-cond",))):
        if fam not in d:
            continue
        for c in conds:
            if c not in d:
                continue
            one = next(r for r in d[c]["sweep"] if r["scale"] == 1.0)
            u = d[fam]["fd"]
            print(f"| {c} | {d[c]['sampler']} {d[c]['nfe']} | {_f(u)} | {_f(one['fd'])} | "
                  f"{_f(one['fd'] / u)} |")  # fmt: skip
    for name, row in d.items():
        if "sweep" in row:
            _print_sweep(name, row)


def _print_sweep(name, row):
    print(f"\n### {name}: {row['sampler']} at {row['nfe']} NFE; dopri5 (NFE to converge)\n")
    print("| s | w | FD | class FD mean / max | class W2 mean | accuracy | PE | curvature "
          "| passes | dopri5 NFE | dopri5 FD | dopri5 accuracy |")  # fmt: skip
    print("|" + "---|" * 12)
    for r, a in zip(row["sweep"], row["dopri5"], strict=True):
        cf = r["class_fd"] or []
        print(f"| {r['scale']:g} | {r['scale'] - 1:g} | {_f(r['fd'])} | "
              f"{_f(_mean(cf))} / {_f(max(cf) if cf else None)} | {_f(_mean(r['class_w2']))} | "
              f"{_f(r['accuracy'])} | {_f(r['path_energy'])} | {_f(r['curvature'])} | "
              f"{r['passes']} | {a['nfe']} | {_f(a['fd'])} | {_f(a['accuracy'])} |")  # fmt: skip
    ok = [r for r in row["sweep"] if r["accuracy"] is not None and r["fd"] is not None]
    if ok:
        best_fd = min(r["fd"] for r in ok)
        good = [r for r in ok if r["accuracy"] >= 0.99 and r["fd"] <= 1.5 * best_fd]
        verdict = (f"met at s = {good[0]['scale']:g}" if good else "not met")  # fmt: skip
        print(f"\ntarget (accuracy >= 99 % with FD <= 1.5 x best FD {_f(best_fd)}): {verdict}")


def print_solvers(d):
    print("\n### Guided DDPM: error to a 200-step DPM-Solver++ 2M solve / FD / accuracy\n")
    cols = list(next(iter(d.values())))
    print("| s | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for s, cells in d.items():
        vals = [
            f"{_f(c['err'])} / {_f(c['fd'], 1)} / {_f(c['accuracy'], 2)}" for c in cells.values()
        ]
        print(f"| {s} | " + " | ".join(vals) + " |")


def print_mixture(d):
    print("\n### 2-D: CFG against the tilted law p(x|c)^s p(x)^(1-s) (class 0)\n")
    print("| s | W2 exact CFG to tilted | floor | W2 exact CFG to class | W2 trained CFG to "
          "tilted / to exact CFG | continuity residual t = 0.25 / 0.5 / 0.75 |\n"
          "|---|---|---|---|---|---|")  # fmt: skip
    trained = {r["scale"]: r for r in d["trained"]}
    for g in d["exact"]:
        s = g["scale"]
        res = d["continuity"].get(str(s)) or d["continuity"].get(repr(s))
        print(f"| {s:g} | {_f(g['w2_to_tilted'])} | {_f(g['floor'])} | {_f(g['w2_to_class'])} "
              f"| {_f(trained[s]['w2_to_tilted'])} / {_f(trained[s].get('w2_to_exact_cfg'))} "
              f"| {' / '.join(_f(r, 4) for r in res)} |")  # fmt: skip
    print(
        f"(s = 0, the unconditional path: residual {' / '.join(_f(r, 4) for r in d['continuity']['0.0'])})"
    )


def print_tables(results):
    if "digits" in results:
        print_digits(results["digits"])
    if "solvers" in results:
        print_solvers(results["solvers"])
    if "mixture" in results:
        print_mixture(results["mixture"])
    if "couplings" in results:
        print_couplings(results["couplings"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", default="all", help="all, or some of digits,solvers,mixture,couplings")
    p.add_argument("--data", default="digits_images")
    p.add_argument("--net", default="cpu16", choices=sorted(NETS))
    p.add_argument("--seconds", type=float, default=240.0, help="CPU seconds per model")
    p.add_argument("--steps", type=int, default=None, help="steps per model (else from --seconds)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default=",".join(MODELS), help="digits models to train")
    p.add_argument("--scales", default="1,1.25,1.5,2,3,5")
    p.add_argument("--n-per-class", type=int, default=180)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--solver-scales", default="1,3,5,8")
    p.add_argument("--solver-nfes", default="6,10,20")
    p.add_argument("--solver-n", type=int, default=500)
    p.add_argument("--mixture-n", type=int, default=1000)
    p.add_argument("--mixture-steps", type=int, default=3000)
    p.add_argument("--json", default=None)
    p.add_argument("--tables", default=None, help="reprint the tables of a --json file")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    parts = PARTS if args.part == "all" else args.part.split(",")
    if set(parts) - set(PARTS):
        p.error(f"--part {args.part!r}: choose all or some of {','.join(PARTS)}")
    args.scales = [float(v) for v in args.scales.split(",")]
    args.models = args.models.split(",")
    args.solver_scales = [float(v) for v in args.solver_scales.split(",")]
    args.solver_nfes = [int(v) for v in args.solver_nfes.split(",")]
    if args.tables:
        print_tables(json.loads(Path(args.tables).read_text()))
        return
    if args.quick:
        args.seconds, args.n_per_class, args.scales = 20.0, 20, [1.0, 3.0]
        args.solver_scales, args.solver_nfes, args.solver_n = [1.0, 5.0], [6], 100
        args.mixture_n, args.mixture_steps = 300, 300
    results = (
        json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else {}
    )
    torch.set_num_threads(max(1, torch.get_num_threads()))
    runs = {}
    if "digits" in parts:
        runs = digits_part(args, results)
    if "solvers" in parts:
        solvers_part(args, results, runs.get("ddpm-cond"))
    if "mixture" in parts:
        mixture_part(args, results)
    if "couplings" in parts:
        couplings_part(args, results)
    print_tables(results)


if __name__ == "__main__":
    main()
