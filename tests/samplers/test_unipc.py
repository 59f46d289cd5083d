"""UniPC (bh2, data prediction) against diffusers' UniPCMultistepScheduler, and its order with
the exact oracle field.

diffusers runs in float64 as in test_dpm_solver.py: its tables are cast up and its float32
``sigmas`` replaced by the same values in float64 (checked against its own to float32
precision); the rest is diffusers' own code path (warm-up, corrector, lower_order_final).
diffusers' lower_order_final=False with a final sigma of zero divides by zero (h = inf) and
yields NaN or a singular solve, so that case is compared with final sigma "sigma_min" only;
unipc makes a step to sigma = 0 first order.
"""

import numpy as np
import pytest
import torch
from diffusers import UniPCMultistepScheduler

from wasserflow.geometry import GaussianMixture
from wasserflow.paths import (
    AffinePath,
    DDPMDiscreteSchedule,
    LinearSchedule,
    MixtureOracle,
    VPSchedule,
)
from wasserflow.samplers import (
    SAMPLERS,
    Field,
    SamplingContext,
    get_sampler,
    solver_grid,
    uniform_grid,
    unipc,
)

T = 1000
COUNTS = [1, 2, 3, 4, 6, 10, 20]
MIX = GaussianMixture.create(
    [0.3, 0.7],
    [[-2.0, 0.0], [1.5, 1.0]],
    [[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]]],
)


def eps_model(x, t):
    return (
        0.3 * x * torch.cos(3 * t)[:, None]
        + 0.2 * torch.sin(5 * t)[:, None]
        + 0.2 * torch.tanh(x.flip(1))
    )


def _x(n, seed):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _scheduler(order, lower_order_final, final, spacing):
    d = UniPCMultistepScheduler(
        T,
        1e-4,
        0.02,
        "linear",
        solver_order=order,
        prediction_type="epsilon",
        predict_x0=True,
        solver_type="bh2",
        lower_order_final=lower_order_final,
        final_sigmas_type=final,
        timestep_spacing=spacing,
    )
    for name in ("betas", "alphas", "alphas_cumprod", "alpha_t", "sigma_t", "lambda_t"):
        setattr(d, name, getattr(d, name).double())
    return d


def _diffusers_run(d, n, final, x0):
    """diffusers' loop in float64; returns its timesteps and final sample."""
    d.set_timesteps(n)
    ac = d.alphas_cumprod
    sig = ((1 - ac) / ac).sqrt()
    last = torch.zeros(1, dtype=torch.float64) if final == "zero" else sig[:1]
    sigmas = torch.cat([sig[d.timesteps], last])
    assert torch.allclose(d.sigmas.double(), sigmas, rtol=1e-6, atol=0)  # diffusers' own, f32
    d.sigmas = sigmas
    x = x0
    for k in d.timesteps:
        x = d.step(eps_model(x, (1.0 - (k.double() + 1) / T).expand(x.shape[0])), k, x).prev_sample
    return d.timesteps, x


def _grid(ks, final):
    end = 1.0 if final == "zero" else 1.0 - 1.0 / T
    return torch.cat([1.0 - (ks.double() + 1) / T, torch.tensor([end], dtype=torch.float64)])


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("spacing", ["linspace", "trailing", "leading"])
@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_full_runs_equal_diffusers(spacing, final, order):
    for lof in (True,) if final == "zero" else (True, False):
        d = _scheduler(order, lof, final, spacing)
        field = Field(
            eps_model,
            "epsilon",
            AffinePath(DDPMDiscreteSchedule.from_alphas_cumprod(d.alphas_cumprod)),
        )
        for n in COUNTS:
            x0 = _x(5, n)
            ks, x = _diffusers_run(d, n, final, x0)
            out = unipc(field, x0, _grid(ks, final), order=order, lower_order_final=lof)
            assert out.nfe == n and torch.isfinite(x).all()
            assert torch.allclose(out.x, x, rtol=0, atol=1e-10), (spacing, final, order, lof, n)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_comparison_can_fail():
    # negative controls: UniP alone (no corrector), DPM-Solver++(2M) and another order differ
    d = _scheduler(2, True, "zero", "linspace")
    field = Field(
        eps_model, "epsilon", AffinePath(DDPMDiscreteSchedule.from_alphas_cumprod(d.alphas_cumprod))
    )
    x0 = _x(5, 0)
    ks, x = _diffusers_run(d, 8, "zero", x0)
    grid = _grid(ks, "zero")
    assert torch.allclose(unipc(field, x0, grid).x, x, atol=1e-10)
    for other in (
        unipc(field, x0, grid, corrector=False),
        unipc(field, x0, grid, order=3),
        SAMPLERS["dpm_solver"](field, x0, grid),
    ):
        assert not torch.allclose(other.x, x, atol=1e-6)


def _slope(schedule, start, counts, **options):
    path = AffinePath(schedule)
    f = Field.from_oracle(MixtureOracle(MIX, path))
    x0 = _x(8, 0)
    ref = SAMPLERS["dopri5"](f, x0, uniform_grid(1, start, 0.99), atol=1e-10, rtol=1e-10).x
    errs = [
        float(
            (
                unipc(
                    f,
                    x0,
                    solver_grid(
                        k, path.coefficients, spacing="logsnr", start=start, stop=0.99, end=0.99
                    ),
                    **options,
                ).x
                - ref
            )
            .norm(dim=1)
            .mean()
        )
        for k in counts
    ]
    return -np.polyfit(np.log(counts), np.log(errs), 1)[0], errs


@pytest.mark.parametrize(
    "schedule,start,control", [(VPSchedule(), 0.0, True), (LinearSchedule(), 0.02, False)]
)
def test_order_with_the_oracle_field(schedule, start, control):
    # UniP-2 + UniC: third order on log-SNR grids; UniP-2 alone is the second-order control
    slope, errs = _slope(schedule, start, [16, 32, 64])
    assert abs(slope - get_sampler("unipc").order) < 0.3, (slope, errs)
    if not control:
        return
    slope_p, errs_p = _slope(schedule, start, [16, 32, 64], corrector=False)
    assert abs(slope_p - 2.0) < 0.3, (slope_p, errs_p)
    assert errs[-1] < 0.2 * errs_p[-1]


def test_plan_trajectory_and_bad_grids():
    spec = get_sampler("unipc")
    assert spec.nfe_per_step == 1 and spec.needs_path and not spec.stochastic
    path = AffinePath(VPSchedule())
    plan = spec.make_plan(
        6, SamplingContext(path=path, t_last_trained=0.999), {"spacing": "logsnr", "order": 3}
    )
    assert torch.equal(
        plan.grid, solver_grid(6, path.coefficients, spacing="logsnr", stop=0.999, final_step=0.5)
    )
    assert plan.options == {"order": 3} and float(plan.grid[-1]) == 1.0
    f = Field.from_oracle(MixtureOracle(MIX, path))
    x0 = _x(8, 2)
    out = unipc(f, x0, plan.grid, return_trajectory=True, **plan.options)
    assert out.nfe == 6 and out.trajectory.shape == (7, 8, 2)
    assert torch.equal(out.trajectory[-1], out.x) and torch.equal(out.times, plan.grid)
    with pytest.raises(ValueError, match="chained"):
        unipc(f, x0, torch.tensor([[0.0, 0.5], [0.4, 0.9]], dtype=torch.float64))
    with pytest.raises(ValueError, match="order"):
        unipc(f, x0, plan.grid, order=4)
    with pytest.raises(ValueError, match="path"):
        unipc(lambda x, t: x, x0, uniform_grid(4))
