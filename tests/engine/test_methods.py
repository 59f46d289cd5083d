"""Every method of ``wasserflow train`` trains on 2-D data in seconds: the loss falls and the
samples move from the reference noise toward the data (W2 against fresh data, exact OT)."""

import pytest
import torch

from wasserflow.data import make_source
from wasserflow.engine import METHODS, build_objective, load_run, make_config, train_run
from wasserflow.geometry import exact_ot

FAST = {
    "rectified-flow": {"reflow": {"rounds": 1, "pairs": 1024, "nfe": 10}},
    # MeanFlow's adaptive weight 1 / (|delta|^2 + c) holds its loss near 1 (p = 1): the plain
    # squared error (p = 0, with the paper's times) shows the fall; the teacher of a
    # distillation: trained first, short
    "meanflow": {"objective.p": 0.0, "objective.times": "logit_normal"},
    "meanflow-ot": {"objective.p": 0.0},
    "flowmap-distill": {"objective.pairs": 1024, "objective.teacher_steps": 300},
    "energy-matching": {
        "energy_matching": {
            "warmup_fraction": 0.7,
            "tau_star": 0.9,
            "eps_max": 0.01,
            "cd_weight": 1e-3,
            "negative_steps": 5,
            "negative_dt": 0.01,
        }
    },
}


# the JKO flow has no loss curve (one exact fit per block): tests/engine/test_jko_flow.py
@pytest.mark.parametrize("method", [m for m in METHODS if m != "jko-flow"])
def test_method_trains_and_samples_move_toward_data(method, tmp_path):
    cfg = make_config(
        method,
        "8gaussians",
        steps=300,
        batch_size=128,
        width=64,
        depth=2,
        lr=3e-3,
        warmup=10,
        method_overrides=FAST.get(method),
    )
    results = train_run(cfg, tmp_path / method)
    losses = results[0].losses
    # epsilon losses on VE paths keep a large irreducible part (small sigma): a modest fall
    assert sum(losses[-50:]) / 50 < 0.95 * sum(losses[:50]) / 50
    run = load_run(tmp_path / method)
    g = torch.Generator().manual_seed(0)
    # annealed Langevin needs its default ~100 steps per noise level, a flow map is sampled
    # by its default one jump; the rest take 40 NFE
    own = method == "ncsn" or run.context().flow_map
    out = run.sample(400, generator=g, nfe=None if own else 40)
    data = make_source("8gaussians").sample(400, torch.Generator().manual_seed(1)).double()
    w2_model = exact_ot(out.x, data).w2
    w2_noise = exact_ot(out.start, data).w2  # where sampling started: the path's reference
    assert torch.isfinite(out.x).all()
    assert w2_model < 0.6 * w2_noise, (w2_model, w2_noise)


def test_time_input_reaches_the_network_in_training_and_sampling(tmp_path):
    """With time_input "logsnr" the objective and the sampler both feed the network the
    path's log-SNR feature, never the raw clock (a model trained on one and sampled with the
    other would be silently wrong)."""
    from torch import nn

    cfg = make_config(
        "sde-vp",
        "moons",
        steps=3,
        batch_size=32,
        width=16,
        depth=1,
        method_overrides={"prediction": "velocity", "time_input": "logsnr"},
    )
    train_run(cfg, tmp_path / "r")
    run = load_run(tmp_path / "r")
    seen = []

    class Probe(nn.Module):
        def forward(self, x, t):
            seen.append(torch.as_tensor(t).reshape(-1).clone())
            return torch.zeros_like(x)

    run.model = Probe()
    run.sample(4, sampler="euler", nfe=4, generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(0, 1 - 1e-3, 5, dtype=torch.float64)[:4]
    want = run.path.network_time(grid, "logsnr").float()
    assert torch.allclose(torch.stack([s[0] for s in seen[:4]]), want, atol=1e-6)
    objective = build_objective(cfg, total_steps=3)
    seen.clear()
    objective(Probe(), torch.randn(64, 2), torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    torch.randn(64, 2, generator=g)  # the objective draws the noise, then the times
    t = objective.times.sample(64, g)
    assert torch.allclose(seen[0], run.path.network_time(t, "logsnr"), atol=1e-6)
