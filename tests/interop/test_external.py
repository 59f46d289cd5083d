"""from_callable and the ExternalModel interface: closed-form Gaussian fields sampled to their
exact transport maps, sampling equal to a TrainedRun's, and the one-line refusals."""

import math

import pytest
import torch

from wasserflow.engine import TrainedRun, make_config
from wasserflow.engine.build import build_network
from wasserflow.errors import InputError
from wasserflow.interop import ExternalModel, from_callable
from wasserflow.metrics import evaluate_run
from wasserflow.paths import DDPMDiscreteSchedule

M, S = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.4  # data N(M, S^2 I)


def linear_velocity(x, t):
    """Exact velocity of the linear path from N(0, I) to N(M, S^2 I) (independent coupling):
    x_t = t M + r_t z with r_t = sqrt(t^2 S^2 + (1 - t)^2), so v = M + (r_t' / r_t)(x - t M)."""
    t = t[:, None]
    r2 = t**2 * S**2 + (1 - t) ** 2
    return M + (t * S**2 - (1 - t)) / r2 * (x - t * M)


def test_exact_velocity_is_integrated_to_the_exact_map():
    model = from_callable(linear_velocity, "velocity", "linear", shape=(2,))
    assert isinstance(model, ExternalModel) and model.default_sampler == "euler"
    g = torch.Generator().manual_seed(0)
    out = model.sample(200, sampler="dopri5", generator=g, options={"atol": 1e-9, "rtol": 1e-9})
    assert torch.allclose(out.x, M + S * out.start, atol=1e-6)  # x1 = M + S z
    euler = model.sample(200, nfe=4, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(euler.x, M + S * euler.start, atol=1e-3)  # first order: 4 steps


def test_exact_epsilon_on_a_ddpm_path_with_ddim():
    # E[eps | x_t] = sigma (x - alpha M) / (alpha^2 S^2 + sigma^2) for x1 ~ N(M, S^2 I)
    sched = DDPMDiscreteSchedule()

    def eps(x, t):
        c = sched(t)
        a, s = c.alpha[:, None], c.sigma[:, None]
        return s * (x - a * M) / (a**2 * S**2 + s**2)

    model = from_callable(eps, "epsilon", "ddpm", shape=(2,))
    assert model.default_sampler == "ddim" and model.context().num_train_timesteps == 1000
    c0 = sched(torch.zeros(1, dtype=torch.float64))
    a0, s0 = float(c0.alpha), float(c0.sigma)
    errors = []
    for k in (25, 100):  # the exact map of the ODE from t = 0; DDIM is first order
        out = model.sample(64, nfe=k, generator=torch.Generator().manual_seed(1))
        exact = M + S * (out.start - a0 * M) / math.sqrt(a0**2 * S**2 + s0**2)
        errors.append(float((out.x - exact).norm(dim=1).mean()))
    assert errors[1] < 0.05 * S and 2.5 < errors[0] / errors[1] < 6.0, errors


def test_sampling_equals_a_trained_runs():
    # the same network and path: ExternalModel.sample and TrainedRun.sample agree bit for bit
    cfg = make_config("icfm", "moons", steps=10)
    run = TrainedRun(cfg, build_network(cfg, seed=3), None)
    f = run.field()
    model = from_callable(f.fn, f.prediction, f.path, shape=run.shape, data="moons")
    for sampler, nfe in (("euler", 3), ("heun", 4)):
        ours = model.sample(
            16, sampler=sampler, nfe=nfe, generator=torch.Generator().manual_seed(2)
        )
        theirs = run.sample(
            16, sampler=sampler, nfe=nfe, generator=torch.Generator().manual_seed(2)
        )
        assert torch.equal(ours.x, theirs.x) and ours.nfe == theirs.nfe
        assert torch.equal(ours.energy, theirs.energy)
    a = evaluate_run(model, [2], n=32)[0]
    b = evaluate_run(run, [2], n=32)[0]
    assert (a.w2, a.action, a.geodesic_gap) == (b.w2, b.action, b.geodesic_gap)


def test_grid_x0_options_and_refusals():
    model = from_callable(linear_velocity, shape=(2,), score_valid=False)
    grid = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    x0 = torch.zeros(3, 2, dtype=torch.float64)
    out = model.sample(3, grid=grid, x0=x0)
    assert out.nfe == 2 and torch.equal(out.start, x0)
    with pytest.raises(ValueError, match="nfe or grid, not both"):
        model.sample(3, grid=grid, nfe=2)
    with pytest.raises(ValueError, match="x0 has shape"):
        model.sample(4, x0=x0)
    with pytest.raises(ValueError, match="has no option eta"):
        model.sample(3, grid=grid, options={"eta": 1.0})
    with pytest.raises(ValueError, match="needs the score"):
        model.sample(3, sampler="ddim", nfe=2)
    assert not model.supports("ddpm") and model.supports("rk4")
    assert model.budgets([1, 2]) == [1, 2] and model.budgets([1], "dopri5") == [None]
    with pytest.raises(InputError, match=r"shape \[1, 8, 8\] but the model generates \[2\]"):
        model.with_data("digits_images")
    assert model.with_data("moons").data_spec == "moons" and model.data_spec is None
    with pytest.raises(InputError, match="no data to compare with"):
        evaluate_run(model, [2], n=8)
    with pytest.raises(ValueError, match="path must be"):
        from_callable(linear_velocity, path=3, shape=(2,))
    with pytest.raises(ValueError, match="unknown prediction"):
        from_callable(linear_velocity, "noise", shape=(2,))
