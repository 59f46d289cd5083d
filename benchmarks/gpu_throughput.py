"""OT-CFM training throughput: wasserflow's engine beside TorchCFM's loop and a plain PyTorch
loop of the same model and objective, side by side in one process; Euler sampling NFE/s; peak
memory.

The three loops train the same network on the same data with the same objective: B noise
points x0 ~ N(0, I) and B data points x1, the exact OT permutation of the batch (POT's network
simplex on the CPU), t ~ U(0, 1), x_t = t x1 + (1 - t) x0, loss |v(x_t, t) - (x1 - x0)|^2,
Adam, gradient clipping at 1 and an EMA of the weights (TorchCFM's CIFAR-10 recipe: lr 2e-4,
EMA 0.9999, clip 1):

* ``plain``: the loop one writes by hand (data and noise on the device, the OT plan from
  ``ot.emd``, a foreach EMA);
* ``torchcfm``: TorchCFM's ``ExactOptimalTransportConditionalFlowMatcher`` and the EMA of its
  training script (one ``lerp`` per parameter);
* ``wasserflow``: :func:`wasserflow.engine.train` with the OT pair stream (the plan solved a
  block ahead in a background thread), the path regression objective and the ``train.*``
  options (``--precision bf16``, ``--compile`` with ``--compile-mode``, ``--channels-last``,
  ``--fused``).

Configurations: ``cifar`` (TorchCFM's CIFAR-10 UNet, 35.75 M parameters, batch 128, random
3 x 32 x 32 data: throughput only), ``mlp2d`` (TorchCFM's 2-D MLP, 3 x 64 SELU, batch 256,
moons) and ``unet-small`` (the same UNet code at 1 x 16 x 16 with 32 channels, batch 32).
``--config auto`` (the default) runs ``cifar`` on a GPU and ``mlp2d`` + ``unet-small`` on the CPU.

    .venv/bin/python benchmarks/gpu_throughput.py                         # GPU: < 8 minutes
    .venv/bin/python benchmarks/gpu_throughput.py --precision bf16 --compile --fused
    .venv/bin/python benchmarks/gpu_throughput.py --device cpu --steps 300  # the CPU ratios

The ratios are the medians over repeats of each repeat's own ratio (its loops run back to back),
so a shared machine's drift between repeats moves them less than the steps/s it prints.
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import time

import numpy as np
import ot
import torch
from torch import nn

from wasserflow.data.toy2d import moons
from wasserflow.engine import TrainConfig, train
from wasserflow.models import place
from wasserflow.objectives import PathRegression
from wasserflow.paths import AffinePath, OTPairStream, OTStreamConfig, get_schedule
from wasserflow.samplers import Field, get_sampler

LR, EMA_DECAY, CLIP = 2e-4, 0.9999, 1.0


# --------------------------------------------------------------------------- models and data


class TimeFirst(nn.Module):
    """TorchCFM's nets take (t, x); wasserflow's engine calls net(x, t): the same module."""

    def __init__(self, net: nn.Module, flat: bool):
        super().__init__()
        self.net, self.flat = net, flat

    def forward(self, x, t):
        if self.flat:  # TorchCFM's MLP: t as a last input column
            return self.net(torch.cat([x, t.reshape(-1, 1).to(x.dtype)], 1))
        return self.net(t, x)


def make_net(config: str, seed: int) -> nn.Module:
    from torchcfm.models import MLP
    from torchcfm.models.unet.unet import UNetModelWrapper

    torch.manual_seed(seed)  # TorchCFM's constructors draw from the global generator
    if config == "mlp2d":
        return TimeFirst(MLP(dim=2, w=64, time_varying=True), flat=True)
    if config == "cifar":
        net = UNetModelWrapper(
            dim=(3, 32, 32),
            num_res_blocks=2,
            num_channels=128,
            channel_mult=[1, 2, 2, 2],
            num_heads=4,
            num_head_channels=64,
            attention_resolutions="16",
            dropout=0.1,
        )
    else:  # unet-small
        net = UNetModelWrapper(
            dim=(1, 16, 16),
            num_res_blocks=1,
            num_channels=32,
            channel_mult=[1, 2],
            num_heads=1,
            num_head_channels=-1,
            attention_resolutions="8",
            dropout=0.0,
        )
    return TimeFirst(net, flat=False)


def setup(config: str):
    """(shape, batch size, a data tensor on the CPU)."""
    g = torch.Generator().manual_seed(0)
    if config == "mlp2d":
        return (2,), 256, moons(20_000, g)
    shape, batch = ((3, 32, 32), 128) if config == "cifar" else ((1, 16, 16), 32)
    return shape, batch, torch.rand((4096, *shape), generator=g) * 2 - 1


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process-wide, MB


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# --------------------------------------------------------------------------- the three loops


def ot_pairs(x0, x1):
    """x1 permuted by the exact OT plan of the batch (POT, on the CPU)."""
    n = x0.shape[0]
    M = torch.cdist(x0.reshape(n, -1), x1.reshape(n, -1)) ** 2
    a = np.full(n, 1.0 / n)
    plan = ot.emd(a, a, M.detach().double().cpu().numpy())
    return x1[torch.from_numpy(plan.argmax(1)).to(x1.device)]


def plain_loop(net, data, batch, steps, warmup, device, precision, on_step=None):
    data = data.to(device)
    params = [p for p in net.parameters()]
    opt = torch.optim.Adam(params, lr=LR)
    ema = [p.detach().clone() for p in params]
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        x1 = data[torch.randint(0, len(data), (batch,), device=device)]
        x0 = torch.randn_like(x1)
        x1 = ot_pairs(x0, x1)
        t = torch.rand(batch, device=device)
        tb = t.reshape(-1, *([1] * (x1.dim() - 1)))
        xt = tb * x1 + (1 - tb) * x0
        with amp:
            v = net(xt, t)
        loss = ((v.float() - (x1 - x0)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - EMA_DECAY)
        if on_step is not None:
            on_step()
    sync(device)
    return steps / (time.perf_counter() - t0)


def torchcfm_loop(net, data, batch, steps, warmup, device, precision, on_step=None):
    from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher

    fm = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
    data = data.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        x1 = data[torch.randint(0, len(data), (batch,), device=device)]
        x0 = torch.randn_like(x1)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        with amp:
            vt = net(xt, t)
        loss = torch.mean((vt.float() - ut) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP)
        opt.step()
        for k, v in net.state_dict().items():  # train_cifar10.py's ema(): one lerp per tensor
            ema[k].mul_(EMA_DECAY).add_(v.detach(), alpha=1 - EMA_DECAY)
        if on_step is not None:
            on_step()
    sync(device)
    return steps / (time.perf_counter() - t0)


def wasserflow_loop(net, data, batch, steps, warmup, device, options, on_step=None):
    place(net, device)
    objective = PathRegression(AffinePath(get_schedule("linear")), "velocity", coupling="pairs")

    def draw(n, g):
        return data[torch.randint(0, len(data), (n,), generator=g)]

    stream = OTPairStream(draw, OTStreamConfig(batch, batch), seed=0, total_steps=warmup + steps)
    cfg = TrainConfig(
        steps=warmup + steps,
        batch_size=batch,
        lr=LR,
        warmup=0,
        decay="none",
        grad_clip=CLIP,
        ema_decay=EMA_DECAY,
        log_every=10**9,
        **options,
    )
    stamps = {}

    def progress(step, record):
        if step == warmup:
            sync(device)
            stamps["t0"] = time.perf_counter()
        if on_step is not None:
            on_step()

    train(net, objective, stream, cfg, progress=progress)
    sync(device)
    return steps / (time.perf_counter() - stamps["t0"])


def sampling_nfe_per_s(net, shape, device, nfe, n, precision, repeats):
    """Euler NFE/s at batch n: wasserflow's sampler on the network's Field with its kinetic
    energy (the default: float64 sum_k h_k |v_k|^2), without it (``energy=False``), and a
    plain loop. Each repeat times the three back to back (best of 3 calls each on the CPU, one
    on a GPU, in rotating order); returns the medians of NFE/s and of each repeat's time ratio
    to the plain loop. On the CPU the time is the thread's CPU time (one thread: a shared machine's other
    processes do not count), on a GPU the wall-clock time after a synchronisation."""
    clock = time.perf_counter if device.type == "cuda" else time.thread_time
    path = AffinePath(get_schedule("linear"))
    field = Field.from_network(net, path, "velocity")
    euler = get_sampler("euler")
    grid = torch.linspace(0, 1, nfe + 1, device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    x0 = torch.randn((n, *shape), device=device)

    def plain():
        x = x0
        for k in range(nfe):
            t = torch.full((n,), k / nfe, device=device)
            x = x + net(x, t).float() / nfe

    calls = {"wasserflow": lambda: euler(field, x0, grid)}
    if "energy" in euler.options():  # (a version before the option: the energy always on)
        calls["wasserflow, energy off"] = lambda: euler(field, x0, grid, energy=False)
    calls["plain"] = plain
    seconds: dict[str, list[float]] = {k: [] for k in calls}
    with torch.no_grad(), amp:
        for name in calls:  # warm-up
            calls[name]()
        for r in range(repeats):
            names = list(calls)[r % len(calls) :] + list(calls)[: r % len(calls)]
            for name in names:
                best = math.inf
                for _ in range(3 if device.type == "cpu" else 1):  # a GPU: one call, seconds
                    sync(device)
                    t0 = clock()
                    calls[name]()
                    sync(device)
                    best = min(best, clock() - t0)
                seconds[name].append(best)
    return {
        name: (
            nfe / statistics.median(v),
            statistics.median(a / p for a, p in zip(v, seconds["plain"], strict=True)),
        )
        for name, v in seconds.items()
    }


def profile_loops(config, args, device, options):
    """Where a step's time goes: torch.profiler over ``--profile`` steps of each loop, after
    ``--warmup`` unrecorded ones. Prints each loop's operators with the largest self time on the
    device (the GPU's kernels; the CPU's operators without one) and, on a GPU, the share of the
    recorded wall-clock the GPU was busy: near 1, the step is bound by the GPU's arithmetic or
    memory; well under 1, by the host (kernel launches, a host synchronisation such as the OT
    plan's copy to the CPU), which CUDA graphs or moving work off the host would remove."""
    from torch.profiler import ProfilerActivity, profile, schedule

    shape, batch, data = setup(config)
    gpu = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    n, w = args.profile, max(1, args.warmup)
    for name in args.loops:
        net = make_net(config, seed=0).to(device)
        wall = {}
        with profile(
            activities=acts, schedule=schedule(wait=w - 1, warmup=1, active=n, repeat=1)
        ) as prof:

            def on_step(prof=prof, wall=wall):
                wall["k"] = k = wall.get("k", 0) + 1
                if k in (w, w + n):
                    sync(device)
                    wall[k] = time.perf_counter()
                prof.step()

            if name == "plain":
                plain_loop(net, data, batch, n, w, device, args.precision, on_step)
            elif name == "torchcfm":
                torchcfm_loop(net, data, batch, n, w, device, args.precision, on_step)
            else:
                wasserflow_loop(net, data.to(torch.float32), batch, n, w, device, options, on_step)
        events = prof.key_averages()
        key = "self_device_time_total" if gpu else "self_cpu_time_total"
        seconds = wall[w + n] - wall[w]
        line = f"\n{name}: {n} steps profiled, {seconds / n * 1000:.1f} ms per step (wall)"
        if gpu:
            busy = sum(getattr(e, key) for e in events) / 1e6 / seconds
            line += f"; the GPU busy {busy:.0%} of it"
        print(line)
        print(events.table(sort_by=key, row_limit=args.profile_top))
        del net


# --------------------------------------------------------------------------- main


def train_options(args) -> dict:
    """The engine's ``train.*`` speed options from the command line."""
    return {
        "precision": args.precision,
        "compile": args.compile,
        "compile_mode": args.compile_mode,
        "channels_last": args.channels_last,
        "fused": args.fused,
    }


def run(config, args, device):
    shape, batch, data = setup(config)
    options = train_options(args)
    rows = {}
    for _ in range(args.repeats):
        for name in args.loops:  # the same weights for every loop
            net = make_net(config, seed=0).to(device)
            reset_peak(device)
            if name == "plain":
                sps = plain_loop(net, data, batch, args.steps, args.warmup, device, args.precision)
            elif name == "torchcfm":
                sps = torchcfm_loop(
                    net, data, batch, args.steps, args.warmup, device, args.precision
                )
            else:
                sps = wasserflow_loop(
                    net, data.to(torch.float32), batch, args.steps, args.warmup, device, options
                )
            rows.setdefault(name, []).append((sps, peak_mb(device)))
            del net
    med = {k: statistics.median(s for s, _ in v) for k, v in rows.items()}
    # ratios pair by pair (the loops of one repeat ran back to back): a drift of a shared
    # machine's speed between repeats moves them less than it moves the medians of steps/s
    paired = {
        k: statistics.median(p[0] / s[0] for p, s in zip(rows["plain"], v)) for k, v in rows.items()
    }
    n_params = sum(p.numel() for p in make_net(config, 0).parameters())
    print(
        f"\n{config}: {n_params / 1e6:.2f} M parameters, batch {batch}, {args.steps} steps "
        f"after {args.warmup} warm-up, median of {args.repeats}; device {device}; "
        f"options {options}"
    )
    print(
        "| loop | steps/s (median) | time vs plain (median of paired ratios) "
        "| wasserflow's speed-up | peak memory (MB) |"
    )
    print("|---|---|---|---|---|")
    for name in args.loops:
        mem = max(m for _, m in rows[name])
        print(
            f"| {name} | {med[name]:.2f} | {paired[name]:.2f}x | "
            f"{paired[name] / paired['wasserflow']:.2f}x | {mem:.0f} |"
        )
    net = make_net(config, seed=0).to(device).eval()
    n = 1024 if device.type == "cuda" or config == "mlp2d" else 64
    nfe = 20 if device.type == "cuda" else 10
    s = sampling_nfe_per_s(net, shape, device, nfe, n, args.precision, args.sampling_repeats)
    clock = "wall-clock time" if device.type == "cuda" else "CPU time"
    print(
        f"\nEuler sampling, batch {n}, {nfe} steps, median of {args.sampling_repeats} repeats "
        f"({clock})\n"
        "| sampler | NFE/s (median) | time vs plain (median of paired ratios) |\n|---|---|---|"
    )
    for name, (rate, ratio) in s.items():
        print(f"| {name} | {rate:.0f} | {ratio:.2f}x |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--config", default="auto", choices=["auto", "cifar", "mlp2d", "unet-small"])
    p.add_argument("--steps", type=int, default=None, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument(
        "--sampling-repeats",
        type=int,
        default=None,
        help="repeats of the sampling comparison (default 15 on the CPU, 1 on a GPU)",
    )
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
        help="torch.compile's mode for the wasserflow loop (reduce-overhead: CUDA graphs)",
    )
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--fused", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        help="after the timing, profile this many steps of each loop (torch.profiler): the top "
        "operators by self time and the GPU's busy share (0: off)",
    )
    p.add_argument("--profile-top", type=int, default=15, help="operators listed per loop")
    p.add_argument(
        "--loops",
        default="plain,torchcfm,wasserflow",
        help="the loops to time, comma-separated (plain and wasserflow always run)",
    )
    args = p.parse_args()
    wanted = {x.strip() for x in args.loops.split(",")} | {"plain", "wasserflow"}
    unknown = wanted - {"plain", "torchcfm", "wasserflow"}
    if unknown:
        p.error(
            f"--loops: unknown {', '.join(sorted(unknown))}; choose plain, torchcfm, wasserflow"
        )
    args.loops = [k for k in ("plain", "torchcfm", "wasserflow") if k in wanted]
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    gpu = device.type == "cuda"
    args.steps = args.steps or (300 if gpu else 200)
    args.warmup = args.warmup or (30 if gpu else 20)
    args.repeats = args.repeats or (1 if gpu else 3)
    args.sampling_repeats = args.sampling_repeats or (1 if gpu else 15)
    configs = (
        [args.config] if args.config != "auto" else (["cifar"] if gpu else ["mlp2d", "unet-small"])
    )
    for config in configs:
        run(config, args, device)
        if args.profile:
            profile_loops(config, args, device, train_options(args))


if __name__ == "__main__":
    main()
