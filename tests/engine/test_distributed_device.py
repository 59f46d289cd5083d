"""The speed options of a training step (``train.precision``, ``channels_last``, ``fused``)
and the device-resident code path, run on the CPU.

The resident path (data moved to the device, the objective under ``with torch.device(dev)``
with its own generator, both generators checkpointed) is exercised on the CPU by giving the run
two CPU generators: the same code a GPU run executes, with ``dev`` = cpu.
"""

from __future__ import annotations

import pytest
import torch

from wasserflow.engine import acceleration as acc
from wasserflow.engine import build, make_config, train
from wasserflow.engine import checkpoint as ckpt
from wasserflow.errors import RunFolderError


def _parts(method="icfm", steps=30, data="moons", **train_keys):
    keys = {f"train.{k}": v for k, v in train_keys.items()}
    cfg = make_config(
        method,
        data,
        steps=steps,
        batch_size=64,
        lr=3e-3,
        warmup=0,
        seed=1,
        width=32,
        overrides=keys or None,
    )
    src = build.source(cfg)
    cfg = build.finalise(cfg, src)
    return (
        cfg,
        build.build_network(cfg, seed=0),
        build.build_objective(cfg),
        build.data_stream(cfg, src),
    )


def test_precision_is_checked():
    with pytest.raises(ValueError, match="choose one of fp32, bf16"):
        make_config("icfm", "moons", overrides={"train.precision": "fp16"})


def test_bf16_autocast_runs_the_network_in_bf16_and_trains_as_well():
    dtypes = []
    cfg, net, obj, data = _parts(steps=30, precision="bf16")
    net.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    low = train(net, obj, data, cfg.train)
    assert set(dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in net.parameters())
    cfg32, net32, obj32, data32 = _parts(steps=30)
    full = train(net32, obj32, data32, cfg32.train)
    # same draws, lower precision: the loss curve stays within a few per cent of float32's
    a, b = sum(low.losses[-10:]) / 10, sum(full.losses[-10:]) / 10
    assert abs(a - b) < 0.1 * b
    assert low.losses != full.losses  # bf16 really changed the arithmetic


def test_fused_adam_takes_the_foreach_steps():
    cfg, net, obj, data = _parts(steps=10, fused=True)
    train(net, obj, data, cfg.train)
    cfg2, net2, obj2, data2 = _parts(steps=10)
    train(net2, obj2, data2, cfg2.train)
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_channels_last_gives_the_same_step_on_a_unet():
    out = []
    for cl in (False, True):
        cfg = make_config(
            "icfm",
            "digits_images",
            steps=2,
            batch_size=8,
            lr=1e-3,
            warmup=0,
            seed=1,
            model="unet",
            model_options={"size": "digits"},
            overrides={"train.channels_last": cl},
        )
        src = build.source(cfg)
        cfg = build.finalise(cfg, src)
        net = build.build_network(cfg, seed=0)
        train(net, build.build_objective(cfg), build.data_stream(cfg, src), cfg.train)
        convs = [p for p in net.parameters() if p.dim() == 4]
        fmt = torch.channels_last if cl else torch.contiguous_format
        assert convs and all(p.is_contiguous(memory_format=fmt) for p in convs)
        assert all(p.is_contiguous() for p in convs) != cl  # the format really changed
        out.append({k: v.contiguous() for k, v in net.state_dict().items()})
    for k in out[0]:
        torch.testing.assert_close(out[0][k], out[1][k], rtol=1e-4, atol=1e-5, msg=k)


class _TwoGenerators(acc.Randomness):
    """The resident path on the CPU: a second generator for the objective."""

    @classmethod
    def seeded(cls, seed, device):
        data = torch.Generator().manual_seed(seed)
        return cls(data, torch.Generator().manual_seed(seed + 1), torch.device("cpu"))


def test_resident_path_resumes_bit_for_bit(monkeypatch, tmp_path):
    monkeypatch.setattr(acc, "Randomness", _TwoGenerators)
    cfg, net, obj, data = _parts("otcfm", steps=30, checkpoint_every=10)
    train(net, obj, data, cfg.train, tmp_path / "full")
    assert "rng_device" in ckpt.load(tmp_path / "full" / "checkpoint.safetensors")[0]

    class Stop(Exception):
        pass

    def stop(step, rec):
        if step == 15:
            raise Stop

    cfg, part, obj, data = _parts("otcfm", steps=30, checkpoint_every=10)
    with pytest.raises(Stop):
        train(part, obj, data, cfg.train, tmp_path / "part", progress=stop)
    cfg, again, obj, data = _parts("otcfm", steps=30, checkpoint_every=10)
    res = train(again, obj, data, cfg.train, tmp_path / "part", resume=True)
    assert res.resumed_from == 10
    for (k, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    # the objective drew from the second generator: a one-generator run differs
    monkeypatch.undo()
    cfg, one, obj, data = _parts("otcfm", steps=30)
    train(one, obj, data, cfg.train)
    assert not torch.equal(one.state_dict()["net.0.weight"], net.state_dict()["net.0.weight"])
    # and its checkpoint does not resume a CPU run
    cfg, other, obj, data = _parts("otcfm", steps=40, checkpoint_every=10)
    with pytest.raises(RunFolderError, match="randomness was drawn on an accelerator"):
        train(other, obj, data, cfg.train, tmp_path / "full", resume=True)


def test_compile_mode_reaches_torch_compile_and_a_bad_one_is_refused(monkeypatch):
    """``train.compile_mode`` (CUDA graphs: ``reduce-overhead``) is handed to torch.compile
    as its ``mode``, the default as None; an unknown mode is refused in one line."""
    seen = []
    monkeypatch.setattr(torch, "compile", lambda net, mode=None: seen.append(mode) or net)
    net = torch.nn.Linear(2, 2)
    acc.network(net, None, 8, channels_last=False, compile=True, compile_mode="reduce-overhead")
    acc.network(net, None, 8, channels_last=False, compile=True)
    acc.network(net, None, 8, channels_last=False, compile=False, compile_mode="max-autotune")
    assert seen == ["reduce-overhead", None]
    with pytest.raises(ValueError, match="train.compile_mode 'graphs': choose one of") as e:
        _parts(compile_mode="graphs")
    assert "\n" not in str(e.value)
