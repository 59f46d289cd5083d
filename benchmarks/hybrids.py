"""The hybrid samplers of issue 15 against the best pure sampler at equal NFE (2, 4, 8).

For each data set (2-D moons, the 2-D Gaussian mixture gmm2d, the 8 x 8 digits) and seed, three
models are trained with the engine, then sampled side by side from the same starting noise:

* ``teacher``: a VP diffusion model (the ``ddpm`` recipe with velocity prediction, the log-SNR
  time input, lr 2e-3: benchmarks/README.md's "-fast" settings). Pure samplers: dpm_solver
  (DPM-Solver++ 2M), dpm_solver_3m, unipc, ddim. Hybrid: ``geodesic`` (dpm_solver on a grid
  of equal W2 length estimated from the model's own field on a pilot batch of 256 points,
  32 pilot steps; the pilot is not counted in the NFE, see benchmarks/hybrid_geodesic.py).
* ``icfm``: independent-coupling flow matching on the linear path (whose score is a conversion
  of the velocity). Pure: euler, midpoint, heun. Hybrid: ``flow_pc`` (Euler with a Langevin
  corrector toward p_t, snr 0.1 and 0.05).
* ``reflow``: a linear-path velocity model trained on the teacher's probability-flow pairs
  (x0, ODE(x0)) (``reflow.teacher`` = the teacher's folder; pairs drawn with dpm_solver at
  ``--pair-nfe`` evaluations). Pure: euler, midpoint, heun; compared with the teacher's best
  pure sampler at the same NFE, and its curvature (PE - E|x1 - x0|^2 of the solved ODE,
  ``path_energy_decomposition``) beside the teacher's, both along dopri5 (atol = rtol = 1e-5).

Metrics: W2 (exact OT, float64) between n model samples and n data points (2-D: fresh draws;
digits: the whole set, n = 1,797) and, on the digits, FD in the features of the shipped digit
classifier (``feature_extractor("digits8")``). Each cell is a mean over the seeds; "best pure"
is the pure sampler with the lowest mean at that NFE.

    .venv/bin/python benchmarks/hybrids.py --seeds 0,1,2 --json hybrids.json   # the protocol
    .venv/bin/python benchmarks/hybrids.py --quick                             # smoke run
    .venv/bin/python benchmarks/hybrids.py --tables hybrids.json               # reprint
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import hybrid_flow_pc  # noqa: F401  (registers flow_pc: the sibling module, see the README)
import hybrid_geodesic  # noqa: F401  (registers geodesic)
import torch
from images import NETS

from wasserflow.data import make_source
from wasserflow.engine import load_run, make_config, train_run
from wasserflow.geometry import exact_ot
from wasserflow.metrics import feature_extractor, frechet_distance, path_energy_decomposition

NFES = [2, 4, 8]
FAST = {"prediction": "velocity", "time_input": "logsnr"}
UNET_CPU = NETS["cpu"]
"""benchmarks/images.py's CPU UNet (8 channels, levels 8 and 4)."""

ROWS = {
    # model: [(row label, sampler, options, hybrid?)]
    "teacher": [
        ("dpm_solver", "dpm_solver", None, False),
        ("dpm_solver_3m", "dpm_solver_3m", None, False),
        ("unipc", "unipc", None, False),
        ("ddim", "ddim", None, False),
        ("geodesic (dpm_solver)", "geodesic", None, True),
    ],
    "icfm": [
        ("euler", "euler", None, False),
        ("midpoint", "midpoint", None, False),
        ("heun", "heun", None, False),
        ("flow_pc snr 0.1", "flow_pc", {"snr": 0.1}, True),
        ("flow_pc snr 0.05", "flow_pc", {"snr": 0.05}, True),
    ],
    "reflow": [
        ("euler", "euler", None, True),
        ("midpoint", "midpoint", None, True),
        ("heun", "heun", None, True),
    ],
}


class Data:
    """A data set's spec, model settings, reference points and metrics."""

    def __init__(self, spec, n, steps):
        self.spec, self.steps = spec, steps
        src = make_source(spec)
        self.image = len(src.shape) == 3
        if src.points is not None:
            self.ref = src.points.to(torch.float64)
        else:
            self.ref = src.sample(n, torch.Generator().manual_seed(777)).to(torch.float64)
        self.n = self.ref.shape[0]
        self.features = feature_extractor("digits8") if self.image else None
        self.ref_stats = self.features.stats(self.ref.float()) if self.image else None

    def config(self, method, seed, overrides):
        if self.image:
            return make_config(
                method,
                self.spec,
                steps=self.steps,
                batch_size=128,
                lr=2e-3,
                seed=seed,
                model="unet",
                model_options=UNET_CPU,
                overrides=overrides,
            )
        return make_config(
            method,
            self.spec,
            steps=self.steps,
            batch_size=256,
            lr=2e-3,
            seed=seed,
            width=128,
            depth=3,
            overrides=overrides,
        )

    def cell(self, run, sampler, nfe, options, seed, n=None):
        n = n or self.n
        t0 = time.perf_counter()
        out = run.sample(
            n,
            sampler=sampler,
            nfe=nfe,
            options=options,
            data_space=False,
            generator=torch.Generator().manual_seed(1000 + seed),
        )
        secs = time.perf_counter() - t0
        x = run.scaler.inverse(out.x.reshape(n, -1)).reshape(out.x.shape).to(torch.float64)
        c = {"nfe": out.nfe, "seconds": secs}
        if not torch.isfinite(x).all():
            return {**c, "w2": float("inf"), "fd": float("inf")}
        if n == self.n:
            c["w2"] = exact_ot(x.reshape(n, -1), self.ref.reshape(n, -1)).w2
            if self.image:
                c["fd"] = frechet_distance(self.features.stats(x.float()), self.ref_stats).value
        if out.energy is not None:
            dec = path_energy_decomposition(out.start, out.x, out.energy)
            gap = dec.coupling_gap  # a bracket; its point estimate where the method has one
            c.update(
                curvature=dec.curvature.value,
                coupling_gap=gap.value if gap.value is not None else gap.lower,
                action=dec.path_energy.value,
            )
        return c


def run_seed(data, seed, pair_nfe, pairs, root, log):
    res = {}
    t = {}
    folders = {}
    for model, method, ov in (
        ("teacher", "ddpm", FAST),
        ("icfm", "icfm", {}),
    ):
        d = tempfile.mkdtemp(dir=root)
        t0 = time.perf_counter()
        train_run(data.config(method, seed, ov), d)
        t[model] = time.perf_counter() - t0
        folders[model] = d
    d = tempfile.mkdtemp(dir=root)
    t0 = time.perf_counter()
    train_run(
        data.config(
            "icfm",
            seed,
            {"reflow.teacher": folders["teacher"], "reflow.pairs": pairs, "reflow.nfe": pair_nfe},
        ),
        d,
    )
    t["reflow"] = time.perf_counter() - t0
    folders["reflow"] = d
    log(f"  {data.spec} seed {seed}: trained " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()))
    for model, rows in ROWS.items():
        run = load_run(folders[model])
        for label, sampler, opts, _ in rows:
            for k in NFES:
                res[f"{model}|{label}|{k}"] = data.cell(run, sampler, k, opts, seed)
        # the curvature of the solved ODE at a tight tolerance (dopri5), on up to 512 points
        m = min(512, data.n)
        res[f"{model}|dopri5|adaptive"] = data.cell(run, "dopri5", None, None, seed, n=m)
    res["train_seconds"] = t
    return res


def _metric(data_image):
    return "fd" if data_image else "w2"


def _mean(vals):
    vals = [v for v in vals if v is not None]
    return statistics.mean(vals) if vals else None


def _sd(vals):
    vals = [v for v in vals if v is not None]
    return statistics.stdev(vals) if len(vals) > 1 else 0.0


def print_tables(results, out=print):
    for spec, per_seed in results["data"].items():
        image = per_seed["image"]
        seeds = [s for s in per_seed["seeds"] if s in per_seed]  # a partial run: those done
        metric = _metric(image)
        floor = per_seed.get("floor")
        note = "" if floor is None else f"; W2 between two data sets of this size: {floor:.3f}"
        out(f"\n### {spec}: {metric.upper()} (mean +- sd over seeds {', '.join(seeds)}{note})\n")
        out("| model | sampler | " + " | ".join(f"NFE {k}" for k in NFES) + " |")
        out("|---|---|" + "---|" * len(NFES))
        best = {}
        for model, rows in ROWS.items():
            for label, _, _, hybrid in rows:
                cells = []
                for k in NFES:
                    vals = [per_seed[s][f"{model}|{label}|{k}"].get(metric) for s in seeds]
                    mu = _mean(vals)
                    cells.append(f"{mu:.3f} +- {_sd(vals):.3f}")
                    if not hybrid or model == "reflow":
                        key = (model if model != "reflow" else "reflow", k, hybrid)
                        if key not in best or mu < best[key][0]:
                            best[key] = (mu, label)
                tag = " (hybrid)" if hybrid else ""
                out(f"| {model} | {label}{tag} | " + " | ".join(cells) + " |")
        out("")
        out(
            "| NFE | teacher best pure | geodesic | icfm best pure | flow_pc (best snr) | "
            "reflow best | reflow vs teacher best |"
        )
        out("|---|---|---|---|---|---|---|")
        for k in NFES:
            tb = best[("teacher", k, False)]
            ib = best[("icfm", k, False)]
            rb = best[("reflow", k, True)]
            geo = _mean(
                [per_seed[s][f"teacher|geodesic (dpm_solver)|{k}"].get(metric) for s in seeds]
            )
            pcs = [
                (_mean([per_seed[s][f"icfm|{lab}|{k}"].get(metric) for s in seeds]), lab)
                for lab, smp, _, h in ROWS["icfm"]
                if h
            ]
            pc = min(pcs)
            out(
                f"| {k} | {tb[0]:.3f} ({tb[1]}) | {geo:.3f} | {ib[0]:.3f} ({ib[1]}) | "
                f"{pc[0]:.3f} ({pc[1]}) | {rb[0]:.3f} ({rb[1]}) | {rb[0] / tb[0]:.2f}x |"
            )
        out("")
        out("| model | curvature (dopri5) | coupling gap | action | NFE | train s |")
        out("|---|---|---|---|---|---|")
        for model in ROWS:
            cs = [per_seed[s][f"{model}|dopri5|adaptive"] for s in seeds]
            out(
                f"| {model} | {_mean([c.get('curvature') for c in cs]):.4f} | "
                f"{_mean([c.get('coupling_gap') for c in cs]):.4f} | "
                f"{_mean([c.get('action') for c in cs]):.3f} | "
                f"{_mean([c['nfe'] for c in cs]):.0f} | "
                f"{_mean([per_seed[s]['train_seconds'][model] for s in seeds]):.0f} |"
            )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="moons,gmm2d,digits_images")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps-2d", type=int, default=3000)
    p.add_argument("--steps-images", type=int, default=1500)
    p.add_argument("--n", type=int, default=2000, help="2-D samples and data points")
    p.add_argument("--pairs", type=int, default=4096, help="teacher pairs of the reflow model")
    p.add_argument("--pair-nfe", type=int, default=32, help="dpm_solver NFE of those pairs")
    p.add_argument("--quick", action="store_true", help="200 / 60 steps, one seed, 500 points")
    p.add_argument("--json", default=None, help="write every cell to this file")
    p.add_argument("--tables", default=None, help="reprint the tables of a --json file")
    a = p.parse_args()
    if a.tables:
        with open(a.tables) as f:
            print_tables(json.load(f))
        return
    torch.set_num_threads(1)
    if a.quick:
        a.seeds, a.steps_2d, a.steps_images, a.n, a.pairs = "0", 200, 60, 500, 512
    seeds = a.seeds.split(",")
    start = time.perf_counter()
    results = {"args": vars(a), "data": {}}
    with tempfile.TemporaryDirectory() as root:
        for spec in a.data.split(","):
            image = spec.startswith("digits")
            data = Data(spec, a.n, a.steps_images if image else a.steps_2d)
            per = {"image": image, "seeds": seeds}
            if not image:  # the finite-sample floor of W2: two independent data sets of size n
                g = torch.Generator().manual_seed(778)
                per["floor"] = exact_ot(data.ref, make_source(spec).sample(a.n, g).double()).w2
            for s in seeds:
                per[s] = run_seed(
                    data, int(s), a.pair_nfe, a.pairs, root, lambda m: print(m, flush=True)
                )
                results["data"][spec] = per
                if a.json:
                    with open(a.json, "w") as f:
                        json.dump(results, f)
            print(f"  {spec} done at {time.perf_counter() - start:.0f} s", flush=True)
    results["seconds"] = time.perf_counter() - start
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f)
    print_tables(results)
    print(f"\ntotal {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
