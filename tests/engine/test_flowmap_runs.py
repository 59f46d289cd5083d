"""Flow-map runs through the engine and the command line: every flow-map method resumes bit for
bit (a distillation that trains its teacher first included: the teacher resumes in its own
folder, the frames are solved again from the same seed), samples through its default sampler at
any NFE with wasserflow sample / evaluate, and bad settings are refused in one line before
anything is written."""

import contextlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from wasserflow.cli import main
from wasserflow.engine import load_run, make_config, train_run
from wasserflow.engine.distributed import Ranks
from wasserflow.engine.runs import _check_ranks
from wasserflow.errors import InputError

FAST = {
    "meanflow": {},
    "meanflow-ot": {},
    "shortcut": {"objective.base_steps": 8},
    "flowmap-distill": {"objective.pairs": 256, "objective.teacher_steps": 20},
}


class _Stop(Exception):
    pass


def _cfg(method):
    return make_config(
        method, "moons", steps=30, batch_size=64, width=16, depth=2, warmup=5, seed=4,
        overrides={**FAST[method], "train.checkpoint_every": 10},
    )  # fmt: skip


@pytest.mark.parametrize("method", FAST)
def test_a_stopped_run_resumes_bit_for_bit(method, tmp_path):
    train_run(_cfg(method), tmp_path / "full")

    def stop(stage, step, record):
        if stage == "part" and step == 15:  # the student's stage (a teacher's is "teacher")
            raise _Stop

    with contextlib.suppress(_Stop):
        train_run(_cfg(method), tmp_path / "part", progress=stop)
    (res,) = train_run(_cfg(method), tmp_path / "part", resume=True)
    assert res.resumed_from == 10
    full = load_file(str(tmp_path / "full" / "checkpoint.safetensors"))
    part = load_file(str(tmp_path / "part" / "checkpoint.safetensors"))
    assert set(full) == set(part)
    for k in full:  # weights, EMA, Adam's moments, the generators
        assert torch.equal(full[k], part[k]), k


def wasserflow(*argv):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
        raise SystemExit(0)
    return e.value.code or 0


def test_sample_and_evaluate_take_the_jumps(tmp_path, capsys):
    out = tmp_path / "mf"
    train_run(_cfg("meanflow"), out)
    assert wasserflow("sample", out, "--n", 50, "--out", tmp_path / "x.npy") == 0
    assert np.load(tmp_path / "x.npy").shape == (50, 2)
    assert "flowmap, 1 NFE" in capsys.readouterr().out  # one jump by default
    assert wasserflow("evaluate", out, "--nfe", "1,2", "--n", 200) == 0
    text = capsys.readouterr().out
    assert text.count("flowmap") >= 2
    run = load_run(out)
    res = run.sample(20, nfe=3, options={"deviation": True})
    assert res.nfe == 3 and res.deviation.shape == (20,) and (res.deviation >= 0).all()
    assert run.sample(20, sampler="euler", nfe=4).nfe == 4  # u(x, t, t): a velocity too


REFUSED = [
    (["--method", "meanflow", "--set", "objective.ratio=1.5"], "ratio"),
    (["--method", "meanflow", "--set", "objective.time_factor=0"], "time_factor"),
    (["--method", "shortcut", "--set", "objective.base_steps=100"], "power of 2"),
    (["--method", "meanflow", "--model-set", "time_embedding=linear"], "must be sinusoidal"),
    (["--method", "flowmap-distill", "--set", "objective.frames=6"], "power of 2"),
    (["--method", "flowmap-distill", "--set", "objective.teacher_nfe=30"], "not a multiple"),
    (["--method", "flowmap-distill", "--set", "objective.teacher_sampler=ddpm"], "fixed grid"),
    (["--method", "flowmap-distill", "--set", "objective.teacher_method=nope"], "teacher method"),
    (["--method", "flowmap-distill", "--set", "objective.teacher=/no/such/run"], "neither a run"),
    (["--method", "flowmap-distill", "--set", "coupling=ot"], "leave coupling independent"),
    (["--method", "flowmap-distill", "--set", "objective.init=nope"], "choose one of teacher"),
    (["--method", "flowmap-distill", "--set", "objective.time_factor=0.001"], "must be 1"),
    (["--method", "flowmap-distill", "--set", "objective.teacher_guidance=2"], "--conditional"),
]


@pytest.mark.parametrize("argv,message", REFUSED, ids=[m for _, m in REFUSED])
def test_bad_settings_are_refused_in_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / "r"
    code = wasserflow("train", "--data", "moons", "--steps", 5, "--out", out, *argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # nothing written


def test_a_jumps_only_model_refuses_ode_samplers_and_torchrun(tmp_path, capsys):
    out = tmp_path / "fd"
    train_run(_cfg("flowmap-distill"), out)
    assert json.loads((out / "teacher" / "config.json").read_text())["method"] == "otcfm"
    code = wasserflow("sample", out, "--sampler", "euler", "--out", tmp_path / "x.npy")
    assert code == 2 and "learns the jumps of a flow map" in capsys.readouterr().err
    with pytest.raises(InputError, match="trains in one process only"):
        _check_ranks(_cfg("flowmap-distill"), Ranks(0, 2))
    _check_ranks(_cfg("meanflow"), Ranks(0, 2))  # MeanFlow trains data-parallel
