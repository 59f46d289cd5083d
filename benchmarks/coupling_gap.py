"""How much each coupling-gap estimator sees, on maps whose gap is known (issue 20, part 1).

For every case of ``wasserflow.metrics.gap_cases`` in d = 2, 64 and 784 at n = 2,000 pairs
(x0 ~ N(0, I)), each bound of ``wasserflow.metrics.coupling_gap`` (one-sided, 95 % each) beside
the true gap, its bias (bound - truth), whether the joint bracket holds, and the Brenier
criterion's asymmetry; then, on the rotated convex gradient grad u(R_theta x) for shrinking
theta, the smallest gap each lower bound (and the Jacobian test) detects (bound > 0). Optional
``--runs``: the bracket and the Jacobian test of trained run folders (their Euler ODE map at
``--nfe``), e.g. the digits models of the ``images`` experiment.

    .venv/bin/python benchmarks/coupling_gap.py                       # about 10 minutes
    .venv/bin/python benchmarks/coupling_gap.py --dims 2,64 --quick   # about a minute
    .venv/bin/python benchmarks/coupling_gap.py --runs OUT/runs/images/* --dims none

The plug-in gap (the exact assignment of the same 2n points) is the estimator every earlier
table used; it reads 0 from d = 64 on whatever the map.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from wasserflow.metrics import coupling_gap, jacobian_symmetry
from wasserflow.metrics.gap_cases import CASES, gap_case

THETAS = (0.01, 0.03, 0.1, 0.3, 1.0)


def _x(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _row(case, n: int, seed: int) -> dict:
    x = _x(n, case.dim, seed)
    y = case.map(x)
    t0 = time.perf_counter()
    res = coupling_gap(x, y, source="normal", map=case.map)
    bounds = {b.method: b.bound for b in res.bounds}
    return {
        "case": case.name,
        "d": case.dim,
        "truth": case.gap,
        "chord": res.chord,
        **bounds,
        "lower": res.lower,
        "upper": res.upper,
        "holds": res.contains(case.gap),
        "asymmetry": res.jacobian.asymmetry,
        "seconds": time.perf_counter() - t0,
    }


def _detection(d: int, n: int, seed: int, thetas) -> list[dict]:
    rows = []
    for th in thetas:
        # paired Monte Carlo: the gap shrinks as theta^2, its error about as theta
        case = gap_case(
            "rotated-convex-gradient", d, theta=th, n_mc=2_000_000 if d <= 64 else 200_000
        )
        x = _x(n, d, seed)
        res = coupling_gap(x, case.map(x), source="normal")
        jac = jacobian_symmetry(case.map, x)
        row = {"d": d, "theta": th, "truth": case.gap, "asymmetry_lower": jac.asymmetry_lower}
        row.update({b.method: b.bound for b in res.bounds})
        rows.append(row)
    return rows


def _smallest(rows: list[dict], key: str, positive=lambda v: v > 0, gap: bool = True) -> str:
    """The smallest gap (or, for a test that sees any rotation, angle) whose bound is > 0."""
    hits = [r for r in rows if positive(r[key])]
    if not hits:
        return "never"
    r = min(hits, key=lambda r: r["theta"])
    return f"{r['truth']:.3g} (theta {r['theta']:g})" if gap else f"theta {r['theta']:g}"


def _runs(paths: list[str], nfe: int, n: int, seed: int) -> list[dict]:
    from wasserflow.engine import load_run

    rows = []
    for p in paths:
        run = load_run(p)
        out = run.sample(
            n,
            sampler="euler",
            nfe=nfe,
            generator=torch.Generator().manual_seed(seed),
            data_space=False,
        )

        def phi(z, run=run):
            return run.transport(z, sampler="euler", nfe=nfe)

        res = coupling_gap(out.start, out.x, source="normal", map=phi)
        rows.append(
            {
                "run": Path(p).name,
                "d": int(out.x[0].numel()),
                "chord": res.chord,
                **{b.method: b.bound for b in res.bounds},
                "lower": res.lower,
                "upper": res.upper,
                "asymmetry": f"{res.jacobian.asymmetry:.4f} [{res.jacobian.asymmetry_lower:.4f}, "
                f"{res.jacobian.asymmetry_upper:.4f}]",
            }
        )
    return rows


def _table(rows: list[dict], keys: list[str]) -> str:
    def f(v):
        if isinstance(v, float):
            return "inf" if math.isinf(v) else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(f(r.get(k, "-")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", default="2,64,784", help="dimensions, or 'none'")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="two angles in the detection sweep")
    ap.add_argument("--runs", nargs="*", default=[], help="trained run folders to measure")
    ap.add_argument("--nfe", type=int, default=32, help="Euler steps of the runs' ODE map")
    ap.add_argument("--json", type=Path, help="write every row here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dims = [] if args.dims == "none" else [int(d) for d in args.dims.split(",")]
    thetas = (0.1, 1.0) if args.quick else THETAS
    cases = [_row(gap_case(c, d, n_mc=100_000), args.n, args.seed) for d in dims for c in CASES]
    detect = [r for d in dims for r in _detection(d, args.n, args.seed, thetas)]
    runs = _runs(args.runs, args.nfe, args.n, args.seed) if args.runs else []
    print(f"## Bounds against the truth (n = {args.n}, 95 % joint)\n")
    keys = ["case", "d", "truth", "rotation", "gaussian-dual", "plugin", "holds", "asymmetry"]
    print(_table(cases, keys + ["seconds"]))
    print(f"\n## Smallest gap detected (bound > 0) on grad u(R_theta x), n = {args.n}\n")
    det = [
        {
            "d": d,
            "rotation": _smallest([r for r in detect if r["d"] == d], "rotation"),
            "plugin": _smallest([r for r in detect if r["d"] == d], "plugin"),
            "jacobian": _smallest(
                [r for r in detect if r["d"] == d], "asymmetry_lower", lambda v: v > 1e-8
            ),
        }
        for d in dims
    ]
    print(_table(det, ["d", "rotation", "plugin", "jacobian"]))
    if runs:
        print(f"\n## Trained runs (Euler {args.nfe} NFE, n = {args.n})\n")
        print(
            _table(
                runs,
                [
                    "run",
                    "d",
                    "chord",
                    "rotation",
                    "gaussian-dual",
                    "plugin",
                    "lower",
                    "upper",
                    "asymmetry",
                ],
            )
        )
    if args.json:
        args.json.write_text(
            json.dumps({"cases": cases, "detection": detect, "runs": runs}, indent=1)
        )


if __name__ == "__main__":
    main()
