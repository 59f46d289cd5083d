"""What a flow-map objective costs per training step, against OT-CFM on the same backbone.

One step = the objective's loss on a batch, backward, Adam: the same plain loop for every row
(no EMA, clipping or checkpoints, which cost every objective alike), the losses built by the
engine (``build_objective``), the networks by ``build_network`` (a flow map's backbone carries
its second time as an extra input). Each step is timed in this process's CPU seconds (one torch
thread: what an idle machine's wall clock shows; the machine is shared). Rows, side by side in
one process, interleaved over ``--repeats`` rounds (medians):

* ``torchcfm-otcfm``: TorchCFM's ``ExactOptimalTransportConditionalFlowMatcher`` on the same
  backbone (the peer);
* ``otcfm``, ``icfm``: the engine's flow matching (the OT row couples by exact minibatch OT);
* ``meanflow``: the JVP target under no_grad, then an ordinary forward and backward;
* ``meanflow-jvp-graph``: the alternative this project did not take: the JVP recorded with
  its graph and its primal output differentiated (py-meanflow's form), to price the choice;
* ``meanflow-ot``, ``shortcut`` (two no_grad forwards and one forward-backward per step).

Setups: ``moons`` (the 2-D protocol's MLP 3 x 64 SELU with the sinusoidal time embedding,
batch 256) and ``digits`` (benchmarks/images.py's ``--net cpu`` UNet, 41,609 parameters,
batch 128).

    .venv/bin/python benchmarks/flowmap_cost.py --setups moons,digits --steps 60 --repeats 3
"""

# ruff: noqa: E402
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import statistics
import time

import torch
from images import NETS  # benchmarks/images.py: the digits protocol's nets
from torch.nn.attention import SDPBackend, sdpa_kernel

from wasserflow.data import make_source
from wasserflow.engine import build, make_config
from wasserflow.objectives import MeanFlow
from wasserflow.objectives.flowmap import expand, path_point, squared_norm
from wasserflow.objectives.meanflow import meanflow_times
from wasserflow.objectives.regression import couple
from wasserflow.samplers import AverageNetworkFn

SETUPS = {
    "moons": ("moons", 256, {"model": "mlp", "width": 64, "depth": 3, "activation": "selu"}),
    "digits": ("digits_images", 128, {"model": "unet", "model_options": NETS["cpu"]}),
}
ROWS = ("torchcfm-otcfm", "otcfm", "icfm", "meanflow", "meanflow-jvp-graph", "meanflow-ot",
        "shortcut")  # fmt: skip


def jvp_with_graph(loss: MeanFlow):
    """MeanFlow with the JVP's primal output differentiated (its graph recorded)."""

    def per_sample(net, batch, g, step=0):
        x0, x1 = couple(batch, g, loss.coupling)
        t, s = meanflow_times(x1.shape[0], g, x1.dtype)
        xt, ut = path_point(loss.path, x0, x1, t, g)
        fn = AverageNetworkFn(net)
        with sdpa_kernel([SDPBackend.MATH]):
            u, dudt = torch.func.jvp(
                lambda y, tau: fn(y, tau, s), (xt, t), (ut, torch.ones_like(t))
            )
        err = squared_norm(u - (ut + expand(s - t, xt) * dudt).detach())
        return err / (err.detach() + loss.options.c) ** loss.options.p

    return per_sample


def make_row(name: str, setup: str):
    """(net, loss(net, batch, g), draw(n, g)) of a row."""
    data, batch, opts = SETUPS[setup]
    method = {"torchcfm-otcfm": "otcfm", "meanflow-jvp-graph": "meanflow"}.get(name, name)
    cfg = make_config(method, data, batch_size=batch, seed=0, **opts)
    net = build.build_network(cfg, seed=0)
    src = make_source(data)
    objective = build.build_objective(cfg)
    if name == "torchcfm-otcfm":
        from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher

        fm = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)

        def objective(model, x1, g, step=0):
            x0 = torch.randn(x1.shape, generator=g)
            t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
            return ((model(xt, t) - ut) ** 2).reshape(x1.shape[0], -1).mean(1)
    elif name == "meanflow-jvp-graph":
        objective = jvp_with_graph(objective)
    # the engine's OT-CFM is served pairs by its stream; here it couples inside the loss
    if name in ("otcfm", "meanflow-ot"):
        objective = build.build_objective(cfg.with_overrides({"coupling.stream": False}))
    return net, objective, lambda n, g: src.sample(n, g), batch


def ms_per_step(name: str, setup: str, steps: int, seed: int) -> float:
    net, loss, draw, batch = make_row(name, setup)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # TorchCFM draws its times from the global generator
    times = []
    for _ in range(steps):
        x = draw(batch, g)
        t0 = time.process_time()
        value = loss(net, x, g, 0).mean()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        times.append(time.process_time() - t0)
    return statistics.median(times[5:]) * 1000


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--setups", default="moons,digits")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = a.rows.split(",")
    for setup in a.setups.split(","):
        ms = {r: [] for r in rows}
        for k in range(a.repeats):  # interleaved: a load change hits every row alike
            for r in rows:
                ms[r].append(ms_per_step(r, setup, a.steps, k))
        ref = statistics.median(ms["otcfm"]) if "otcfm" in ms else None
        print(
            f"\n## {setup}: ms per step (loss, backward, Adam), median of {a.repeats} rounds "
            f"of {a.steps} steps; threads {a.threads}\n"
        )
        print("| row | ms / step | steps / s | x the engine's OT-CFM |")
        print("|---|---|---|---|")
        for r in rows:
            m = statistics.median(ms[r])
            ratio = f"{m / ref:.2f}" if ref else "-"
            print(f"| {r} | {m:.2f} | {1000 / m:.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
