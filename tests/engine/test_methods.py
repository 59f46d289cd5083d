"""Every method of ``wasserflow train`` trains on 2-D data in seconds: the loss falls and the
samples move from the reference noise toward the data (W2 against fresh data, exact OT)."""

import pytest
import torch

from wasserflow.data import make_source
from wasserflow.engine import load_run, make_config, train_run
from wasserflow.geometry import exact_ot
from wasserflow.objectives import METHODS

FAST = {
    "rectified-flow": {"reflow": {"rounds": 1, "pairs": 1024, "nfe": 10}},
    "energy-matching": {"energy_matching": {"warmup_fraction": 0.7, "tau_star": 0.9,
                                            "eps_max": 0.01, "cd_weight": 1e-3,
                                            "negative_steps": 5, "negative_dt": 0.01}},
}


# the JKO flow has no loss curve (one exact fit per block): tests/engine/test_jko_flow.py
@pytest.mark.parametrize("method", [m for m in METHODS if m != "jko-flow"])
def test_method_trains_and_samples_move_toward_data(method, tmp_path):
    cfg = make_config(method, "8gaussians", steps=300, batch_size=128, width=64, depth=2,
                      lr=3e-3, warmup=10, method_overrides=FAST.get(method))
    results = train_run(cfg, tmp_path / method)
    losses = results[0].losses
    # epsilon losses on VE paths keep a large irreducible part (small sigma): a modest fall
    assert sum(losses[-50:]) / 50 < 0.95 * sum(losses[:50]) / 50
    run = load_run(tmp_path / method)
    g = torch.Generator().manual_seed(0)
    # annealed Langevin needs its default ~100 steps per noise level; the rest take 40 NFE
    out = run.sample(400, generator=g, nfe=None if method == "ncsn" else 40)
    data = make_source("8gaussians").sample(400, torch.Generator().manual_seed(1)).double()
    w2_model = exact_ot(out.x, data).w2
    w2_noise = exact_ot(out.start, data).w2  # where sampling started: the path's reference
    assert torch.isfinite(out.x).all()
    assert w2_model < 0.6 * w2_noise, (w2_model, w2_noise)
