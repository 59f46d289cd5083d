"""wasserflow beside TorchCFM and diffusers on images: FD and exact W2 versus NFE, ms per step.

Protocol: the images of a data spec (default scikit-learn's 1,797 8 x 8 digits,
``digits_images``, pixels in [-1, 1], shape (1, 8, 8)); ONE backbone class for every library,
wasserflow's registered ``unet`` (``build_backbone("unet", shape, NET, seed=seed)``, called as
net(x, t) with t on wasserflow's clock: t = 0 noise, t = 1 data; sinusoidal embedding of
1000 t); the SAME training wall-clock for a wasserflow row and its peers (below).

* ``torchcfm-otcfm``: TorchCFM's ``ExactOptimalTransportConditionalFlowMatcher(sigma=0)`` in
  its usual loop (Adam 1e-3, batch B, no EMA; the TorchCFM net(t, x) convention becomes
  net(x, t) here), sampled with Euler (k equal steps = k NFE), torchdiffeq's dopri5 and
  torchdiffeq's fixed-grid midpoint rule (k / 2 steps = k NFE, k = 2, 4, 8).
* ``diffusers-ddpm-ddim``: diffusers' DDPM training loop (DDPMScheduler, 1,000 linear betas
  1e-4..0.02, epsilon, clip_sample False, Adam 1e-3, batch B), the network given diffusers'
  integer step k as wasserflow's clock t = 1 - (k + 1) / 1000; sampled with DDIMScheduler
  (eta 0) at its default "leading" spacing and, on the same net, ``-trailing`` spacing
  (Lin et al. 2023; the better choice at few steps).
* ``wasserflow-otcfm``: the engine's ``otcfm`` recipe (exact minibatch OT coupling, EMA,
  warm-up, cosine decay, clipping) with times t = u^3 (denser near the noise) and lr 2e-3,
  Euler, dopri5 (the engine's ``dopri5`` sampler at the tolerance of TorchCFM's row) and the
  engine's ``midpoint`` sampler at 2, 4, 8 NFE (the same rule as TorchCFM's midpoint column).
* ``wasserflow-otcfm-block``: the same with exact OT on blocks of 1,024 pairs served for 8
  epochs (``coupling.ot_batch``, ``coupling.ot_reuse``), TorchCFM's pair in the OT-CFM target.
* ``wasserflow-icfm``: the engine's ``icfm`` recipe (the independent coupling) with the OT
  rows' times and lr: the map whose coupling the OT rows should improve (the coupling gap's
  bracket and the Jacobian asymmetry of the three side by side; no peer of its own).
* flow maps (k jumps of the ``flowmap`` sampler = k NFE), each trained for ``--seconds``:
  ``wasserflow-meanflow`` (MeanFlow, independent pairs, uniform times), ``wasserflow-meanflow-ot`` (MeanFlow on the block OT pairs below, the
  paper's logit-normal times), ``wasserflow-meanflow-ot-uniform`` (the same pairs with
  meanflow's uniform times: against ``wasserflow-meanflow`` only the coupling differs),
  ``wasserflow-shortcut`` and ``wasserflow-flowmap-distill`` (an OT-CFM teacher with the block
  coupling for DISTILL_TEACHER of the seconds, then the student, started from the teacher's
  weights, on its 2-NFE midpoint map for the rest: the row's seconds are both).
* ``wasserflow-ddpm-fast-dpm``: the engine's ``ddpm`` recipe (the very VP path of diffusers'
  row: DDPM's discrete linear betas) with velocity prediction, the log-SNR as the network's time
  input and lr 2e-3 (benchmarks/README.md's "-fast" settings), sampled with the deterministic
  DPM-Solver++ 2M (``dpm_solver``).

Budget (equal training wall-clock): for each seed every wasserflow row trains first and its
whole wall time W is measured (engine start-up, EMA, clipping, checkpoints included); each peer
then trains for exactly W seconds (its loop stops at the first step ending after W):
TorchCFM's OT-CFM beside ``wasserflow-otcfm``, diffusers' DDPM beside
``wasserflow-ddpm-fast-dpm``. wasserflow's engine needs its step count up front (its cosine
schedule), so a 40-step probe run measures its ms / step and the row trains about
``--seconds`` worth of steps (the probe is noisy on a loaded machine; W, not ``--seconds``, is
what both sides of a pair get). Every row's training seconds, steps and ms / step are printed
(the engine's ms / step from its own loop clock, its fixed start-up cost apart).

Metrics for every row and NFE, from the same starting noise for every library (seed s: the
noise of ``torch.randn(n, *shape, generator=manual_seed(s), float64)``): FD in the feature
space of the shipped digit classifier (``feature_extractor("digits8")``; ``mnist28`` for 28 x 28)
between n samples and the n data images (n = 1,797 for the digits: the whole set), exact W2
(POT's network simplex, float64, flattened images), and the path-energy decomposition of the
sampling curves (``wasserflow.metrics.path_energy_decomposition``): PE = E int |v|^2 dt,
curvature PE - E|x1 - x0|^2 and the coupling gap E|x1 - x0|^2 - W2^2(noise, samples) as a 95 %
bracket (``wasserflow.metrics.coupling_gap``: in d = 64 the exact assignment of the n noises to
the n samples is their own pairing whatever the map, so no sample resolves the gap to a point),
and for wasserflow's Euler maps the Brenier criterion's Jacobian asymmetry. The peers'
PE is computed here along the curves their samplers solve: Euler's polyline (sum h |v|^2),
dopri5 with dE/dt = |v|^2 as an extra state, and DDIM's steps along the path's own curve with
the step's (x0, eps) predictions frozen (``wasserflow.samplers.kinetic.path_segment_energy``,
DDIM's exact dense output), the solved time interval mapped affinely onto [0, 1]. wasserflow's
rows use ``evaluate_run``, which does the same inside the engine's samplers.

    .venv/bin/python benchmarks/images.py --seeds 0,1,2 --seconds 40 --per-seed   # CPU protocol
    .venv/bin/python benchmarks/images.py --quick                                 # smoke run
    .venv/bin/python benchmarks/images.py --tables out.json --per-seed   # reprint a --json file
    .venv/bin/python benchmarks/images.py --data mnist:PATH/t10k-images-idx3-ubyte.gz \
        --net mnist --device cuda --seconds 60 --n 2000 --seeds 0                   # GPU run
"""

# ruff: noqa: E402  (the thread variables below must be set before numpy is imported)
from __future__ import annotations

import os

# numpy's BLAS (wasserflow's minibatch OT cost matrix for d > 16 is a numpy matmul) runs one
# thread, like torch here: with its default threads a 128 x 64 x 128 product took 24 ms instead
# of 0.05 ms on the shared 2-core machine. Set before numpy is imported; the shell's value wins.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import functools
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torchdiffeq import odeint

from wasserflow.data import make_source
from wasserflow.engine import load_run, make_config, train_run
from wasserflow.geometry import exact_ot
from wasserflow.metrics import (
    evaluate_run,
    feature_extractor,
    frechet_distance,
    path_energy_decomposition,
)
from wasserflow.models.registry import build_backbone
from wasserflow.paths.schedules import get_schedule
from wasserflow.samplers.kinetic import path_segment_energy, squared_speed

NFES = [1, 2, 4, 8, 16, 32, 100]
MIDPOINT = [2, 4, 8]
"""Budgets of the explicit midpoint rule (2 NFE per step) for the OT-CFM rows of both libraries
(the engine's ``midpoint`` sampler; torchdiffeq's ``method="midpoint"`` for TorchCFM's net)."""


def mid(k):
    """The column of the midpoint rule at k NFE."""
    return f"midpoint {k}"


NETS = {
    # 2 shared CPU cores, 8 x 8 digits: the CPU protocol (evaluation at n = 1,797 costs ~0.3 s
    # per network call with 8 channels, ~0.6 s with 16, on this machine)
    "cpu": {
        "channels": 8,
        "channel_mult": [1, 2],
        "num_res_blocks": 1,
        "attention_resolutions": [],
        "num_heads": 1,
        "groups": 4,
    },
    "cpu16": {
        "channels": 16,
        "channel_mult": [1, 2],
        "num_res_blocks": 1,
        "attention_resolutions": [],
        "num_heads": 1,
        "groups": 8,
    },
    "digits": {"size": "digits"},
    "mnist": {"size": "mnist"},
}
"""The ``unet`` options of ``--net``: "cpu" (8 channels, levels 8 and 4, one residual block,
attention only in the middle block; the CPU protocol), "cpu16" (16 channels), or the
registered sizes "digits" and "mnist"."""
T = 1000
DDPM = {"beta_start": 1e-4, "beta_end": 0.02}
OTCFM_OPTIONS = {"times": {"kind": "power", "power": 3.0}}
# the 2-D few-step rows' coupling (benchmarks/README.md): exact OT on blocks of 1,024 pairs
# served for 8 epochs, so the minibatch plan is closer to the Brenier map and the flow straighter
OTCFM_BLOCK = {**OTCFM_OPTIONS, "coupling.ot_batch": 1024, "coupling.ot_reuse": 8}
FLOWMAP_OT = {"coupling.ot_batch": 1024, "coupling.ot_reuse": 8}
"""MeanFlow on wasserflow-otcfm-block's OT pairs (its own times)."""
DIFFUSION_FAST = {"prediction": "velocity", "time_input": "logsnr"}
WF_LR = 2e-3
PEER_LR = 1e-3


class Setup:
    """What every row shares: data, net options, budget, metrics."""

    def __init__(self, spec, net, seconds, batch, n, device, dopri_tol, jacobian_points=256):
        self.spec, self.net, self.seconds, self.batch = spec, net, seconds, batch
        self.jacobian_points = jacobian_points
        self.device, self.dopri_tol = torch.device(device), dopri_tol
        src = make_source(spec)
        self.source = src
        self.shape = tuple(src.shape)
        pts = src.points.to(torch.float64)
        g = torch.Generator().manual_seed(12345)
        if pts.shape[0] > n:
            pts = pts[torch.randperm(pts.shape[0], generator=g)[:n]]
        self.ref = pts
        self.n = pts.shape[0]
        fname = {(1, 8, 8): "digits8", (1, 28, 28): "mnist28"}.get(self.shape, "inception")
        self.features = feature_extractor(fname, device)
        self.ref_stats = self.features.stats(pts.float())
        self.w2_max_n = 4000

    def noise(self, seed):
        g = torch.Generator().manual_seed(seed)
        return torch.randn((self.n, *self.shape), generator=g, dtype=torch.float64)

    def build(self, seed):
        return build_backbone("unet", self.shape, self.net, seed=seed).to(self.device)

    def data(self, g):
        return self.source.sample(self.batch, g).to(self.device)

    def call(self, net, x, t):
        """net(x, t) on the device in float32, back as float64 on the CPU."""
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(x.shape[0])
        out = net(x.to(self.device, torch.float32), t.to(self.device))
        return out.to("cpu", torch.float64)

    def measure(self, x0, x, energy, nfe):
        """One cell: FD, W2, the decomposition (module doc)."""
        if not torch.isfinite(x).all():
            return {"fd": float("inf"), "w2": float("inf"), "nfe": nfe}
        fd = frechet_distance(self.features.stats(x.float()), self.ref_stats).value
        w2 = (
            exact_ot(x.reshape(self.n, -1), self.ref.reshape(self.n, -1)).w2
            if self.n <= self.w2_max_n
            else None
        )
        cell = {"fd": fd, "w2": w2, "nfe": nfe}
        if energy is not None:
            cell.update(geometry_cell(path_energy_decomposition(x0, x, energy)))
        return cell


def geometry_cell(dec) -> dict:
    """A table cell's share of a path-energy decomposition: PE, curvature, the chord, the
    coupling gap's bracket (wasserflow.metrics.coupling_gap; None for an infinite upper end)
    and, where the map was tested, its Jacobian asymmetry (the Brenier criterion)."""
    gap = dec.coupling_gap
    cell = {
        "pe": dec.path_energy.value,
        "curvature": dec.curvature.value,
        "chord": dec.chord_energy.value,
        "gap_lower": gap.lower,
        "gap_upper": gap.upper,
    }
    if gap.jacobian is not None:
        cell["asymmetry"] = gap.jacobian.asymmetry
    return cell


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
"""--clock: the seconds a budget counts. "wall" (the default); "cpu": this process's CPU seconds
(every thread's, the OT stream's included), with one torch thread what an idle machine's wall
clock would show: on a loaded machine the wall clock gives a row what the other jobs leave it
(40 s with a load of 9 on the 2 cores: 125 OT-CFM steps where an idle machine trains 1,250)."""
_clock = [CLOCK["wall"]]


def _timed_loop(seconds, step_fn):
    """Run ``step_fn()`` until ``seconds`` have passed on the --clock: (steps, seconds)."""
    clock = _clock[0]
    steps, t0 = 0, clock()
    while clock() - t0 < seconds:
        step_fn()
        steps += 1
    return steps, clock() - t0


def _timed_run(setup, method, seed, steps, over):
    """Train ``steps`` steps into a fresh folder: (folder, seconds on the --clock)."""
    d = tempfile.mkdtemp(dir=_RUNS.name)
    t0 = _clock[0]()
    train_run(_wf_config(setup, method, seed, steps, over), d, device=str(setup.device))
    return d, _clock[0]() - t0


PROBE_STEPS = 30
"""The fewest steps a probe times (after 10 untimed ones)."""


def _probe_span(setup, method, seed, over) -> int:
    """The steps a probe times: at least PROBE_STEPS, and whole periods of the run's OT pair
    stream, which solves one block of ``ot_batch`` pairs every ot_batch x ot_reuse / batch
    steps (64 for wasserflow-otcfm-block's). A span without a solve missed that cost: such
    probes read 29-32 ms a step where the runs took 36-38 (seeds 0, 3, 4 of the block teacher)."""
    c = _wf_config(setup, method, seed, 40, over).coupling
    period = 1
    if c.kind != "independent":
        period = math.ceil((c.ot_batch or setup.batch) * c.ot_reuse / setup.batch)
    return period * math.ceil(PROBE_STEPS / period)


def _probe(setup, method, seed, over):
    """(ms per step, fixed seconds) of the engine's run of ``method`` over :func:`_probe_span`
    steps after 10: on the wall clock from one run's per-step records and its wall time; on the
    CPU clock from the CPU seconds of a 10-step run and a (10 + span)-step run."""
    span = _probe_span(setup, method, seed, over)
    over = {**over, "train.log_every": 1}
    probe, wall = _timed_run(setup, method, seed, 10 + span, over)
    if _clock[0] is CLOCK["wall"]:
        rec = dict(_engine_seconds(probe))
        ms = (rec[10 + span] - rec[10]) / span * 1000
        return ms, wall - rec[10 + span] + rec[10] - 10 * ms / 1000
    _, short = _timed_run(setup, method, seed, 10, over)
    ms = max(1e-3, (wall - short) / span * 1000)
    return ms, wall - (10 + span) * ms / 1000


def torchcfm_otcfm(setup, seed, seconds):
    from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher

    torch.manual_seed(seed)  # TorchCFM draws t from torch's global RNG,
    np.random.seed(seed)  # and its pairs from numpy's (np.random.choice on the plan)
    net = setup.build(seed)
    fm = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
    opt = torch.optim.Adam(net.parameters(), PEER_LR)
    g = torch.Generator().manual_seed(seed)

    def step():
        x1 = setup.data(g)
        x0 = torch.randn(x1.shape, generator=g).to(setup.device)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        loss = ((net(xt, t) - ut) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    net.train()
    steps, secs = _timed_loop(seconds, step)
    net.eval()
    z = setup.noise(seed + 1)
    row = {}
    with torch.no_grad():
        for k in NFES:
            x, e = z.clone(), torch.zeros(setup.n, dtype=torch.float64)
            for i in range(k):
                v = setup.call(net, x, i / k)
                x, e = x + v / k, e + squared_speed(v) / k
            row[k] = setup.measure(z, x, e, k)

        def solve(times, **kw):
            """torchdiffeq on (x, kinetic energy) from z: the cell of its end."""
            count = [0]

            def f(t, state):
                count[0] += 1
                v = setup.call(net, state[0], float(t))
                return v, squared_speed(v)

            start = (z, torch.zeros(setup.n, dtype=torch.float64))
            x, e = odeint(f, start, times.to(torch.float64), **kw)
            return setup.measure(z, x[-1], e[-1], count[0])

        tol = setup.dopri_tol
        row["dopri5"] = solve(torch.tensor([0.0, 1.0]), atol=tol, rtol=tol, method="dopri5")
        for k in MIDPOINT:  # torchdiffeq's fixed-grid midpoint rule, k / 2 steps
            row[mid(k)] = solve(torch.linspace(0.0, 1.0, k // 2 + 1), method="midpoint")
    return row, {"steps": steps, "seconds": secs}


@functools.cache
def _diffusers_trained(setup, seed, seconds):
    """diffusers' DDPM training loop: (net, scheduler config, budget), shared by its rows."""
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    net = setup.build(seed)
    sched = DDPMScheduler(
        T, beta_schedule="linear", prediction_type="epsilon", clip_sample=False, **DDPM
    )
    opt = torch.optim.Adam(net.parameters(), PEER_LR)
    g = torch.Generator().manual_seed(seed)

    def step():
        x1 = setup.source.sample(setup.batch, g)
        noise = torch.randn(x1.shape, generator=g)
        k = torch.randint(0, T, (x1.shape[0],), generator=g)
        xt = sched.add_noise(x1, noise, k).to(setup.device)
        t = (1.0 - (k + 1) / T).to(setup.device, torch.float32)  # wasserflow's clock
        loss = ((net(xt, t) - noise.to(setup.device)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    net.train()
    steps, secs = _timed_loop(seconds, step)
    net.eval()
    return net, sched.config, {"steps": steps, "seconds": secs}


def diffusers_ddim(setup, seed, seconds, spacing="leading"):
    """DDIMScheduler (eta 0) with the given timestep spacing on diffusers' trained net."""
    from diffusers import DDIMScheduler

    net, config, budget = _diffusers_trained(setup, seed, seconds)
    sched_wf = get_schedule("ddpm", num_train_timesteps=T, kind="linear", **DDPM)

    def clock(k):  # diffusers' step k on wasserflow's clock; k < 0 is the data (t = 1)
        return 1.0 if k < 0 else 1.0 - (k + 1) / T

    z = setup.noise(seed + 1)
    row = {}
    with torch.no_grad():
        for n in NFES:
            sch = DDIMScheduler.from_config(config, timestep_spacing=spacing)
            sch.set_timesteps(n)
            x, e, length = z.clone(), torch.zeros(setup.n, dtype=torch.float64), 0.0
            for k in sch.timesteps:
                k = int(k)
                eps = setup.call(net, x, clock(k))
                x_new = sch.step(eps, k, x).prev_sample
                s, t = clock(k), clock(k - T // n)
                e = e + path_segment_energy(x, x_new, s, t, sched_wf)
                length += t - s
                x = x_new
            # the solved interval mapped onto [0, 1]: int |dx/du|^2 du = L int |dx/dt|^2 dt
            row[n] = setup.measure(z, x, e * length, n)
    return row, budget


_RUNS = tempfile.TemporaryDirectory()


def _wf_config(setup, method, seed, steps, overrides):
    return make_config(
        method,
        setup.spec,
        steps=steps,
        batch_size=setup.batch,
        lr=WF_LR,
        seed=seed,
        model="unet",
        model_options=setup.net,
        overrides=overrides,
    )


def _engine_seconds(folder):
    """(step, seconds since the loop started) of a run's metrics.jsonl records."""
    (path,) = Path(folder).rglob("metrics.jsonl")
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["step"], r["seconds"]) for r in recs if "seconds" in r]


RETRY = 0.1
"""A run whose seconds miss its budget by more than this share is trained again once, its steps
rescaled by the run's own ms / step (:func:`train_for`)."""


def train_for(setup, method, seed, seconds, overrides=None):
    """Train the engine's ``method`` for ``seconds`` (probe-calibrated steps): (run folder,
    budget).

    The probe (:func:`_probe`) gives the loop's ms / step and the fixed cost around it (config
    checks, model build, a distillation's teacher frames, checkpoint); the run then takes
    (seconds - fixed) / ms steps, so its whole time on the --clock (fixed cost included) is the
    budget. A probe is a second or two of steps, and the shared machine's speed drifts (a
    distillation teacher given 30 s once ran 39.5 and left its student one step; that probe also
    missed the OT solves, :func:`_probe_span`). A run off by more than RETRY of its budget is
    therefore discarded, like a probe, and trained once more with its steps rescaled by its own
    ms / step (a whole run's); the budget records ``retried`` and the first run's steps and
    seconds."""
    over = {**(overrides or {}), "train.log_every": 10}
    # a 5-step warm-up first: one-time costs of the process (lazy imports) are no run's cost
    _timed_run(setup, method, seed, 5, over)
    ms, fixed = _probe(setup, method, seed, over)
    steps = max(1, int((seconds - fixed) * 1000 / ms))
    d, secs = _timed_run(setup, method, seed, steps, over)
    retried = abs(secs - seconds) > RETRY * seconds and seconds > fixed
    first = {"first_steps": steps, "first_seconds": secs} if retried else {}
    if retried:
        run_ms = max(1e-3, (secs - fixed) / steps * 1000)
        steps = max(1, int((seconds - fixed) * 1000 / run_ms))
        d, secs = _timed_run(setup, method, seed, steps, over)
    if _clock[0] is CLOCK["wall"]:
        rec = _engine_seconds(d)
        (s_a, t_a), (s_b, t_b) = rec[0], rec[-1]
        loop_ms = (t_b - t_a) / max(1, s_b - s_a) * 1000
    else:
        loop_ms = max(0.0, secs - fixed) / steps * 1000
    return d, {"steps": steps, "seconds": secs, "probe_ms": ms, "loop_ms": loop_ms,
               "fixed_s": fixed, "retried": retried, **first}  # fmt: skip


def wasserflow_row(
    setup, method, seed, sampler=None, overrides=None, adaptive=False, midpoint=False,
    nfes=None, seconds=None,
):  # fmt: skip
    """Train the engine's ``method`` for setup.seconds (:func:`train_for`), then
    ``evaluate_run`` at ``nfes`` (default NFES; and dopri5; and the ``midpoint`` sampler at
    MIDPOINT)."""
    dev = str(setup.device)
    d, budget = train_for(setup, method, seed, seconds or setup.seconds, overrides)
    run = load_run(d, device=dev)
    nfes = list(nfes or NFES)
    evals = evaluate_run(
        run,
        nfes,
        n=setup.n,
        seed=seed + 1,
        sampler=sampler,
        features=setup.features,
        data=setup.ref,
        jacobian=setup.jacobian_points,
    )
    cols = nfes
    if midpoint:
        cols += [mid(k) for k in MIDPOINT]
        evals += evaluate_run(
            run,
            list(MIDPOINT),
            n=setup.n,
            seed=seed + 1,
            sampler="midpoint",
            features=setup.features,
            data=setup.ref,
        )
    row = {}
    for b, ev in zip(cols, evals):
        cell = {"fd": ev.fd, "w2": ev.w2, "nfe": ev.nfe}
        if ev.geometry is not None:
            cell.update(geometry_cell(ev.geometry))
        row[b] = cell
    if adaptive:  # evaluate_run's adaptive budget at TorchCFM's dopri5 tolerance
        tol = setup.dopri_tol
        out = run.sample(
            setup.n,
            sampler="dopri5",
            data_space=False,
            generator=torch.Generator().manual_seed(seed + 1),
            options={"atol": tol, "rtol": tol},
        )
        x = run.scaler.inverse(out.x.reshape(setup.n, -1)).reshape(out.x.shape).double()
        row["dopri5"] = setup.measure(out.start, x, out.energy, out.nfe)
    return row, budget


FLOWMAP_NFES = [1, 2, 4, 8]
"""The flow-map rows' columns: k jumps = k NFE (their point is few steps)."""
DISTILL_TEACHER = 0.75
"""The share of a distillation row's seconds its teacher (wasserflow-otcfm-block's recipe)
trains for; the student's run (its teacher's frames included) takes the rest. The teacher's
steps decide more than the student's (benchmarks/README.md, "Where a distillation row's 40 s
are best spent"): at 40 CPU s on a quiet machine (8,192 noises) the one jump scored FD
21.3 / 22.5 / 28.5 (seeds 0 / 1 / 2) at a share of 0.6 and 18.3 / 18.8 / 18.7 at 0.75; at 0.85
or 0.9 the teacher overran the whole budget (its probe then missed the OT solves) and left its
student one step."""
DISTILL = {"objective.teacher_sampler": "midpoint", "objective.teacher_nfe": 2,
           "objective.frames": 1, "objective.pairs": 8192}  # fmt: skip
"""The student (started from its teacher: ``objective.init`` teacher, the default) learns the
teacher's 2-NFE midpoint map on 8,192 noises, one jump over [0, 1] (K = 1): the teacher's best
sampler here (FD 14.3 at 2 NFE, 17.5 at 8, 121.6 by one Euler step: seed 0 at 27 s), so the
one jump learns the best few-step map (progressive distillation's target). From one teacher
(820 steps) and 300 student steps, 8,192 noises gave FD 18.8 / 18.8 at one jump (seeds 0 / 1)
against 19.5 / 19.7 with 2,048 (their frames cost 0.5 s more). Earlier settings, at 40 s per
row: the teacher's midpoint ODE at 8 NFE with K = 4 frames 32.6 / 46.7 / 34.5 and, without the
teacher's weights, 83.1 / 65.9 / 72.7."""


def flowmap_nfes():
    """The flow-map rows' columns: the budgets of --nfes up to FLOWMAP_NFES' largest."""
    return [k for k in NFES if k <= max(FLOWMAP_NFES)] or list(FLOWMAP_NFES)


def flowmap_row(setup, method, seed, overrides=None):
    """A flow-map method at :func:`flowmap_nfes` jumps (no dopri5 on u(x, t, t): at 30-60 NFE it
    cost more CPU than the row's other evaluations together)."""
    return wasserflow_row(setup, method, seed, overrides=overrides, nfes=flowmap_nfes())


def distill_row(setup, seed):
    """An OT-CFM teacher (wasserflow-otcfm-block's settings) for DISTILL_TEACHER of the seconds,
    then flow-map distillation of its ODE (DISTILL) for the rest: the row's seconds are
    both."""
    teacher, tb = train_for(setup, "otcfm", seed, DISTILL_TEACHER * setup.seconds, OTCFM_BLOCK)
    row, budget = wasserflow_row(
        setup, "flowmap-distill", seed, overrides={**DISTILL, "objective.teacher": teacher},
        nfes=flowmap_nfes(), seconds=setup.seconds - tb["seconds"],
    )  # fmt: skip
    budget = {
        **budget,
        "steps": budget["steps"],
        "teacher_steps": tb["steps"],
        "teacher_seconds": tb["seconds"],
        "teacher_retried": tb["retried"],
        "seconds": budget["seconds"] + tb["seconds"],
    }
    return row, budget  # fmt: skip


ROWS = {
    "wasserflow-otcfm": lambda su, s, sec: wasserflow_row(
        su, "otcfm", s, overrides=OTCFM_OPTIONS, adaptive=True, midpoint=True
    ),
    "wasserflow-otcfm-block": lambda su, s, sec: wasserflow_row(
        su, "otcfm", s, overrides=OTCFM_BLOCK, adaptive=True, midpoint=True
    ),
    "torchcfm-otcfm": torchcfm_otcfm,
    "wasserflow-icfm": lambda su, s, sec: wasserflow_row(
        su, "icfm", s, overrides=OTCFM_OPTIONS, adaptive=True
    ),
    "wasserflow-ddpm-fast-dpm": lambda su, s, sec: wasserflow_row(
        su, "ddpm", s, "dpm_solver", overrides=DIFFUSION_FAST
    ),
    "diffusers-ddpm-ddim": lambda su, s, sec: diffusers_ddim(su, s, sec, "leading"),
    "diffusers-ddpm-ddim-trailing": lambda su, s, sec: diffusers_ddim(su, s, sec, "trailing"),
    # flow maps (k jumps = k NFE), each for the same --seconds
    "wasserflow-meanflow": lambda su, s, sec: flowmap_row(su, "meanflow", s),
    "wasserflow-meanflow-ot": lambda su, s, sec: flowmap_row(su, "meanflow-ot", s, FLOWMAP_OT),
    "wasserflow-meanflow-ot-uniform": lambda su, s, sec: flowmap_row(
        su, "meanflow-ot", s, {**FLOWMAP_OT, "objective.times": "uniform"}
    ),
    "wasserflow-shortcut": lambda su, s, sec: flowmap_row(su, "shortcut", s),
    "wasserflow-flowmap-distill": lambda su, s, sec: distill_row(su, s),
}
"""Rows in the order they run for each seed: each wasserflow row before its peers."""
FLOWMAP_ROWS = [r for r in ROWS if r.startswith(("wasserflow-meanflow", "wasserflow-shortcut",
                                                 "wasserflow-flowmap"))]  # fmt: skip
PAIRS = {
    "torchcfm-otcfm": "wasserflow-otcfm-block",
    "diffusers-ddpm-ddim": "wasserflow-ddpm-fast-dpm",
    "diffusers-ddpm-ddim-trailing": "wasserflow-ddpm-fast-dpm",
}
"""A peer trains for exactly the wall seconds its wasserflow row took (engine start-up and
checkpoints included) when that row ran for the seed, else for --seconds."""


def _med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def _fmt(v, digits=3):
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:.3g}"


def _ms(budget):
    """ms per training step: the engine's loop clock (its fixed start-up cost apart, which the
    budget includes), else wall seconds / steps."""
    return budget.get("loop_ms") or budget["seconds"] / budget["steps"] * 1000


def _columns(results):
    """NFES, dopri5, then the midpoint columns where some row has them."""
    have = {c for per in results.values() for r in per.values() for c in r["row"]}
    return list(NFES) + ["dopri5"] + [mid(k) for k in MIDPOINT if mid(k) in have]


def print_tables(results, per_seed, n, seeds, features="digits8"):
    cols = _columns(results)
    for metric, title in (
        ("fd", f"FD ({features} features, n = {n})"),
        ("w2", f"exact W2 (n = {n})"),
    ):
        print(f"\n## {title}, medians over seeds {seeds}\n")
        print("| row | " + " | ".join(map(str, cols)) + " (NFE) | train s | steps | ms / step |")
        print("|---" * (len(cols) + 4) + "|")
        for name, per in results.items():
            groups = [(name, list(per.values()))]
            if per_seed and len(per) > 1:
                groups += [(f"{name} (seed {s})", [r]) for s, r in per.items()]
            for label, rs in groups:
                cells = []
                for c in cols:
                    vals = [r["row"].get(c, {}).get(metric) for r in rs]
                    if all(v is None for v in vals):
                        cells.append("-")
                        continue
                    cell = _fmt(_med(vals))
                    if c == "dopri5":
                        cell += f" ({_med([r['row'][c]['nfe'] for r in rs]):.0f})"
                    cells.append(cell)
                secs = _med([r["budget"]["seconds"] for r in rs])
                steps = _med([r["budget"]["steps"] for r in rs])
                ms = _med([_ms(r["budget"]) for r in rs])
                print(
                    f"| {label} | "
                    + " | ".join(cells)
                    + f" | {secs:.0f} | {steps:.0f} | {ms:.1f} |",
                    flush=True,
                )
    mids = {mid(k) for k in MIDPOINT}
    print(f"\n## path-energy decomposition (model space, n = {n}), medians over seeds\n")
    print(
        "coupling gap: the 95 % bracket of wasserflow.metrics.coupling_gap (rotation re-coupling "
        "below, Gaussian dual above); asymmetry: the Brenier criterion of the Euler map "
        "(0 for an optimal map)\n"
    )
    print("| row | sampler, NFE | PE | curvature | chord | coupling gap | asymmetry |")
    print("|---|---|---|---|---|---|---|")
    for name, per in results.items():
        for c in cols:
            rs = [r["row"][c] for r in per.values() if c in r["row"]]
            if not rs or "pe" not in rs[0]:
                continue
            nfe = _med([r["nfe"] for r in rs])
            print(
                f"| {name} | {'dopri5 ' if c == 'dopri5' else 'midpoint ' if c in mids else ''}"
                f"{nfe:.0f} | "
                + " | ".join(
                    _fmt(_med([r[k] for r in rs]), 2) for k in ("pe", "curvature", "chord")
                )
                + f" | [{_fmt(_med([r['gap_lower'] for r in rs]), 2)}, "
                + f"{_fmt(_med([r['gap_upper'] for r in rs]), 2)}] | "
                + (_fmt(_med([r["asymmetry"] for r in rs]), 3) if "asymmetry" in rs[0] else "-")
                + " |"
            )


def print_targets(results, features: str, seconds: float | None):
    def fd(name, col, seed):
        return results.get(name, {}).get(seed, {}).get("row", {}).get(col, {}).get("fd")

    seeds = sorted(set().union(*(set(p) for p in results.values()))) if results else []
    print("\n## targets (FD; ratio = peer / wasserflow, > 1 means wasserflow is closer)\n")
    ot_row = "wasserflow-otcfm-block" if "wasserflow-otcfm-block" in results else "wasserflow-otcfm"
    if ot_row in results and "torchcfm-otcfm" in results:
        print(
            f"OT-CFM: {ot_row} at 2 NFE (Euler or midpoint) vs TorchCFM's best at any NFE "
            "(Euler, midpoint or dopri5)"
        )
        cols = _columns(results)
        for s in seeds:
            two = [(fd(ot_row, c, s), c) for c in (2, mid(2)) if fd(ot_row, c, s) is not None]
            theirs = [(fd("torchcfm-otcfm", c, s), c) for c in cols]
            theirs = [x for x in theirs if x[0] is not None]
            if not two or not theirs:
                continue
            ours, best = min(two), min(theirs)
            print(
                f"  seed {s}: {ours[0]:.3f} ({ours[1]}) vs {best[0]:.3f} ({best[1]}): "
                f"ratio {best[0] / ours[0]:.2f}, {'met' if ours[0] < best[0] else 'NOT met'}"
            )
    _flowmap_targets(results, seeds, fd, features, seconds)
    for peer in ("diffusers-ddpm-ddim", "diffusers-ddpm-ddim-trailing"):
        if "wasserflow-ddpm-fast-dpm" in results and peer in results:
            print(f"VP diffusion at 8 NFE: wasserflow-ddpm-fast-dpm vs {peer} (target 2x)")
            for s in seeds:
                ours, theirs = fd("wasserflow-ddpm-fast-dpm", 8, s), fd(peer, 8, s)
                if ours is None or theirs is None:
                    continue
                r = theirs / ours
                print(
                    f"  seed {s}: {ours:.3f} vs {theirs:.3f}: ratio {r:.2f}, "
                    f"{'met' if r >= 2 else 'NOT met'}"
                )


REFERENCE = {"torchcfm-otcfm": [13.755, 17.252, 16.303], "wasserflow 2-NFE midpoint": [9.040,
             9.849, 8.241]}  # fmt: skip
"""The issue's bars (FD on seeds 0, 1, 2; benchmarks/README.md, "Both targets on a quiet
machine": TorchCFM's best at any NFE and sampler, wasserflow-otcfm-block's midpoint at 2 NFE),
measured on the 8 x 8 digits in REFERENCE_FEATURES at REFERENCE_SECONDS per row: other data,
budgets and seeds have no reference bar."""

REFERENCE_FEATURES = "digits8"
REFERENCE_SECONDS = 40.0


def _bars(results, fd, cols, s, reference: bool):
    """(TorchCFM's best FD at any NFE and sampler, wasserflow-otcfm-block's 2-NFE midpoint) on
    seed ``s``: this run's rows where present, else the REFERENCE numbers where they apply; None
    where neither."""
    theirs = [v for v in (fd("torchcfm-otcfm", c, s) for c in cols) if v is not None]
    mid2 = fd("wasserflow-otcfm-block", mid(2), s)
    known = reference and s in range(len(REFERENCE["torchcfm-otcfm"]))
    bar_t = min(theirs) if theirs else REFERENCE["torchcfm-otcfm"][s] if known else None
    bar_m = (
        mid2 if mid2 is not None else REFERENCE["wasserflow 2-NFE midpoint"][s] if known else None
    )
    return bar_t, bar_m


def _flowmap_targets(results, seeds, fd, features: str, seconds: float | None):
    """1-NFE FD of each flow-map row against TorchCFM's best at any NFE and sampler and
    wasserflow-otcfm-block's 2-NFE midpoint, both of this run where present, else (on the
    digits, FD in ``REFERENCE_FEATURES``, at ``REFERENCE_SECONDS`` per row, seeds 0-2) the
    REFERENCE numbers of a quiet run. Elsewhere a bar this run lacks is named, not guessed (a
    160 s row is not to be held against 40 s bars)."""
    rows = [r for r in results if r in FLOWMAP_ROWS]
    if not rows:
        return
    reference = features == REFERENCE_FEATURES and seconds == REFERENCE_SECONDS
    print(
        "flow maps: FD at 1 NFE vs TorchCFM's best at any NFE and sampler, and vs "
        "wasserflow-otcfm-block's midpoint at 2 NFE (this run's, else the reference: the digits "
        f"at {REFERENCE_SECONDS:g} s, seeds 0-2)"
    )
    cols = _columns(results)
    for name in rows:
        for s in seeds:
            ours = fd(name, 1, s)
            if ours is None:
                continue
            bar_t, bar_m = _bars(results, fd, cols, s, reference)
            if bar_t is None or bar_m is None:
                print(
                    f"  {name} seed {s}: {ours:.3f}; no bar (run torchcfm-otcfm and "
                    "wasserflow-otcfm-block beside it: the reference bars are the digits' at "
                    f"{REFERENCE_SECONDS:g} s per row, seeds 0-2)"
                )
                continue
            met = ours < bar_t and ours < bar_m
            print(
                f"  {name} seed {s}: {ours:.3f} vs {bar_t:.3f} (TorchCFM) and {bar_m:.3f} "
                f"(midpoint 2): {'met' if met else 'NOT met'}"
            )


def _jsonable(results):
    return {
        name: {
            str(s): {
                "budget": r["budget"],
                "n": r["n"],
                "features": r["features"],
                "seconds": r.get("seconds"),
                "row": {str(c): v for c, v in r["row"].items()},
            }
            for s, r in per.items()
        }
        for name, per in results.items()
    }


def _from_json(d):
    """The inverse of :func:`_jsonable` (seeds and NFE columns back to ints)."""
    return {
        name: {
            int(s): {
                "budget": r["budget"],
                "n": r.get("n"),
                "features": r.get("features", "digits8"),  # files written before it was kept
                "seconds": r.get("seconds"),  # the budget per row (None: files before it was kept)
                "row": {(int(c) if c.isdigit() else c): v for c, v in r["row"].items()},
            }
            for s, r in per.items()
        }
        for name, per in d.items()
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data",
        default="digits_images",
        help="data spec: digits_images, or mnist:PATH (IDX, e.g. the MNIST test set)",
    )
    p.add_argument("--net", default="cpu", choices=sorted(NETS))
    p.add_argument("--seconds", type=float, default=60.0, help="training seconds per row")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--n",
        type=int,
        default=1797,
        help="samples and data images per metric (at most the set's size)",
    )
    p.add_argument("--nfes", default=",".join(map(str, NFES)))
    p.add_argument(
        "--dopri-tol",
        type=float,
        default=1e-4,
        help="dopri5's atol = rtol (TorchCFM's and wasserflow's rows)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--clock",
        default="wall",
        choices=sorted(CLOCK),
        help="the seconds a budget counts: wall, or this process's CPU seconds (cpu: for a "
        "loaded machine; use --threads 1)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 5 s per row, one seed, 300 samples, NFE 1, 2, 8",
    )
    p.add_argument(
        "--jacobian",
        type=int,
        default=256,
        help="points of the Brenier-criterion test of wasserflow's Euler maps (0: off)",
    )
    p.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(ROWS))
    p.add_argument("--per-seed", action="store_true", help="also print each seed's row")
    p.add_argument("--json", default=None, help="write every cell to this JSON file")
    p.add_argument(
        "--tables",
        default=None,
        help="only print the tables of a JSON file written by --json (e.g. of a "
        "stopped run) and exit",
    )
    a = p.parse_args()
    if a.tables:
        results = _from_json(json.loads(Path(a.tables).read_text()))
        seeds = sorted(set().union(*(set(per) for per in results.values())))
        cols = {c for per in results.values() for r in per.values() for c in r["row"]}
        NFES[:] = sorted(c for c in cols if isinstance(c, int))
        first = next(iter(next(iter(results.values())).values()))
        n = first["n"] or "?"
        print_tables(results, a.per_seed, n, seeds, first["features"])
        print_targets(results, first["features"], first["seconds"])
        return
    torch.set_num_threads(a.threads)
    _clock[0] = CLOCK[a.clock]
    NFES[:] = [int(k) for k in a.nfes.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    seconds, n = a.seconds, a.n
    if a.quick:
        seeds, seconds, n, NFES[:], MIDPOINT[:] = [0], 5.0, 300, [1, 2, 8], [2]
    only = [k for k in a.only.split(",") if k]
    unknown = sorted(set(only) - set(ROWS))
    if unknown:
        p.error(f"unknown rows {unknown}: choose among {', '.join(ROWS)}")
    setup = Setup(a.data, NETS[a.net], seconds, a.batch, n, a.device, a.dopri_tol, a.jacobian)
    nparams = sum(q.numel() for q in setup.build(0).parameters())
    print(
        f"# {a.data}: {setup.n} images {setup.shape}; unet {NETS[a.net]} ({nparams:,} "
        f"parameters); {seconds:g} s ({a.clock} clock) of training per row, batch {a.batch}; "
        f"seeds {seeds}; "
        f"FD in {setup.features.name} features and W2 at n = {setup.n}; torch threads "
        f"{a.threads}",
        flush=True,
    )
    results: dict[str, dict[int, dict]] = {}
    for s in seeds:  # seed by seed, so a stopped run holds whole seeds
        for name, job in ROWS.items():
            if only and name not in only:
                continue
            t0 = time.perf_counter()
            pair = results.get(PAIRS.get(name, ""), {}).get(s)
            row, budget = job(setup, s, pair["budget"]["seconds"] if pair else setup.seconds)
            results.setdefault(name, {})[s] = {
                "row": row,
                "budget": budget,
                "n": setup.n,
                "features": setup.features.name,
                "seconds": setup.seconds,
            }
            results[name] = dict(sorted(results[name].items()))
            print(
                f"  {name} seed {s}: {budget['steps']} steps in {budget['seconds']:.1f} s"
                + (" (trained again: the probe missed)" if budget.get("retried") else "")
                + "; FD / W2 "
                + ", ".join(
                    f"{c}: {_fmt(v.get('fd'))} / {_fmt(v.get('w2'))}" for c, v in row.items()
                )
                + f"; row took {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            if a.json:  # after every row, so a stopped run keeps what it measured
                from wasserflow._atomic import write_json

                write_json(a.json, _jsonable(results))
    print_tables(results, a.per_seed, setup.n, seeds, setup.features.name)
    print_targets(results, setup.features.name, setup.seconds)


if __name__ == "__main__":
    main()
