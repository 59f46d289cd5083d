"""``broadcast_time``: the one helper that turns a time into one time per sample."""

import pytest
import torch

from wasserflow.paths import broadcast_time


def test_scalars_repeat_and_per_sample_times_flatten():
    x = torch.zeros(4, 3, dtype=torch.float32)
    for t in (0.1, torch.tensor(0.1, dtype=torch.float64)):
        out = broadcast_time(t, x)
        assert out.shape == (4,) and out.dtype == torch.float32 and out.is_contiguous()
        assert torch.equal(out, torch.tensor([0.1] * 4, dtype=torch.float32))
    per = torch.tensor([[0.0], [0.25], [0.5], [1.0]], dtype=torch.float64)
    assert torch.equal(broadcast_time(per, x), per[:, 0].float())
    assert broadcast_time(0.5, torch.zeros(2, dtype=torch.int64)).dtype == torch.float64


def test_other_sizes_are_refused_with_the_name():
    with pytest.raises(ValueError, match="s must be a scalar or one time per sample"):
        broadcast_time(torch.rand(3), torch.zeros(4, 2), name="s")
