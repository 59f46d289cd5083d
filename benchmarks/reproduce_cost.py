"""CPU seconds of the methods a ``wasserflow reproduce`` profile trains, one by one.

Runs ``learned``'s and ``images``' per-method step (train, then evaluate, as the report does:
``learned._one`` and ``images_exp._one``) for otcfm and the profile's flow maps, timing each in
this process's CPU seconds (run it with one thread: what an idle core's wall clock shows):
what the flow maps add to the profile, otcfm's for scale. The distillation's teacher is the
otcfm run trained first, as in the report.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reproduce_cost.py --profile default --out /tmp/rc
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from wasserflow.experiments import images_exp, learned, resolve_config
from wasserflow.experiments.context import Context
from wasserflow.experiments.images_exp import ImagesProfile
from wasserflow.experiments.learned import LearnedProfile
from wasserflow.metrics import feature_extractor
from wasserflow.metrics.quality import reference_data


def timed(label, fn):
    t, w = time.process_time(), time.perf_counter()
    fn()
    cpu, wall = time.process_time() - t, time.perf_counter() - w
    print(f"| {label} | {cpu:.1f} | {wall:.1f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="default")
    p.add_argument("--out", required=True, help="a fresh folder for the runs")
    a = p.parse_args()
    cfg = resolve_config(a.profile)
    ctx = Context(Path(a.out), cfg)
    print("| experiment: method | CPU s | wall s |\n|---|---|---|")
    lp = cfg.of(LearnedProfile)
    for m in ["otcfm", *lp.flow_maps]:
        for d in lp.data:
            timed(f"learned {d}: {m}", lambda m=m, d=d: learned._one(ctx, d, m, lp, (0, 1)))
    ip = cfg.of(ImagesProfile)
    ref = reference_data(ip.data, ip.n_eval, ctx.seed + 1)
    ex = feature_extractor(ip.features, ctx.device)
    for m in ["otcfm", *[m for m in ip.methods if m in ip.flow_maps]]:
        timed(f"images: {m}", lambda m=m: images_exp._one(ctx, m, ip, ex, ref, (0, 1)))


if __name__ == "__main__":
    main()
