"""The minibatch-OT pair stream of OT-CFM: exact OT on large blocks (POT's plan), prefetching
bit-identical to computing synchronously, no global RNG, resume equal to an uninterrupted run."""

import json

import numpy as np
import ot
import pytest
import torch

from wasserflow.data import moons
from wasserflow.engine import (
    RunConfig,
    build_objective,
    load_weights,
    make_config,
    ot_stream_config,
    train_run,
)
from wasserflow.objectives import PAIRS
from wasserflow.paths import OTPairStream, OTStreamConfig, ot_coupling, ot_pair_block
from wasserflow.paths.ot_stream import block_seed


def _row_index(points: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """For each row of ``rows``, its index in ``points`` (exact equality)."""
    where = {tuple(p.tolist()): i for i, p in enumerate(points)}
    return torch.tensor([where[tuple(r.tolist())] for r in rows])


def test_large_block_pairs_are_pots_emd_plan():
    cfg = OTStreamConfig(batch_size=256, ot_batch=1024, reuse=1, prefetch=False)
    pairs = ot_pair_block(moons, cfg, seed=3, block=0)
    assert pairs.shape == (1024, 2, 2)
    # the same draws the block made
    g = torch.Generator().manual_seed(block_seed(3, 0))
    x1 = moons(1024, g)
    x0 = torch.randn(x1.shape, generator=g, dtype=x1.dtype)
    a = x0.double().numpy()
    b = x1.double().numpy()
    M = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    w = np.full(1024, 1.0 / 1024)
    G = ot.emd(w, w, M, numItermax=10_000_000)
    assert np.allclose(G.sum(1), w) and np.allclose(G.max(1), w)  # a permutation matrix / n
    perm = torch.from_numpy(G.argmax(1))
    i = _row_index(x0, pairs[:, 0])
    assert torch.equal(torch.sort(i).values, torch.arange(1024))  # every noise point once
    assert torch.equal(pairs[:, 1], x1[perm[i]])


def test_block_of_one_batch_is_torchcfm_minibatch_ot():
    cfg = OTStreamConfig(batch_size=64, ot_batch=64)
    pairs = ot_pair_block(moons, cfg, seed=0, block=5)
    x0 = pairs[:, 0]
    c = ot_coupling(x0, pairs[torch.randperm(64, generator=torch.Generator().manual_seed(1)), 1])
    assert torch.equal(c.x1, pairs[:, 1])


def test_reuse_serves_each_pair_once_per_epoch():
    cfg = OTStreamConfig(batch_size=32, ot_batch=128, reuse=3, prefetch=False)
    assert cfg.steps_per_block == 12
    pairs = ot_pair_block(moons, cfg, seed=1, block=2)
    assert pairs.shape == (384, 2, 2)
    epochs = pairs.reshape(3, 128, 2, 2)
    ref = _row_index(epochs[0, :, 0], epochs[0, :, 0])
    for e in range(3):
        i = _row_index(epochs[0, :, 0], epochs[e, :, 0])
        assert torch.equal(torch.sort(i).values, ref)
        assert torch.equal(epochs[e, :, 1], epochs[0, i, 1])  # the same partners
    assert not torch.equal(epochs[0], epochs[1])  # a fresh order per epoch


def test_prefetch_gives_bit_identical_batches_and_no_global_rng():
    def data(n, g):
        return moons(n, g)

    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    streams = [
        OTPairStream(data, OTStreamConfig(32, 128, reuse=2, prefetch=p), seed=9, total_steps=40)
        for p in (False, True)
    ]
    with streams[0] as sync, streams[1] as pre:
        gen = torch.Generator().manual_seed(0)
        for step in range(40):
            a, b = sync(32, gen), pre(32, None)
            assert a.shape == (32, 2, 2)
            assert torch.equal(a, b), step
        # a resumed run: seek to a step mid-block, then the same batches follow
        pre.seek(13)
        assert torch.equal(pre(32, None), sync.batch(13))
        assert torch.equal(pre(32, None), sync.batch(14))
    assert torch.equal(torch.random.get_rng_state(), before)
    other = OTPairStream(data, OTStreamConfig(32, 128, reuse=2), seed=10)
    assert not torch.equal(other.batch(0), streams[0].batch(0))  # the seed matters
    other.close()


def test_stream_config_validation():
    with pytest.raises(ValueError, match="multiple"):
        OTStreamConfig(batch_size=256, ot_batch=1000)
    with pytest.raises(ValueError, match="positive"):
        OTStreamConfig(batch_size=256, ot_batch=512, reuse=0)
    s = OTPairStream(moons, OTStreamConfig(32, 64), seed=0)
    with pytest.raises(ValueError, match="serves batches of 32"):
        s(64, None)


def test_recipe_options():
    recipe = make_config("otcfm", "moons", batch_size=256)
    cfg = ot_stream_config(recipe)
    assert cfg == OTStreamConfig(batch_size=256, ot_batch=256, reuse=1, prefetch=True)
    big = ot_stream_config(
        make_config("otcfm", "moons", batch_size=256, overrides={"ot_batch": 2048, "ot_reuse": 8})
    )
    assert (big.ot_batch, big.reuse, big.steps_per_block) == (2048, 8, 64)
    assert build_objective(recipe, total_steps=10).coupling == PAIRS
    v1 = {
        "version": 1,
        "method": {
            "method": "otcfm",
            "schedule": {"name": "linear"},
            "prediction": "velocity",
            "coupling": "ot",
            "times": {"kind": "uniform"},
            "sampler": {"name": "euler", "options": {}},
        },
        "model": {"kind": "mlp", "shape": [2], "width": 16, "depth": 2},
        "data": {"spec": "moons", "scale": "none", "standardizer": None},
        "train": {"steps": 10, "batch_size": 256},
    }
    old = RunConfig.from_dict(v1)  # an older run folder: no ot_* keys
    assert ot_stream_config(old) is None
    assert build_objective(old, total_steps=10).coupling == "ot"
    assert ot_stream_config(make_config("icfm", "moons")) is None
    assert ot_stream_config(make_config("energy-matching", "moons")) is None


class _Stop(Exception):
    pass


def test_otcfm_stream_resume_equals_uninterrupted(tmp_path):
    cfg = make_config(
        "otcfm",
        "moons",
        steps=30,
        batch_size=32,
        width=16,
        depth=2,
        warmup=5,
        method_overrides={"ot_batch": 64, "ot_reuse": 2, "train.checkpoint_every": 10},
    )
    cfg = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    train_run(cfg, tmp_path / "full")

    def stop(name, step, record):
        if step == 15:
            raise _Stop

    with pytest.raises(_Stop):
        train_run(cfg, tmp_path / "part", progress=stop)
    train_run(cfg, tmp_path / "part", resume=True)
    for ema in (False, True):
        a = load_weights(tmp_path / "full" / "checkpoint.safetensors", ema=ema)
        b = load_weights(tmp_path / "part" / "checkpoint.safetensors", ema=ema)
        for k in a:
            assert torch.equal(a[k], b[k]), (ema, k)
