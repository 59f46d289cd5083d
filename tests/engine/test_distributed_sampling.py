"""Sampling and evaluation over 2 gloo ranks (CPU) give the one-process samples, bit for bit.

One fork of 2 ranks serves every test (a module fixture): ``TrainedRun.sample`` with a
fixed-step ODE sampler, the adaptive dopri5 and a stochastic sampler (DDPM's ancestral steps,
fresh noise every step) on an odd number of samples (the ranks hold 50 and 51 rows), then
``wasserflow sample`` and ``wasserflow evaluate --json`` as torchrun starts them (its
environment variables, the env:// rendezvous). The reference is one process of the same run
and seed; each rank's network must have seen its own rows only, and rank 1 must neither write
nor print.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from wasserflow.cli import main
from wasserflow.engine import load_run, make_config, train_run
from wasserflow.engine.distributed import Ranks, RowGather

WORLD = 2
N = 101  # odd: 50 rows on rank 0, 51 on rank 1
SAMPLERS = (("euler", 4), ("dopri5", None), ("ddpm", 6))
SEED = 4


def _sample_all(run_dir: Path, ranks: Ranks | None) -> dict[str, torch.Tensor]:
    """Each sampler's samples and NFE, and the rows the network saw in each call."""
    r = load_run(run_dir, ranks=ranks)
    rows: list[int] = []
    hook = r.model.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    out = {}
    try:
        for name, nfe in SAMPLERS:
            res = r.sample(N, sampler=name, nfe=nfe, generator=torch.Generator().manual_seed(SEED))
            out[f"{name}.x"] = res.x
            out[f"{name}.nfe"] = torch.tensor(res.nfe)
    finally:
        hook.remove()
    out["rows"] = torch.tensor(rows)
    return out


def _cli(argv: list[str], stdout: Path) -> int:
    """``wasserflow argv`` in this process with its standard output to ``stdout``."""
    saved = sys.stdout
    with open(stdout, "w") as f:
        sys.stdout = f
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code or 0
        finally:
            sys.stdout = saved
    return code


def _worker(rank: int, run_dir: str, out: str, ports: list[int]) -> None:
    torch.set_num_threads(1)
    out_p = Path(out)
    dist.init_process_group("gloo", init_method=f"file://{out}/rdv", rank=rank, world_size=WORLD)
    try:
        tensors = _sample_all(Path(run_dir), Ranks(rank, WORLD))
    finally:
        dist.destroy_process_group()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out_p / f"lib-{rank}.st"))
    # the command line as torchrun starts it: its variables, one rendezvous per command
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(WORLD), "LOCAL_RANK": str(rank)},
        MASTER_ADDR="127.0.0.1",
    )
    codes = []
    for port, argv in zip(ports, _commands(run_dir, out_p / "ranks.npy")):
        os.environ["MASTER_PORT"] = str(port)
        codes.append(_cli(argv, out_p / f"{argv[0]}-{rank}.txt"))
    (out_p / f"codes-{rank}.json").write_text(json.dumps(codes))


def _commands(run_dir, npy: Path) -> list[list[str]]:
    return [
        ["sample", run_dir, "--n", N, "--nfe", 4, "--seed", SEED, "--out", npy],
        ["evaluate", run_dir, "--n", N, "--nfe", "2,4", "--seed", SEED, "--json"],
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp-sampling")
    run_dir = base / "run"
    cfg = make_config("icfm", "moons", steps=20, batch_size=32, width=16, depth=1, seed=1)
    train_run(cfg, run_dir)
    one = _sample_all(run_dir, None)  # imports the samplers before the fork, too
    out = base / "ranks"
    out.mkdir()
    ports = [_free_port(), _free_port()]
    mp.start_processes(
        _worker, args=(str(run_dir), str(out), ports), nprocs=WORLD, join=True, start_method="fork"
    )
    return run_dir, out, one


def test_two_ranks_draw_the_one_process_samples(runs):
    _, out, one = runs
    for r in range(WORLD):
        got = load_file(str(out / f"lib-{r}.st"))
        for name, _ in SAMPLERS:  # every rank holds all N gathered samples, bit for bit
            assert got[f"{name}.x"].shape[0] == N
            assert torch.equal(got[f"{name}.x"], one[f"{name}.x"]), (r, name)
            assert int(got[f"{name}.nfe"]) == int(one[f"{name}.nfe"]), (r, name)
    # the samplers differ from one another (a comparison that can fail), dopri5 chose its steps
    assert not torch.equal(one["euler.x"], one["ddpm.x"])
    assert int(one["dopri5.nfe"]) > 4
    # one process evaluates all N rows per call; rank r evaluated its own rows only
    assert set(one["rows"].tolist()) == {N}
    calls = len(one["rows"])
    for r, share in enumerate((50, 51)):
        rows = load_file(str(out / f"lib-{r}.st"))["rows"]
        assert len(rows) == calls and set(rows.tolist()) == {share}


def test_sample_and_evaluate_commands_under_torchrun(runs, tmp_path, capsys):
    run_dir, out, _ = runs
    assert [json.loads((out / f"codes-{r}.json").read_text()) for r in range(WORLD)] == [
        [0, 0]
    ] * WORLD
    npy = tmp_path / "one.npy"
    sample, evaluate = _commands(run_dir, npy)
    main([str(a) for a in sample])
    main([str(a) for a in evaluate])
    lines = capsys.readouterr().out.splitlines()
    # rank 0 wrote the one-process samples; rank 1 printed nothing
    np.testing.assert_array_equal(np.load(out / "ranks.npy"), np.load(npy))
    assert "written to" in (out / "sample-0.txt").read_text()
    assert (out / "sample-1.txt").read_text() == ""
    assert (out / "evaluate-1.txt").read_text() == ""
    got = json.loads((out / "evaluate-0.txt").read_text())["results"]
    want = json.loads(lines[-1])["results"]
    assert len(got) == len(want) == 2
    for a, b in zip(got, want):
        a.pop("seconds"), b.pop("seconds")
        assert a == b  # W2, NFE and the path-energy terms, exactly


def test_row_gather_splits_uneven_batches_and_small_ones_stay_whole():
    assert Ranks(0, 2).bounds(101) == [0, 50, 101]
    assert Ranks(1, 3).bounds(8) == [0, 2, 5, 8]
    net = torch.nn.Linear(2, 2)
    x = torch.randn(1, 2)  # fewer rows than ranks: evaluated whole, no collective
    gather = RowGather(lambda x, t: net(x) * t[:, None], Ranks(1, 2))
    assert torch.equal(gather(x, torch.ones(1)), net(x))
