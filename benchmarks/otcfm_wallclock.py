"""OT-CFM on 2-D moons: wall-clock time to reach TorchCFM's final quality, TorchCFM vs wasserflow.

Protocol of benchmarks/generative_2d.py (shared/reference/BASELINES.md): N(0, I) -> moons,
TorchCFM's net (MLP 3 x 64 SELU, time as an input), batch 256, Adam 1e-3; W2 (exact OT) of
2,000 generated points (Euler, k equal steps) against 2,000 fresh data points. Both trainers
snapshot their weights every ``--every`` steps with the training seconds elapsed so far (the
snapshot and evaluation time excluded); the snapshots are evaluated after training. TorchCFM's
"final quality" q is the W2 of its last iterate at ``--ref-nfe`` Euler steps; the table gives,
for wasserflow's OT-CFM (EMA weights, its recipe's OT options), the first snapshot whose W2 at
each NFE is <= q, and its training seconds over TorchCFM's total; and the W2 of wasserflow's
last snapshot taken within TorchCFM's total training time ("at TorchCFM's budget").

    .venv/bin/python benchmarks/otcfm_wallclock.py --seeds 0 --steps 20000 --ot-batch 2048 \\
        --reuse 16 --time-power 3
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from generative_2d import torchcfm_train, w2_to_fresh  # the sibling script (same protocol)

from wasserflow.engine import TrainedRun, make_config, read_config, train_run


def euler_w2(v, z, k, seed):
    """W2 to fresh moons of k Euler steps of dx/dt = v(t, x) from z."""
    x = z.clone()
    with torch.no_grad():
        for i in range(k):
            x = x + v(torch.tensor(i / k), x) / k
    return w2_to_fresh(x, seed)


def torchcfm_snapshots(steps, seed, every):
    """TorchCFM's OT-CFM loop (generative_2d.torchcfm_train) with (step, seconds, weights)
    snapshots; the seconds exclude the snapshotting."""
    snaps, clock = [], {"t0": time.perf_counter(), "paused": 0.0}

    def snapshot(step, net):
        if step % every == 0 or step == steps:
            t1 = time.perf_counter()
            snaps.append(
                (step, t1 - clock["t0"] - clock["paused"], copy.deepcopy(net.state_dict()))
            )
            clock["paused"] += time.perf_counter() - t1

    net, _ = torchcfm_train("otcfm", steps, seed, on_step=snapshot)
    return net, snaps


def wasserflow_snapshots(steps, seed, every, overrides, out, lr=1e-3, batch_size=256):
    """wasserflow's OT-CFM run with (step, seconds, checkpoint copy) snapshots."""
    cfg = make_config(
        "otcfm",
        "moons",
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        width=64,
        depth=3,
        activation="selu",
        time_embedding="linear",
        overrides={**overrides, "train.checkpoint_every": every},
    )
    run_dir = out / "run"
    snaps = []
    clock = {"t0": time.perf_counter(), "paused": 0.0}

    def progress(_name, step, _record):
        if step % every == 0 or step == steps:
            t1 = time.perf_counter()
            dest = out / f"step-{step}"
            dest.mkdir()
            (dest / "checkpoint.safetensors").write_bytes(
                (run_dir / "checkpoint.safetensors").read_bytes()
            )
            snaps.append((step, t1 - clock["t0"] - clock["paused"], dest))
            clock["paused"] += time.perf_counter() - t1

    clock["t0"] = time.perf_counter()
    train_run(cfg, run_dir, progress=progress)
    cfg = read_config((run_dir / "config.json").read_text(), str(run_dir / "config.json"))
    return cfg, snaps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0")
    p.add_argument("--torchcfm-steps", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=20_000, help="wasserflow's training steps")
    p.add_argument("--every", type=int, default=1000, help="snapshot interval (steps)")
    p.add_argument("--ot-batch", type=int, default=None)
    p.add_argument("--reuse", type=int, default=1)
    p.add_argument("--no-prefetch", action="store_true")
    p.add_argument(
        "--time-power",
        type=float,
        default=1.0,
        help="training times t = u^p (p > 1 favours t near 0, the noise end)",
    )
    p.add_argument("--lr", type=float, default=1e-3, help="wasserflow's peak learning rate")
    p.add_argument("--batch", type=int, default=256, help="wasserflow's pairs per step")
    p.add_argument("--ref-nfe", type=int, default=100)
    p.add_argument("--nfe", default="1,2,100", help="wasserflow's NFEs to time")
    p.add_argument("--n", type=int, default=2000)
    a = p.parse_args()
    torch.set_num_threads(1)
    nfes = [int(k) for k in a.nfe.split(",")]
    overrides = {"ot_batch": a.ot_batch, "ot_reuse": a.reuse, "ot_prefetch": not a.no_prefetch}
    if a.time_power != 1.0:
        overrides["times"] = {"kind": "power", "power": a.time_power}
    print(
        f"# OT-CFM time to TorchCFM's final W2 ({a.ref_nfe} Euler NFE); TorchCFM "
        f"{a.torchcfm_steps} steps, wasserflow {a.steps} steps with {overrides}, lr {a.lr:g}, "
        f"batch {a.batch}; {a.n} points"
    )
    nfe_list = ", ".join(map(str, nfes))
    print(
        f"| seed | TorchCFM s | TorchCFM final W2 | wasserflow s | wasserflow final W2 (NFE "
        f"{nfe_list}) | wasserflow W2 at TorchCFM's budget (step) | "
        + " | ".join(f"s to q at {k} NFE (ratio)" for k in nfes)
        + " |"
    )
    print("|---" * (6 + len(nfes)) + "|")
    ratios = {k: [] for k in nfes}
    for seed in [int(s) for s in a.seeds.split(",")]:
        z = torch.randn(a.n, 2, generator=torch.Generator().manual_seed(seed + 1))
        net, tsnaps = torchcfm_snapshots(a.torchcfm_steps, seed, a.every)

        def v_tcfm(t, x, net=net):
            return net(torch.cat([x, t.expand(x.shape[0], 1)], 1))

        q = euler_w2(v_tcfm, z, a.ref_nfe, seed)
        t_tcfm = tsnaps[-1][1]
        with tempfile.TemporaryDirectory() as d:
            cfg, snaps = wasserflow_snapshots(
                a.steps, seed, a.every, overrides, Path(d), a.lr, a.batch
            )
            cells, final = [], {}

            def w2_at(folder, k, cfg=cfg, z_seed=seed):
                run = TrainedRun.from_stage(cfg, folder)
                x = run.sample(a.n, nfe=k, generator=torch.Generator().manual_seed(z_seed + 1)).x
                return w2_to_fresh(x, z_seed)

            within = [sn for sn in snaps if sn[1] <= t_tcfm]
            budget = (
                "-"
                if not within
                else " / ".join(f"{w2_at(within[-1][2], k):.3f}" for k in nfes)
                + f" ({within[-1][0]})"
            )
            for k in nfes:
                hit = None
                for step, secs, folder in snaps:  # snapshots in training order
                    w = w2_at(folder, k)
                    if w <= q:
                        hit = (step, secs, w)
                        break
                final[k] = w2_at(snaps[-1][2], k)
                if hit is None:
                    cells.append("not reached")
                else:
                    ratios[k].append(hit[1] / t_tcfm)
                    cells.append(f"{hit[1]:.0f} at step {hit[0]} ({hit[1] / t_tcfm:.2f})")
        print(
            f"| {seed} | {t_tcfm:.0f} | {q:.3f} | {snaps[-1][1]:.0f} | "
            + " / ".join(f"{final[k]:.3f}" for k in nfes)
            + f" | {budget} | "
            + " | ".join(cells)
            + " |",
            flush=True,
        )
    for k in nfes:
        if ratios[k]:
            print(
                f"# {k} NFE: median time ratio {statistics.median(ratios[k]):.2f} over "
                f"{len(ratios[k])} seed(s) that reached q"
            )


if __name__ == "__main__":
    main()
