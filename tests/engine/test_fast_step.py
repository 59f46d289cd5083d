"""The engine's cheaper step computes the numbers it computed before.

References: torch's own per-tensor Adam (``foreach=False``, what torch runs on the CPU by
default) for the engine's multi-tensor Adam, bit for bit; a per-tensor EMA loop for the
engine's EMA, which reads its parameters through cached ``Parameter`` objects (so it must still
follow them after ``load_state_dict`` and a memory-format move, and copy persistent buffers).
"""

from __future__ import annotations

import torch
from torch import nn

from wasserflow.engine import EMA, TrainConfig, load_weights, train
from wasserflow.engine import acceleration as acc
from wasserflow.engine import checkpoint as ckpt


def _net(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.SiLU(), nn.Flatten(), nn.Linear(16, 3)
        )


def _steps(model, opt, k=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(k):
        x = torch.randn(8, 2, 4, 4, generator=g)
        opt.zero_grad(set_to_none=True)
        (model(x) ** 2).mean().backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), 0.5)
        opt.step()


def test_the_engines_adam_is_torchs_per_tensor_adam_bit_for_bit():
    for wd in (0.0, 1e-2):
        a, b = _net(), _net()
        mine = acc.optimizer(a, 3e-3, wd, fused=False)
        ref = torch.optim.Adam(b.parameters(), lr=3e-3, weight_decay=wd, foreach=False)
        _steps(a, mine)
        _steps(b, ref)
        for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), (wd, k)
        assert not torch.equal(a[0].weight, _net()[0].weight)  # it did train


def test_a_resumed_optimizer_keeps_its_own_implementation(tmp_path):
    # a checkpoint saved by a per-tensor Adam (foreach None, as runs before this change saved)
    model = _net()
    old = torch.optim.Adam(model.parameters(), lr=1e-3)
    _steps(model, old, k=2)
    tensors, meta = ckpt.optimizer_tensors(old)
    assert meta["param_groups"][0]["foreach"] is None
    opt = acc.optimizer(model, 1e-3, 0.0, fused=False)
    own = acc.implementation(opt)
    ckpt.load_optimizer(opt, tensors, meta)
    acc.restore_implementation(opt, own)
    assert opt.param_groups[0]["foreach"] is True
    assert int(opt.state[opt.param_groups[0]["params"][0]]["step"]) == 2  # the state came back


def _reference_ema(shadow: dict, model: nn.Module, step: int, decay: float) -> None:
    d = min(decay, (1 + step) / (10 + step))
    for k, v in model.state_dict().items():
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            shadow[k].copy_(v)
        else:
            shadow[k].mul_(d).add_(v, alpha=1 - d)


def test_ema_follows_the_live_parameters_and_copies_buffers():
    model = _net()
    ema = EMA(model, 0.9)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(6):
        _steps(model, opt, k=1, seed=step)
        ema.update(model, step)
        _reference_ema(ref, model, step, 0.9)
    # the weights change under the cached objects: loaded in place, moved to channels-last
    model.load_state_dict(_net(seed=5).state_dict())
    model.to(memory_format=torch.channels_last)
    for step in range(6, 9):
        _steps(model, opt, k=1, seed=step)
        ema.update(model, step)
        _reference_ema(ref, model, step, 0.9)
    for k, v in ref.items():
        assert torch.equal(ema.state_dict()[k], v), k
    assert ema.state_dict()["1.running_mean"].abs().sum() > 0  # the buffer was copied


def test_a_training_runs_ema_averages_its_channels_last_weights(tmp_path):
    """train() moves the model to channels-last after making the EMA: the EMA must average the
    moved weights (a stale copy would keep averaging the initial ones)."""
    model = _net()
    ref = {k: v.clone() for k, v in model.state_dict().items()}

    def loss(net, batch, g, step):
        return (net(batch) ** 2).mean(1)

    def follow(done, record):  # called after each step's EMA update
        _reference_ema(ref, model, done - 1, 0.9)

    cfg = TrainConfig(steps=20, batch_size=8, lr=1e-2, warmup=0, ema_decay=0.9, channels_last=True)
    data = lambda n, g: torch.randn(n, 2, 4, 4, generator=g)  # noqa: E731
    train(model, loss, data, cfg, tmp_path, progress=follow)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    ema = load_weights(tmp_path / "checkpoint.safetensors")
    for k, v in ref.items():
        assert torch.equal(ema[k], v.contiguous()), k
    assert not torch.equal(ema["0.weight"], _net().state_dict()["0.weight"])
