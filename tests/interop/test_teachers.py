"""A model trained elsewhere as the teacher of a flow-map distillation, named on the command
line: TorchCFM's MLP (a state dict, loaded through interop's ``torchcfm:`` source) is distilled
by ``wasserflow train --method flowmap-distill``, and the student's one jump lands where
TorchCFM's own ODE integration (torchdiffeq's RK4 on the net called as TorchCFM calls it) takes
the same noise."""

import json

import pytest
import torch
from safetensors.torch import save_file
from torchcfm.models.models import MLP
from torchdiffeq import odeint

import wasserflow.interop  # noqa: F401  (registers the diffusers: and torchcfm: teachers)
from wasserflow.cli import main
from wasserflow.engine import load_run
from wasserflow.engine.teachers import TEACHER_SOURCES
from wasserflow.models import build_backbone


def wasserflow(*argv):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
        raise SystemExit(0)
    return e.value.code or 0


def test_a_torchcfm_net_is_distilled_into_one_jump(tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = MLP(dim=2, time_varying=True, w=64)  # a smooth field: an arbitrary teacher
    ckpt = tmp_path / "teacher.safetensors"
    save_file(net.state_dict(), str(ckpt))
    out = tmp_path / "student"
    code = wasserflow(
        "train", "--method", "flowmap-distill", "--data", "moons", "--steps", 400,
        "--lr", 3e-3, "--width", 64, "--out", out,
        "--set", f"objective.teacher=torchcfm:{ckpt}", "--set", "objective.teacher_model=mlp",
        "--set", "objective.teacher_sampler=rk4", "--set", "objective.teacher_nfe=64",
        "--set", "objective.pairs=2048", "--set", "objective.init=random",
    )  # fmt: skip
    assert code == 0
    x0 = torch.randn(1000, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = odeint(
            lambda t, x: net(torch.cat([x, t.expand(x.shape[0], 1)], 1)),
            x0, torch.linspace(0, 1, 65), method="rk4",
        )[-1].double()  # fmt: skip
    ours = load_run(out).sample(1000, nfe=1, x0=x0.double()).x
    scale = (theirs - x0.double()).pow(2).sum(1).mean()
    assert (ours - theirs).pow(2).sum(1).mean() / scale < 0.05


def test_the_interop_sources_are_registered_and_check_their_settings(tmp_path, capsys):
    assert {"diffusers", "torchcfm"} <= set(TEACHER_SOURCES)
    code = wasserflow(
        "train", "--method", "flowmap-distill", "--data", "moons", "--steps", 5,
        "--out", tmp_path / "r", "--set", "objective.teacher=torchcfm:x.safetensors",
    )  # fmt: skip
    assert code == 2 and "objective.teacher_model" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_a_wasserflow_backbone_trained_by_torchcfm_starts_the_student(tmp_path):
    """A TorchCFM state dict of wasserflow's own backbone (how benchmarks/images.py trains
    TorchCFM's loop) is a velocity network the student starts from (objective.init teacher,
    the default): after one step at a learning rate of 1e-9 its average velocity over any
    [t, s] is the TorchCFM net's v(x, t)."""
    opts = {"width": 32, "depth": 2, "activation": "silu", "time_embedding": "sinusoidal"}
    net = build_backbone("mlp", (2,), opts, seed=3)  # the student's backbone, trained elsewhere
    ckpt = tmp_path / "teacher.safetensors"
    save_file(net.state_dict(), str(ckpt))
    out = tmp_path / "student"
    code = wasserflow(
        "train", "--method", "flowmap-distill", "--data", "moons", "--steps", 1, "--lr", 1e-9,
        "--width", 32, "--depth", 2, "--out", out,
        "--set", f"objective.teacher=torchcfm:{ckpt}", "--set", "objective.teacher_model=mlp",
        "--set", f"objective.teacher_model_options={json.dumps(opts)}",
        "--set", "objective.pairs=64",
    )  # fmt: skip
    assert code == 0
    student = load_run(out).model
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(50, 2, generator=g), torch.rand(50, generator=g)
    with torch.no_grad():
        v = net(x, t)
        for s in (t, (1 + t) / 2, torch.ones(50)):
            torch.testing.assert_close(student(x, t, s), v, rtol=1e-5, atol=1e-5)


def test_the_same_weights_on_another_clock_are_refused_as_a_start(tmp_path, capsys):
    """TorchCFM's UNet sees t where wasserflow's sees 1000 t: a state dict of the student's UNet
    shape loaded with time_scale 1 has every parameter the student has, and still another
    velocity. The start is checked on probes and refused in one line naming the fix."""
    opts = {"size": "digits", "channels": 8, "groups": 4, "time_scale": 1.0}
    net = build_backbone("unet", (1, 8, 8), opts, seed=3)
    with torch.no_grad():  # a trained net: its zero-initialised head would hide every difference
        for p in net.parameters():
            p += 0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1))
    ckpt = tmp_path / "teacher.safetensors"
    save_file(net.state_dict(), str(ckpt))
    student = ["--model-set", "channels=8", "--model-set", "groups=4"]
    code = wasserflow(
        "train", "--method", "flowmap-distill", "--data", "digits_images", "--model", "unet",
        *student, "--steps", 1, "--out", tmp_path / "s",
        "--set", f"objective.teacher=torchcfm:{ckpt}", "--set", "objective.teacher_model=unet",
        "--set", f"objective.teacher_model_options={json.dumps(opts)}",
        "--set", "objective.pairs=8", "--set", "objective.frames=1", "--set", "objective.teacher_nfe=2",
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "do not give the teacher's velocity" in err and "objective.init random" in err
