"""Does the OT coupling make the flow map easier to learn? One-jump error against the exact map.

From N(0, I) to N(m, S) (the ``gaussian2d`` data: m = (1, -0.5), S = [[1.5, 0.6], [0.6, 0.5]])
both couplings have the same one-jump map X(x, 0, 1) = m + S^1/2 x (the Brenier map), in closed
form: the independent coupling's linear path reaches it along curved paths (its ODE's flow map,
``paths.GaussianFlowMap``), the OT coupling along straight ones (McCann's interpolant,
``GaussianGeodesicOracle``: the average velocity is the same for every s). So the two runs of one
objective learn the same target with the same network and budget, and their errors compare
directly. Minibatch OT on 256 points only approximates the OT coupling; ``coupling.ot_batch``
1024 is a tighter one.

Columns, per row and seed: the one-jump error E|X_hat(x, 0, 1) - X(x, 0, 1)|^2 / E|X - x|^2 over
4,000 noise points (relative); the same after 2 and 4 jumps; the model's deviation
D = |u(x, 0, 1) - u(x, 0, 0)|^2 at one jump (mean) next to the exact path's (independent:
|X - x - v(x, 0)|^2 from the closed form; OT: 0).

    .venv/bin/python benchmarks/flowmap_gaussian.py --steps 2000 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from wasserflow.engine import load_run, make_config, train_run
from wasserflow.paths import AffinePath, GaussianFlowMap, LinearSchedule
from wasserflow.samplers import average_velocity_deviation, uniform_grid

M = torch.tensor([1.0, -0.5], dtype=torch.float64)
S = torch.tensor([[1.5, 0.6], [0.6, 0.5]], dtype=torch.float64)
EXACT = GaussianFlowMap(M, S, AffinePath(LinearSchedule()))
ROWS = {
    "meanflow": ("meanflow", {"objective.times": "logit_normal"}),
    "meanflow-ot": ("meanflow-ot", {}),
    "meanflow-ot1024": ("meanflow-ot", {"coupling.ot_batch": 1024}),
    "shortcut": ("shortcut", {}),
    "shortcut-ot": ("shortcut", {"coupling": "ot"}),
}
"""Row -> (method, overrides): MeanFlow with the paper's times on both couplings."""


def measure(name: str, steps: int, seed: int, n: int) -> dict:
    method, over = ROWS[name]
    cfg = make_config(
        method, "gaussian2d", steps=steps, batch_size=256, lr=3e-3, width=64, depth=2,
        warmup=20, ema_decay=0.99, seed=seed, overrides=over,
    )  # fmt: skip
    d = tempfile.mkdtemp()
    t0 = time.perf_counter()
    train_run(cfg, d)
    secs = time.perf_counter() - t0
    run = load_run(d)
    x0 = torch.randn(
        n, 2, generator=torch.Generator().manual_seed(1000 + seed), dtype=torch.float64
    )
    want = EXACT.flow_map(x0, 0.0, 1.0)
    scale = float((want - x0).pow(2).sum(1).mean())
    out = {"seconds": secs}
    for k in (1, 2, 4):
        x = run.sample(n, nfe=k, x0=x0, data_space=False).x
        out[k] = float((x - want).pow(2).sum(1).mean()) / scale
    out["D"] = float(average_velocity_deviation(run.field(), x0, uniform_grid(1)).mean())
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--rows", default=",".join(ROWS))
    a = p.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    x0 = torch.randn(100_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    chord = EXACT.flow_map(x0, 0.0, 1.0) - x0
    d_exact = float((chord - EXACT.velocity(x0, 0.0)).pow(2).sum(1).mean())
    print(
        f"# gaussian2d, {a.steps} steps, MLP 64 x 2, seeds {seeds}; exact D at one jump: "
        f"independent path {d_exact:.3f}, OT path 0\n"
    )
    print("| row | 1 jump | 2 jumps | 4 jumps | D (model) | train s | per seed (1 jump) |")
    print("|---|---|---|---|---|---|---|")
    for name in a.rows.split(","):
        res = [measure(name, a.steps, s, a.n) for s in seeds]
        med = {k: statistics.median(r[k] for r in res) for k in (1, 2, 4, "D", "seconds")}
        per = " / ".join(f"{r[1]:.4f}" for r in res)
        print(
            f"| {name} | {med[1]:.4f} | {med[2]:.4f} | {med[4]:.4f} | {med['D']:.3f} | "
            f"{med['seconds']:.0f} | {per} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
