"""The training loop: resume equals uninterrupted bit for bit, NaN stop, checkpoints without pickle."""

import json
import math

import pytest
import torch
from torch import nn

from wasserflow.engine import TrainConfig, TrainingDiverged, load_weights, train
from wasserflow.engine import checkpoint as ckpt


def make_model(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, 2))


def sample_data(n, g):
    return torch.randn(n, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])


def denoise_loss(model, x1, g, step=0):
    """A flow-matching-shaped loss: random times and noise from the generator."""
    t = torch.rand(x1.shape[0], 1, generator=g)
    x0 = torch.randn(x1.shape, generator=g)
    xt = t * x1 + (1 - t) * x0
    return ((model(torch.cat([xt, t], 1)) - (x1 - x0)) ** 2).sum(1)


def cfg(**kw):
    base = dict(
        steps=60, batch_size=32, lr=3e-3, warmup=5, seed=7, log_every=10, checkpoint_every=20
    )
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls():
    model = make_model()
    res = train(model, denoise_loss, sample_data, cfg(steps=300))
    assert sum(res.losses[-30:]) / 30 < 0.7 * sum(res.losses[:30]) / 30


def test_resume_equals_uninterrupted(tmp_path):
    full = make_model()
    train(full, denoise_loss, sample_data, cfg(), tmp_path / "full")
    part = make_model()
    # interrupt after 40 steps (last checkpoint at 40), then resume to 60 with a fresh model object
    with pytest.raises(_Stop):
        train(part, denoise_loss, sample_data, cfg(), tmp_path / "part", progress=_stop_at(45))
    resumed = make_model(seed=123)  # different init: everything must come from the checkpoint
    res = train(resumed, denoise_loss, sample_data, cfg(), tmp_path / "part", resume=True)
    assert res.resumed_from == 40
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    ema_full = load_weights(tmp_path / "full" / "checkpoint.safetensors")
    ema_res = load_weights(tmp_path / "part" / "checkpoint.safetensors")
    for k in ema_full:
        assert torch.equal(ema_full[k], ema_res[k]), k
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [10, 20, 30, 40, 50, 60]


class _Stop(Exception):
    pass


def _stop_at(k):
    def cb(step, _):
        if step == k:
            raise _Stop

    return cb


def test_resume_rejects_changed_settings(tmp_path):
    train(make_model(), denoise_loss, sample_data, cfg(steps=20), tmp_path)
    with pytest.raises(ValueError, match="lr"):
        train(
            make_model(), denoise_loss, sample_data, cfg(steps=40, lr=1e-2), tmp_path, resume=True
        )


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    def loss(model, x1, g, step):
        out = denoise_loss(model, x1, g)
        return out * float("nan") if step >= 45 else out

    model = make_model()
    with pytest.raises(TrainingDiverged, match="nan at step 45.*checkpoint"):
        train(model, loss, sample_data, cfg(), tmp_path)
    _, meta = ckpt.load(tmp_path / "checkpoint.safetensors")
    assert meta["step"] == 40
    weights = load_weights(tmp_path / "checkpoint.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_checkpoint_is_plain_safetensors(tmp_path):
    train(make_model(), denoise_loss, sample_data, cfg(steps=20), tmp_path)
    from safetensors.torch import load_file

    tensors = load_file(str(tmp_path / "checkpoint.safetensors"))  # no pickle involved
    assert any(k.startswith("ema.") for k in tensors) and "rng" in tensors
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        ckpt.load(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="no checkpoint"):
        ckpt.load(tmp_path / "missing.safetensors")


def test_lr_schedule():
    c = cfg(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.0)
    assert c.lr_at(0) == pytest.approx(0.1)
    assert c.lr_at(9) == pytest.approx(math.cos(math.pi * 9 / 99) * 0.5 + 0.5)
    assert c.lr_at(99) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="decay"):
        TrainConfig(decay="linear")
