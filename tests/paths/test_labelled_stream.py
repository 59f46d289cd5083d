"""The minibatch-OT pair stream on labelled data: each block is POT's exact plan within each
class (or of the whole block, label-blind), every pair keeps its data point's label, and the
batches are a pure function of (seed, step) with or without prefetching."""

import ot
import pytest
import torch

from wasserflow.paths import LabelledBatch, OTPairStream, OTStreamConfig, ot_pair_block


def _data(n, g):
    """Points of class y near (10 y, 0): the class can be read off the point."""
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) * 0.5
    return LabelledBatch(x + torch.stack([10.0 * y, 0.0 * y], 1), y)


def _pot(a, b):
    n = a.shape[0]
    return float(ot.emd2(ot.unif(n), ot.unif(n), ot.dist(a.numpy(), b.numpy()))) * n


@pytest.mark.parametrize("per_class", [True, False])
def test_a_labelled_block_is_the_exact_plan_and_keeps_labels(per_class):
    cfg = OTStreamConfig(batch_size=16, ot_batch=64, prefetch=False, per_class=per_class)
    block = ot_pair_block(_data, cfg, seed=5, block=0)
    assert isinstance(block, LabelledBatch) and block.x.shape == (64, 2, 2)
    x0, x1, y = block.x[:, 0], block.x[:, 1], block.y
    assert torch.equal(torch.round(x1[:, 0] / 10.0).long(), y)  # each pair keeps its label
    cost = float((x0 - x1).pow(2).sum(1).sum())
    if per_class:  # the noise of a class's pairs goes to that class only
        want = sum(_pot(x0[y == c], x1[y == c]) for c in range(3))
    else:
        want = _pot(x0, x1)
    assert cost == pytest.approx(want, rel=1e-9)
    # the within-class plan pays for keeping classes apart; the blind one is the cheapest
    other = ot_pair_block(
        _data, OTStreamConfig(16, 64, prefetch=False, per_class=not per_class), 5, 0
    )
    other_cost = float((other.x[:, 0] - other.x[:, 1]).pow(2).sum(1).sum())
    assert (cost > other_cost) == per_class


def test_the_labelled_stream_is_a_function_of_seed_and_step():
    cfg = OTStreamConfig(batch_size=16, ot_batch=32, reuse=1, prefetch=True)
    with OTPairStream(_data, cfg, seed=3) as s1:
        a = [s1(16) for _ in range(5)]
    sync = OTStreamConfig(batch_size=16, ot_batch=32, reuse=1, prefetch=False)
    with OTPairStream(_data, sync, seed=3) as s2:
        s2.seek(2)
        b = [s2(16) for _ in range(3)]
    for u, v in zip(a[2:], b, strict=True):
        assert torch.equal(u.x, v.x) and torch.equal(u.y, v.y)
