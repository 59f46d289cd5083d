"""Data-parallel training (gloo, 2 CPU processes) optimises the one-process objective.

One spawn of 2 ranks serves the fast tests of this module (a module fixture): one step of
icfm, otcfm, ddpm, MeanFlow (its JVP target taken through the DDP module, its prediction an
ordinary forward of it) and shortcut models (extra inputs sliced with the rows), a NaN on one
rank, a loss that runs the network outside DDP (stopped by the first step's check), an uninterrupted run, and a run stopped after step 15
(an exception on both ranks) then resumed. The slow test launches ``torchrun ... -m wasserflow
train``, kills it (SIGKILL to the launcher and both ranks) and resumes it. The references are one process of the same engine (gradients and
parameters after a step to float tolerance), POT's exact OT on the global batch (the plan the
ranks train on) and, for the rank-local plans TorchCFM's multi-GPU recipe uses, POT on each
rank's half.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import ot
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

from wasserflow.engine import build, make_config, train, train_run
from wasserflow.engine.distributed import Ranks, RowShard, check_batch, torchrun_argv
from wasserflow.errors import InputError, TrainingDiverged

WORLD = 2
METHODS = ("icfm", "otcfm", "ddpm", "meanflow", "shortcut")
B = 128  # the global batch of the one-step comparisons
STOP = 15  # the killed run dies after this step (its last checkpoint is step 10)


def _step_cfg(method: str):
    # no warm-up, no clipping: the one step's update is lr times Adam's direction of the
    # gradient, and the gradients themselves are compared before the step
    return make_config(
        method, "moons", steps=1, batch_size=B, lr=1e-2, warmup=0, grad_clip=None, seed=3
    )


def _run_cfg():
    return make_config(
        "otcfm",
        "moons",
        steps=30,
        batch_size=32,
        lr=5e-3,
        warmup=5,
        seed=11,
        width=32,
        overrides={"train.checkpoint_every": 10, "train.log_every": 5},
    )


def _one_step(method: str, ranks: Ranks | None):
    """One engine step; returns (parameters after it, gradients it took, network inputs,
    the global batch the loss received)."""
    cfg = _step_cfg(method)
    src = build.source(cfg)
    cfg = build.finalise(cfg, src)
    model = build.build_network(cfg, seed=0)
    objective = build.build_objective(cfg)
    data = build.data_stream(cfg, src)
    seen: dict[str, torch.Tensor] = {}
    grads: dict[str, torch.Tensor] = {}

    def record_inputs(mod, args, out):
        seen["x"], seen["t"] = args[0].detach().clone(), args[1].detach().clone()

    def record_grads(opt, args, kwargs):
        for name, p in model.named_parameters():
            grads[name] = p.grad.detach().clone()

    def loss(net, batch, g, step):
        seen["batch"] = batch.detach().clone()
        return objective(net, batch, g, step)

    h1 = model.register_forward_hook(record_inputs)
    h2 = register_optimizer_step_pre_hook(record_grads)
    try:
        train(model, loss, data, cfg.train, ranks=ranks)
    finally:
        h1.remove()
        h2.remove()
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return params, grads, seen


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


class _Stop(Exception):
    pass


def _worker(rank: int, out: str) -> None:
    torch.set_num_threads(1)
    out = Path(out)
    dist.init_process_group("gloo", init_method=f"file://{out}/rdv", rank=rank, world_size=WORLD)
    try:
        _ranks_part(out, Ranks(rank, WORLD))
    finally:
        dist.destroy_process_group()


def _ranks_part(out: Path, ranks: Ranks) -> None:
    r = ranks.rank
    for method in METHODS:
        params, grads, seen = _one_step(method, ranks)
        _save(
            out / f"{method}-{r}.safetensors",
            {
                **{f"p.{k}": v for k, v in params.items()},
                **{f"g.{k}": v for k, v in grads.items()},
                **{f"s.{k}": v for k, v in seen.items()},
            },
        )
    # a NaN in rank 1's rows only: every rank stops at the same step, before updating
    cfg = _run_cfg()
    src = build.source(cfg)
    objective = build.build_objective(cfg)

    def nan_on_rank1(net, batch, g, step):
        per = objective(net, batch, g, step)
        return per + float("nan") if (step == 13 and r == 1) else per

    info = {}
    try:
        train(
            build.build_network(cfg, seed=0),
            nan_on_rank1,
            build.data_stream(cfg, src),
            cfg.train,
            out / "nan",
            ranks=ranks,
        )
    except TrainingDiverged as e:
        info = {"step": e.step, "checkpoint_step": e.checkpoint_step}
    (out / f"nan-{r}.json").write_text(json.dumps(info))

    # a loss that runs the network outside DDP (its module, on every row): no all-reduce, each
    # rank keeps the gradient of its own rows; the first step's check stops every rank
    def bypass(net, batch, g, step):
        return objective(net.net.module, batch, g, step)

    try:
        train(build.build_network(cfg, seed=0), bypass, build.data_stream(cfg, src), cfg.train,
              ranks=ranks)  # fmt: skip
        info = {}
    except RuntimeError as e:
        info = {"error": str(e)}
    (out / f"bypass-{r}.json").write_text(json.dumps(info))
    train_run(_run_cfg(), out / "full", ranks=ranks)

    def stop(stage, step, record):
        if step == STOP:
            raise _Stop

    with contextlib.suppress(_Stop):
        train_run(_run_cfg(), out / "killed", ranks=ranks, progress=stop)
    train_run(_run_cfg(), out / "killed", resume=True, ranks=ranks)


@pytest.fixture(scope="module")
def ranks_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    # fork: the ranks inherit this process's imports (spawn would import torch, its compiler
    # stack that Adam loads, and wasserflow again in each rank: most of the time of this test)
    _one_step("icfm", None)
    mp.start_processes(_worker, args=(str(out),), nprocs=WORLD, join=True, start_method="fork")
    return out


def _load(out: Path, method: str, rank: int, prefix: str) -> dict[str, torch.Tensor]:
    t = load_file(str(out / f"{method}-{rank}.safetensors"))
    n = len(prefix) + 1
    return {k[n:]: v for k, v in t.items() if k.startswith(prefix + ".")}


@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_take_the_one_process_step(ranks_out, method):
    params, grads, seen = _one_step(method, None)
    for r in range(WORLD):
        g = _load(ranks_out, method, r, "g")
        p = _load(ranks_out, method, r, "p")
        assert set(g) == set(grads) and set(p) == set(params)
        for k in grads:  # the all-reduced gradient is the gradient of the global mean
            torch.testing.assert_close(g[k], grads[k], rtol=1e-5, atol=1e-7, msg=k)
            assert grads[k].abs().max() > 1e-4, k  # not a vacuous comparison
        for k in params:  # Adam's first step is lr * g / (|g| + eps): lr = 1e-2 per entry
            # where |g| >> eps = 1e-8; where |g| is near eps (some MeanFlow entries: 4e-9) it
            # follows g / eps, and the float order of the gradient's sum moves it by ~1e-5
            big = grads[k].abs() > 1e-6 if k in grads else torch.ones_like(p[k], dtype=bool)
            torch.testing.assert_close(p[k][big], params[k][big], rtol=0, atol=1e-5, msg=k)
    # each rank ran the network on its half of the one-process batch (same x_t and t)
    xs = [_load(ranks_out, method, r, "s") for r in range(WORLD)]
    assert all(s["x"].shape[0] == B // WORLD for s in xs)
    torch.testing.assert_close(torch.cat([s["x"] for s in xs]), seen["x"], rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([s["t"] for s in xs]), seen["t"], rtol=0, atol=0)


def _emd_cost(x0: np.ndarray, x1: np.ndarray) -> float:
    n = len(x0)
    return float(ot.emd2(np.full(n, 1 / n), np.full(n, 1 / n), ot.dist(x0, x1)))


def test_the_ot_plan_is_solved_on_the_global_batch(ranks_out):
    # every rank received the one-process batch of OT pairs: (x0, x1[perm]) of B points
    _, _, seen = _one_step("otcfm", None)
    for r in range(WORLD):
        torch.testing.assert_close(
            _load(ranks_out, "otcfm", r, "s")["batch"], seen["batch"], rtol=0, atol=0
        )
    pairs = seen["batch"].double().numpy()
    x0, x1 = pairs[:, 0], pairs[:, 1]
    assert x0.shape == (B, 2)
    paired = float(((x0 - x1) ** 2).sum(1).mean())
    # the pairing is POT's optimum on all B points (its cost is the exact OT cost)
    assert paired == pytest.approx(_emd_cost(x0, x1), rel=1e-9)


def test_a_rank_local_plan_is_measurably_different(ranks_out):
    """TorchCFM's multi-GPU way: rank r couples its own B / N noise with its own B / N data.
    Each rank's coupling is optimal for its half only; put together, the pairing of the B
    points is a worse plan (higher cost) and pairs most points differently."""
    _, _, seen = _one_step("otcfm", None)
    pairs = seen["batch"].double().numpy()
    x0, data = pairs[:, 0], pairs[:, 1]
    rng = np.random.default_rng(0)
    costs, moved = [], 0
    for _ in range(4):  # split the data over the ranks independently of the noise
        own = rng.permutation(B)
        local_pairs = np.empty_like(data)
        for r in range(WORLD):
            rows = slice(r * B // WORLD, (r + 1) * B // WORLD)
            xa, xb = x0[rows], data[own[rows]]
            n = len(xa)
            plan = ot.emd(np.full(n, 1 / n), np.full(n, 1 / n), ot.dist(xa, xb))
            local_pairs[rows] = xb[plan.argmax(1)]
        costs.append(float(((x0 - local_pairs) ** 2).sum(1).mean()))
        moved += int((np.abs(local_pairs - data).sum(1) > 1e-12).sum())
    glob = _emd_cost(x0, data)
    print(
        f"global OT cost {glob:.4f}, rank-local {np.mean(costs):.4f}, "
        f"pairs changed {moved / (4 * B):.2f}"
    )
    assert min(costs) > 1.01 * glob  # measurably costlier: a coarser plan
    assert moved / (4 * B) > 0.5


def test_a_loss_that_bypasses_ddp_is_stopped_at_the_first_step(ranks_out):
    for r in range(WORLD):
        info = json.loads((ranks_out / f"bypass-{r}.json").read_text())
        assert "gradients differ across ranks" in info.get("error", ""), info


def test_a_nan_on_one_rank_stops_every_rank(ranks_out):
    infos = [json.loads((ranks_out / f"nan-{r}.json").read_text()) for r in range(WORLD)]
    assert infos[0] == infos[1] == {"step": 13, "checkpoint_step": 10}
    from wasserflow.engine import checkpoint as ckpt

    assert ckpt.load(ranks_out / "nan" / "checkpoint.safetensors")[1]["step"] == 10


def test_resume_of_a_stopped_two_rank_run_equals_the_uninterrupted_one(ranks_out, tmp_path):
    full = load_file(str(ranks_out / "full" / "checkpoint.safetensors"))
    resumed = load_file(str(ranks_out / "killed" / "checkpoint.safetensors"))
    assert set(full) == set(resumed)
    for k in full:  # weights, EMA, Adam moments and the generator: bit for bit
        assert torch.equal(full[k], resumed[k]), k
    steps = [
        json.loads(line)["step"]
        for line in (ranks_out / "killed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [5, 10, 15, 20, 25, 30]
    # and the 2-rank run is the one-process run (float tolerance: sums in another order)
    train_run(_run_cfg(), tmp_path / "one")
    one = load_file(str(tmp_path / "one" / "checkpoint.safetensors"))
    for k in one:
        if one[k].is_floating_point():
            torch.testing.assert_close(full[k], one[k], rtol=1e-4, atol=1e-6, msg=k)
        else:
            assert torch.equal(full[k], one[k]), k


def test_batch_must_split_over_ranks():
    with pytest.raises(InputError, match="multiple of 4"):
        check_batch(250, 4)
    assert Ranks(1, 4).rows(8) == slice(2, 4)


def test_row_shard_runs_the_network_on_its_rows_only():
    net = torch.nn.Linear(3, 3)
    shard = RowShard(lambda x, t: net(x) * t[:, None], slice(2, 4))
    x, t = torch.randn(6, 3), torch.rand(6)
    y = shard(x, t)
    assert torch.equal(y[2:4], net(x[2:4]) * t[2:4, None])
    assert torch.equal(y[:2], torch.zeros(2, 3)) and torch.equal(y[4:], torch.zeros(2, 3))


def test_nproc_execs_torchrun_with_the_same_arguments():
    cmd = torchrun_argv(2, ["train", "--method", "icfm", "--nproc", "2", "--out", "r"])
    assert cmd[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "wasserflow",
        "train",
        "--method",
        "icfm",
        "--out",
        "r",
    ]


def _torchrun(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(WORLD),
        "-m",
        "wasserflow",
        "train",
        "--out",
        str(out),
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


RUN = [
    "--method",
    "otcfm",
    "--data",
    "moons",
    "--steps",
    "600",
    "--batch-size",
    "64",
    "--width",
    "32",
    "--lr",
    "3e-3",
    "--seed",
    "5",
    "--set",
    "train.checkpoint_every=100",
]


@pytest.mark.slow
def test_torchrun_killed_and_resumed_equals_uninterrupted(tmp_path):
    """The command line end to end: torchrun with 2 ranks, SIGKILL to the launcher and both
    ranks once a checkpoint of step >= 200 exists, then --resume under torchrun: the same
    checkpoint, bit for bit, as an uninterrupted 2-rank run, and the one-process run's to
    float tolerance."""
    from wasserflow.engine import checkpoint as ckpt

    full = _torchrun(tmp_path / "full", *RUN)
    assert full.wait(timeout=600) == 0, full.stderr.read().decode()[-2000:]
    killed = _torchrun(tmp_path / "killed", *RUN)
    path = tmp_path / "killed" / "checkpoint.safetensors"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and killed.poll() is None:
        with contextlib.suppress(ValueError, OSError):
            if ckpt.load(path)[1]["step"] >= 200:
                break
        time.sleep(0.05)
    assert killed.poll() is None, "the run ended before it could be killed"
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    step = ckpt.load(path)[1]["step"]
    assert 200 <= step < 600
    resumed = _torchrun(tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-2000:]
    a = load_file(str(tmp_path / "full" / "checkpoint.safetensors"))
    b = load_file(str(path))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    one = subprocess.run(
        [sys.executable, "-m", "wasserflow", "train", "--out", str(tmp_path / "one"), *RUN],
        capture_output=True,
    )
    assert one.returncode == 0, one.stderr.decode()[-2000:]
    c = load_file(str(tmp_path / "one" / "checkpoint.safetensors"))
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], c[k], rtol=1e-3, atol=1e-5, msg=k)
