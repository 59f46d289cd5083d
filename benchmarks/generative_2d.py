"""wasserflow beside TorchCFM and diffusers on 2-D moons: W2 to fresh data versus NFE.

Protocol (shared/reference/BASELINES.md): N(0, I) -> moons (TorchCFM's law with i.i.d. angles,
``wasserflow.data.moons``), the same data sampler for every library; TorchCFM's 2-D net (MLP
3 x 64 SELU, time as a third input), batch 256, Adam 1e-3; W2 (exact OT, float64) between 2,000
generated points (from 2,000 fixed noise points) and 2,000 fresh data points; Euler with k equal
steps = k NFE; dopri5 (atol = rtol = 1e-5) with its evaluations counted. ``--draws K`` makes
each cell the mean over K (noise, fresh data) sets, draw 0 the protocol's; the noise floor is
the mean W2 of 50 pairs of independent data samples, printed with one pair's sd (about 0.045 at
2,000 points: one cell alone cannot place a sampler within 1.3x of the floor). diffusers' DDPM
(epsilon, linear betas, clip_sample=False) is sampled with DDIM (eta 0, leading spacing, its
default) and with DPMSolverMultistep (DPM-Solver++ 2M, its defaults: linspace timesteps, final
sigma zero, lower_order_final), both on one trained net. wasserflow trains with its own engine
(EMA 0.999, warm-up, cosine decay, grad clip); its "-dpm" rows sample with dpm_solver
(DPM-Solver++ 2M) on the engine's default grid, "-diffusersgrid" on diffusers' grid, "-vel"
rows train the same VP path with velocity instead of epsilon prediction, "-fast" rows add the
log-SNR time input and lr 2e-3 (DIFFUSION_FAST; "-dpm3m" samples with DPM-Solver++ 3M), and
"diffusers-ddpm-ddim-lr2e-3" is the control: diffusers' loop at that learning rate too. Rows
that share a trained model train it once. The flow-map rows (meanflow, meanflow-ot,
shortcut, flowmap-distill) sample with their own jumps (k jumps = k NFE) on the same MLP with a
sinusoidal time embedding (FLOWMAP_NET); the distillation's teacher is the
wasserflow-otcfm-ot2048 recipe at --distill-teacher-steps, whose training time is counted in the
row's ms / step.

    .venv/bin/python benchmarks/generative_2d.py --steps 20000 --seeds 0,1,2     # full protocol
    .venv/bin/python benchmarks/generative_2d.py --quick                          # smoke run
    .venv/bin/python benchmarks/generative_2d.py --steps 20000 --seeds 0 \
        --only diffusers-ddpm-ddim,diffusers-ddpm-dpmsolver,wasserflow-ddpm-dpm       # a subset
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time

import torch
from torchdiffeq import odeint

from wasserflow.data import moons
from wasserflow.engine import load_run, make_config, train_run
from wasserflow.geometry import exact_ot
from wasserflow.samplers import get_sampler

NFES = [1, 2, 4, 8, 16, 32, 100]
OTCFM_STRAIGHT = {"ot_batch": 2048, "ot_reuse": 32, "times": {"kind": "power", "power": 3.0}}
"""wasserflow's OT-CFM options for few-step sampling: exact OT on 2,048-point blocks solved in
a background thread (each pair trained on 32 times), times t = u^3 (denser near the noise)."""
STRAIGHT_TRAIN = {"lr": 2e-3, "batch_size": 512}
"""...trained with these (same net; the steps are set by --straight-steps)."""
FLOWMAP_OT = {"ot_batch": 2048, "ot_reuse": 32}
"""MeanFlow on the OT pairs of OTCFM_STRAIGHT's blocks (its own time distribution)."""
DIFFUSION_FAST = {"prediction": "velocity", "time_input": "logsnr"}
"""wasserflow's diffusion options for few-step sampling: velocity prediction and the log-SNR as
the network's time input (the path, schedule and coupling unchanged), trained at lr 2e-3."""
FLOWMAP_NET = "sinusoidal"
"""The flow-map rows' time embedding: the same MLP 3 x 64 SELU, with the sinusoidal embedding (64
features) instead of raw t as a third input, since the second time is added to the time
embedding (wasserflow.models.conditioning); the first layer is then Linear(66, 64)."""


DRAWS = [1]
"""Draws per cell (--draws): a cell is the mean over draws j of W2(samples from noise set j,
fresh data set j); draw 0 is the protocol's single draw (noise seed + 1, data 10,000 + seed)."""
FLOOR_PAIRS = 50
"""Pairs of independent data samples whose mean W2 is the noise floor."""


def noise_generator(seed, draw=0):
    """The generator of draw ``draw``'s noise points."""
    return torch.Generator().manual_seed(seed + 1 + 1000 * draw)


def w2_to_fresh(x, seed, draw=0):
    """Exact W2 between the points x and draw ``draw``'s fresh data set of the seed."""
    g = torch.Generator().manual_seed(10_000 + seed + 1000 * draw)
    return exact_ot(x.double(), moons(x.shape[0], g, dtype=torch.float64)).w2


def mean_w2(sample, seed):
    """The cell: mean over the draws j of W2(sample(noise generator j), fresh set j)."""
    return statistics.mean(
        w2_to_fresh(sample(noise_generator(seed, j)), seed, j) for j in range(DRAWS[0])
    )


def mean_w2_nfe(sample, seed):
    """(mean W2, mean NFE) over the draws of an adaptive sampler: sample(g) -> (x, nfe)."""
    runs = [sample(noise_generator(seed, j)) for j in range(DRAWS[0])]
    w2 = statistics.mean(w2_to_fresh(x, seed, j) for j, (x, _) in enumerate(runs))
    return w2, statistics.mean(nfe for _, nfe in runs)


def noise_floor(n):
    """(mean, its standard error, one pair's sd) of W2 between two independent n-point moons
    samples over FLOOR_PAIRS pairs: what a perfect sampler scores (a single pair's W2 scatters
    by its sd, mostly from how the points split between the two moons)."""
    ws = [
        exact_ot(
            moons(n, torch.Generator().manual_seed(20_000 + 1000 * j), dtype=torch.float64),
            moons(n, torch.Generator().manual_seed(30_000 + 1000 * j), dtype=torch.float64),
        ).w2
        for j in range(FLOOR_PAIRS)
    ]
    sd = statistics.stdev(ws)
    return statistics.mean(ws), sd / len(ws) ** 0.5, sd


def torchcfm_train(kind, steps, seed, on_step=None):
    """TorchCFM's 2-D loop (its MLP, its flow matcher, Adam 1e-3, batch 256) on the shared moons
    sampler: (net, training seconds); ``on_step(step, net)`` is called after every step."""
    from torchcfm.conditional_flow_matching import (
        ConditionalFlowMatcher,
        ExactOptimalTransportConditionalFlowMatcher,
    )
    from torchcfm.models import MLP

    torch.manual_seed(seed)  # TorchCFM draws t and pairs from the global RNG
    net = MLP(dim=2, w=64, time_varying=True)
    fm = (
        ConditionalFlowMatcher(0.0)
        if kind == "icfm"
        else ExactOptimalTransportConditionalFlowMatcher(0.0)
    )
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x1 = moons(256, g)
        x0 = torch.randn(256, 2, generator=g)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        loss = ((net(torch.cat([xt, t[:, None]], 1)) - ut) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, net)
    return net, time.perf_counter() - t0


def torchcfm_run(kind, steps, seed, n_eval):
    net, secs = torchcfm_train(kind, steps, seed)

    def v(t, x):
        return net(torch.cat([x, t.expand(x.shape[0], 1)], 1))

    def euler(k, g):
        x = torch.randn(n_eval, 2, generator=g)
        for i in range(k):
            x = x + v(torch.tensor(i / k), x) / k
        return x

    def dopri5(g):
        count = [0]

        def counted(t, x):
            count[0] += 1
            return v(t.reshape(1, 1), x)

        z = torch.randn(n_eval, 2, generator=g)
        x = odeint(counted, z, torch.tensor([0.0, 1.0]), atol=1e-5, rtol=1e-5, method="dopri5")
        return x[-1], count[0]

    with torch.no_grad():
        row = {k: mean_w2(functools.partial(euler, k), seed) for k in NFES}
        row["dopri5"] = mean_w2_nfe(dopri5, seed)
    return row, secs / steps * 1000


@functools.cache
def _diffusers_trained(steps, seed, lr=1e-3):
    """diffusers' DDPM training loop on moons: (net, scheduler config, ms / step), shared by the
    diffusers rows (one net, several samplers)."""
    from diffusers import DDPMScheduler
    from torchcfm.models import MLP

    torch.manual_seed(seed)
    net = MLP(dim=2, w=64, time_varying=True)
    sched = DDPMScheduler(
        1000,
        beta_schedule="linear",
        beta_start=1e-4,
        beta_end=0.02,
        prediction_type="epsilon",
        clip_sample=False,
    )
    opt = torch.optim.Adam(net.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        x1 = moons(256, g)
        noise = torch.randn(256, 2, generator=g)
        k = torch.randint(0, 1000, (256,), generator=g)
        xt = sched.add_noise(x1, noise, k)
        loss = ((net(torch.cat([xt, k[:, None] / 1000], 1)) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    return net, sched.config, secs / steps * 1000


def diffusers_ddpm(steps, seed, n_eval, sampler="ddim", lr=1e-3):
    """sampler "ddim": DDIMScheduler (eta 0, its default leading spacing); "dpmsolver":
    DPMSolverMultistepScheduler with its defaults (DPM-Solver++ 2M, midpoint, linspace
    timesteps, final sigma zero, lower_order_final)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    net, config, ms = _diffusers_trained(steps, seed, lr)
    scheduler = {"ddim": DDIMScheduler, "dpmsolver": DPMSolverMultistepScheduler}[sampler]

    def sample(n, g):
        sch = scheduler.from_config(config)
        sch.set_timesteps(n)
        x = torch.randn(n_eval, 2, generator=g)
        for k in sch.timesteps:
            eps = net(torch.cat([x, torch.full((n_eval, 1), float(k) / 1000)], 1))
            x = sch.step(eps, k, x).prev_sample
        return x

    with torch.no_grad():
        return {n: mean_w2(functools.partial(sample, n), seed) for n in NFES}, ms


_RUNS = tempfile.TemporaryDirectory()


@functools.cache
def _wasserflow_trained(
    method, steps, seed, overrides="{}", lr=1e-3, batch_size=256, time_embedding="linear"
):
    """Train once per (method, overrides, steps, seed, lr, batch, time embedding) into a folder
    kept for the process: (run folder, ms / step), shared by the rows that sample the same
    model (and by a distillation that takes it as its teacher)."""
    cfg = make_config(
        method,
        "moons",
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        width=64,
        depth=3,
        activation="selu",
        time_embedding=time_embedding,
        method_overrides=json.loads(overrides),
    )
    d = tempfile.mkdtemp(dir=_RUNS.name)
    t0 = time.perf_counter()
    train_run(cfg, d)
    return d, (time.perf_counter() - t0) / steps * 1000


def wasserflow_run(
    method,
    steps,
    seed,
    n_eval,
    sampler=None,
    overrides=None,
    plan=None,
    lr=1e-3,
    batch_size=256,
    time_embedding="linear",
):
    """``overrides``: method recipe overrides (a different model); ``plan``: sampler options
    read by the sampling plan (e.g. dpm_solver's grid), applied to the trained model."""
    d, ms = _wasserflow_trained(
        method,
        steps,
        seed,
        json.dumps(overrides or {}, sort_keys=True),
        lr,
        batch_size,
        time_embedding,
    )
    run = load_run(d)

    def sample(k, g):
        return run.sample(n_eval, sampler=sampler, nfe=k, options=plan, generator=g).x

    # a sampler with 2 NFE per step (midpoint, heun) cannot spend 1: no cell there
    per_step = get_sampler(sampler or run.default_sampler).nfe_per_step or 1
    row = {k: mean_w2(functools.partial(sample, k), seed) if per_step <= k else None for k in NFES}
    if (sampler is None or sampler in ("euler", "heun", "midpoint")) and run.supports("dopri5"):

        def dopri5(g):
            out = run.sample(n_eval, sampler="dopri5", generator=g)
            return out.x, out.nfe

        row["dopri5"] = mean_w2_nfe(dopri5, seed)
    return row, ms


def flowmap_run(method, steps, seed, n_eval, overrides=None, lr=1e-3, batch_size=256):
    """A flow-map method (its own sampler: composed jumps, k jumps = k NFE) on the same MLP with
    the sinusoidal time embedding (FLOWMAP_NET); dopri5 on u(x, t, t) where it has one."""
    return wasserflow_run(
        method,
        steps,
        seed,
        n_eval,
        overrides=overrides,
        lr=lr,
        batch_size=batch_size,
        time_embedding=FLOWMAP_NET,
    )


def distill_run(
    steps,
    seed,
    n_eval,
    teacher_steps,
    teacher_overrides,
    teacher_lr,
    teacher_batch_size,
    frames=4,
    pairs=65_536,
    teacher_sampler="rk4",
    teacher_nfe=256,
):
    """Flow-map distillation of an OT-CFM teacher trained here first (the
    wasserflow-otcfm-ot2048 recipe, shared with that row at equal steps; its training seconds
    are added to the student's in the ms / step column, per student step): ``pairs``
    trajectories of the teacher's ODE by ``teacher_sampler`` at ``teacher_nfe`` evaluations,
    K = ``frames`` (jumps of 1, 2 and 4 trained), the student at STRAIGHT_TRAIN's batch and lr.

    On seed 0 at 20,000 teacher and 20,000 student steps (10 draws): 8,192 pairs, K = 16 at
    batch 256 and lr 1e-3 gave W2 0.330 at one jump; 65,536 pairs 0.240 (K = 4) and 0.221
    (K = 1, one jump only, useless at 2); at batch 512 and lr 2e-3 0.224 (K = 4: 0.204 and
    0.197 at 2 and 4 jumps) and 0.219 (K = 2)."""
    teacher, t_ms = _wasserflow_trained(
        "otcfm",
        teacher_steps,
        seed,
        json.dumps(teacher_overrides, sort_keys=True),
        teacher_lr,
        teacher_batch_size,
    )
    over = {
        "objective.teacher": teacher,
        "objective.frames": frames,
        "objective.teacher_sampler": teacher_sampler,
        "objective.teacher_nfe": teacher_nfe,
        "objective.pairs": pairs,
        # the teacher's MLP sees t linearly (TorchCFM's), the student's a sinusoid: it cannot
        # start from the teacher's weights; the measured rows ran at the old time factor
        "objective.init": "random",
        "objective.time_factor": 1e-3,
    }
    row, ms = flowmap_run("flowmap-distill", steps, seed, n_eval, overrides=over, **STRAIGHT_TRAIN)
    return row, ms + t_ms * teacher_steps / steps


def jko_flow_run(seed, n_eval):
    """The JKO flow (its default blocks; no network, so TorchCFM's net settings do not apply):
    W2 at its own fixed number of blocks, reported in the adaptive column."""
    cfg = make_config("jko-flow", "moons", seed=seed)
    d = tempfile.mkdtemp(dir=_RUNS.name)
    t0 = time.perf_counter()
    train_run(cfg, d)
    secs = time.perf_counter() - t0
    run = load_run(d)

    def sample(g):
        out = run.sample(n_eval, generator=g)
        return out.x, out.nfe

    row = {k: None for k in NFES}
    row["dopri5"] = mean_w2_nfe(sample, seed)
    return row, secs / cfg.train.steps * 1000


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="300 steps, one seed, 500 points")
    p.add_argument("--only", default="", help="comma-separated subset of the rows' keys")
    p.add_argument(
        "--fast-steps",
        type=int,
        default=None,
        help="steps of the wasserflow-*-fast-* rows (default: --steps); 0.65 x steps "
        "matches diffusers' training seconds (its loop has no EMA, clipping or "
        "checkpoints: 1.0 against 1.55 ms / step here)",
    )
    p.add_argument(
        "--nfes",
        default=",".join(map(str, NFES)),
        help="the NFE budgets of the table's columns (e.g. 4,6,8,10 for the few-step samplers)",
    )
    p.add_argument(
        "--per-seed",
        action="store_true",
        help="also print each seed's row (the table's rows are means over seeds)",
    )
    p.add_argument(
        "--straight-steps",
        type=int,
        default=None,
        help="steps of the wasserflow-otcfm-ot2048 row (default 1.5 x steps: they "
        "cost less than TorchCFM's OT-CFM steps, compare the training seconds)",
    )
    p.add_argument(
        "--distill-steps",
        type=int,
        default=None,
        help="student steps of wasserflow-flowmap-distill (default: steps)",
    )
    p.add_argument(
        "--distill-teacher-steps",
        type=int,
        default=None,
        help="steps of wasserflow-flowmap-distill's teacher, the wasserflow-otcfm-ot2048 "
        "recipe (default 0.7 x steps: teacher and student together then take TorchCFM's "
        "CPU seconds, 162 against 164 at 20,000 steps)",
    )
    p.add_argument(
        "--draws",
        type=int,
        default=1,
        help="draws per cell: each cell is the mean W2 over this many (noise, fresh data) "
        "sets; draw 0 is the protocol's. One draw's W2 scatters by the noise floor's sd "
        "(about 0.045 at 2,000 points), so compare rows with the floor at 10 or more",
    )
    a = p.parse_args()
    NFES[:] = [int(k) for k in a.nfes.split(",")]
    if a.draws < 1:
        p.error(f"--draws must be at least 1, got {a.draws}")
    DRAWS[0] = a.draws
    torch.set_num_threads(1)
    steps, seeds, n = (
        (300, [0], 500) if a.quick else (a.steps, [int(s) for s in a.seeds.split(",")], a.n)
    )
    jobs = {
        "torchcfm-icfm": lambda s: torchcfm_run("icfm", steps, s, n),
        "torchcfm-otcfm": lambda s: torchcfm_run("otcfm", steps, s, n),
        "diffusers-ddpm-ddim": lambda s: diffusers_ddpm(steps, s, n),
        "diffusers-ddpm-dpmsolver": lambda s: diffusers_ddpm(steps, s, n, "dpmsolver"),
        "diffusers-ddpm-ddim-lr2e-3": lambda s: diffusers_ddpm(steps, s, n, lr=2e-3),
        "wasserflow-icfm": lambda s: wasserflow_run("icfm", steps, s, n),
        "wasserflow-otcfm": lambda s: wasserflow_run("otcfm", steps, s, n),
        "wasserflow-otcfm-ot2048": lambda s: wasserflow_run(
            "otcfm",
            a.straight_steps or 3 * steps // 2,
            s,
            n,
            overrides=OTCFM_STRAIGHT,
            **STRAIGHT_TRAIN,
        ),
        "wasserflow-otcfm-ot2048-midpoint": lambda s: wasserflow_run(
            "otcfm",
            a.straight_steps or 3 * steps // 2,
            s,
            n,
            "midpoint",
            overrides=OTCFM_STRAIGHT,
            **STRAIGHT_TRAIN,
        ),
        "wasserflow-ddpm-ddim": lambda s: wasserflow_run("ddpm", steps, s, n, "ddim"),
        "wasserflow-sdevp-heun": lambda s: wasserflow_run("sde-vp", steps, s, n, "heun"),
        "wasserflow-ddpm-dpm": lambda s: wasserflow_run("ddpm", steps, s, n, "dpm_solver"),
        "wasserflow-ddpm-dpm-diffusersgrid": lambda s: wasserflow_run(
            "ddpm", steps, s, n, "dpm_solver", plan={"final_step": 1.0}
        ),
        "wasserflow-ddpm-vel-dpm": lambda s: wasserflow_run(
            "ddpm", steps, s, n, "dpm_solver", overrides={"prediction": "velocity"}
        ),
        "wasserflow-ddpm-fast-dpm": lambda s: wasserflow_run(
            "ddpm", a.fast_steps or steps, s, n, "dpm_solver", overrides=DIFFUSION_FAST, lr=2e-3
        ),
        "wasserflow-ddpm-fast-dpm3m": lambda s: wasserflow_run(
            "ddpm", a.fast_steps or steps, s, n, "dpm_solver_3m", overrides=DIFFUSION_FAST, lr=2e-3
        ),
        "wasserflow-sdevp-fast-dpm": lambda s: wasserflow_run(
            "sde-vp", a.fast_steps or steps, s, n, "dpm_solver", overrides=DIFFUSION_FAST, lr=2e-3
        ),
        **{
            f"wasserflow-{m}-fast-{label}": (
                lambda s, m=m, method=method, sampler=sampler: wasserflow_run(
                    method, a.fast_steps or steps, s, n, sampler, overrides=DIFFUSION_FAST, lr=2e-3
                )
            )
            for m, method in (("ddpm", "ddpm"), ("sdevp", "sde-vp"))
            for label, sampler in (("edm", "edm_heun"), ("unipc", "unipc"), ("ipndm", "ipndm"))
        },
        "wasserflow-sdevp-dpm": lambda s: wasserflow_run("sde-vp", steps, s, n, "dpm_solver"),
        "wasserflow-sdevp-vel-dpm": lambda s: wasserflow_run(
            "sde-vp", steps, s, n, "dpm_solver", overrides={"prediction": "velocity"}
        ),
        # the remaining methods, each with its own default sampler (+ the ODE where it has one)
        "wasserflow-ncsn": lambda s: wasserflow_run("ncsn", steps, s, n),
        "wasserflow-sdeve-pc": lambda s: wasserflow_run("sde-ve", steps, s, n),
        "wasserflow-sdeve-euler": lambda s: wasserflow_run("sde-ve", steps, s, n, "euler"),
        "wasserflow-sbcfm": lambda s: wasserflow_run("sbcfm", steps, s, n),
        "wasserflow-rectified-flow": lambda s: wasserflow_run("rectified-flow", steps, s, n),
        "wasserflow-energy-matching": lambda s: wasserflow_run("energy-matching", steps, s, n),
        "wasserflow-jko-flow": lambda s: jko_flow_run(s, n),
        # flow maps: one jump X(x, 0, 1) = 1 NFE, k composed jumps = k NFE
        "wasserflow-meanflow": lambda s: flowmap_run("meanflow", steps, s, n),
        "wasserflow-meanflow-ot": lambda s: flowmap_run("meanflow-ot", steps, s, n),
        "wasserflow-meanflow-ot2048": lambda s: flowmap_run(
            "meanflow-ot", steps, s, n, overrides=FLOWMAP_OT, **STRAIGHT_TRAIN
        ),
        "wasserflow-shortcut": lambda s: flowmap_run("shortcut", steps, s, n),
        "wasserflow-flowmap-distill": lambda s: distill_run(
            a.distill_steps or steps,
            s,
            n,
            a.distill_teacher_steps or 7 * steps // 10,
            OTCFM_STRAIGHT,
            **{f"teacher_{k}": v for k, v in STRAIGHT_TRAIN.items()},
        ),
    }
    only = [k for k in a.only.split(",") if k]
    floor, se, sd = noise_floor(n)
    print(
        f"# moons, N(0,I) source, {steps} steps, seeds {seeds}, {n} points, each cell the mean "
        f"of {DRAWS[0]} draw(s); noise floor {floor:.3f} +- {se:.3f} (mean W2 of "
        f"{FLOOR_PAIRS} pairs of independent samples; one pair's sd {sd:.3f}), "
        f"1.3x the floor: {1.3 * floor:.3f}"
    )
    print("| model | " + " | ".join(map(str, NFES)) + " | dopri5 (NFE) | ms / step |")
    print("|---" * (len(NFES) + 3) + "|")
    for name, job in jobs.items():
        if only and name not in only:
            continue
        rows, ms = zip(*(job(s) for s in seeds))
        groups = [(name, rows, ms)]
        if a.per_seed and len(seeds) > 1:
            groups += [(f"{name} (seed {s})", (r,), (m,)) for s, r, m in zip(seeds, rows, ms)]
        for label, rs, mss in groups:
            print(
                f"| {label} | " + " | ".join(_cells(rs)) + f" | {statistics.median(mss):.2f} |",
                flush=True,
            )


def _cells(rows):
    """The table cells (means over the rows, one row per seed) of one model."""
    cells = [
        "-" if any(r[k] is None for r in rows) else f"{statistics.mean(r[k] for r in rows):.3f}"
        for k in NFES
    ]
    if "dopri5" in rows[0]:
        w = statistics.mean(r["dopri5"][0] for r in rows)
        e = statistics.mean(r["dopri5"][1] for r in rows)
        cells.append(f"{w:.3f} ({e:.0f})")
    else:
        cells.append("-")
    return cells


if __name__ == "__main__":
    main()
