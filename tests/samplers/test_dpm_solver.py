"""DPM-Solver++(2M) against diffusers' DPMSolverMultistepScheduler, and its order with the exact
oracle field.

diffusers is run in float64 so that the comparison is to ~1e-10: its tables are cast up, its
float32 ``sigmas`` are replaced by the same values in float64 (checked against its own to
float32 precision), and its ``step`` upcasts the sample "to float32", which the module-level
``torch`` proxy below turns into float64. Everything else is diffusers' own code path
(first-order start, lower_order_final, final sigma "zero" / "sigma_min").
"""

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from diffusers.schedulers import scheduling_dpmsolver_multistep as dpm_module

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
    dpm_solver,
    get_sampler,
    solver_grid,
    uniform_grid,
)

T = 1000
COUNTS = [1, 2, 3, 4, 5, 8, 10, 14, 15, 16, 20, 50, 100]
MIX = GaussianMixture.create(
    [0.3, 0.7],
    [[-2.0, 0.0], [1.5, 1.0]],
    [[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]]],
)


class _Float64Torch:
    """``torch`` for diffusers' scheduler module with float32 meaning float64 (its ``step`` casts
    the sample with ``sample.to(torch.float32)``)."""

    float32 = torch.float64

    def __getattr__(self, name):
        return getattr(torch, name)


@pytest.fixture
def diffusers_float64(monkeypatch):
    monkeypatch.setattr(dpm_module, "torch", _Float64Torch())


def eps_model(x, t):
    return (
        0.3 * x * torch.cos(3 * t)[:, None]
        + 0.2 * torch.sin(5 * t)[:, None]
        + 0.2 * torch.tanh(x.flip(1))
    )


def _scheduler(final, lower_order_final, spacing, order=2):
    d = DPMSolverMultistepScheduler(
        T,
        1e-4,
        0.02,
        "linear",
        solver_order=order,
        prediction_type="epsilon",
        algorithm_type="dpmsolver++",
        solver_type="midpoint",
        lower_order_final=lower_order_final,
        final_sigmas_type=final,
        timestep_spacing=spacing,
    )
    for name in ("betas", "alphas", "alphas_cumprod", "alpha_t", "sigma_t", "lambda_t"):
        setattr(d, name, getattr(d, name).double())
    return d


def _set_timesteps64(d, n, final):
    d.set_timesteps(n)
    ac = d.alphas_cumprod
    sig = ((1 - ac) / ac).sqrt()
    last = torch.zeros(1, dtype=torch.float64) if final == "zero" else sig[:1]
    sigmas = torch.cat([sig[d.timesteps], last])
    assert torch.allclose(d.sigmas.double(), sigmas, rtol=1e-6, atol=0)  # diffusers' own, f32
    d.sigmas = sigmas


def _x(n, seed):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("spacing", ["linspace", "trailing", "leading"])
@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("order", [2, 3])
def test_full_runs_equal_diffusers(diffusers_float64, spacing, final, order):
    for lof in (True, False):
        d = _scheduler(final, lof, spacing, order)
        path = AffinePath(DDPMDiscreteSchedule.from_alphas_cumprod(d.alphas_cumprod))
        field = Field(eps_model, "epsilon", path)
        for n in COUNTS:
            _set_timesteps64(d, n, final)
            ks = d.timesteps
            assert len(ks) == n and (ks >= 0).all()
            x0 = _x(5, n)
            x = x0
            for k in ks:
                t = (1.0 - (k.double() + 1) / T).expand(x.shape[0])
                x = d.step(eps_model(x, t), k, x).prev_sample
            t_end = 1.0 if final == "zero" else 1.0 - 1.0 / T
            grid = torch.cat(
                [1.0 - (ks.double() + 1) / T, torch.tensor([t_end], dtype=torch.float64)]
            )
            out = dpm_solver(field, x0, grid, lower_order_final=lof, order=order)
            assert out.nfe == n
            assert x.dtype == torch.float64
            assert torch.allclose(out.x, x, rtol=0, atol=1e-10), (spacing, final, lof, n, order)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_comparison_can_fail(diffusers_float64):
    # negative control: first order throughout (DDIM) or no lower-order final step differs
    d = _scheduler("sigma_min", True, "linspace")
    field = Field(
        eps_model, "epsilon", AffinePath(DDPMDiscreteSchedule.from_alphas_cumprod(d.alphas_cumprod))
    )
    _set_timesteps64(d, 8, "sigma_min")
    x = x0 = _x(5, 0)
    for k in d.timesteps:
        x = d.step(eps_model(x, (1.0 - (k.double() + 1) / T).expand(5)), k, x).prev_sample
    grid = torch.cat(
        [1.0 - (d.timesteps.double() + 1) / T, torch.tensor([1.0 - 1.0 / T], dtype=torch.float64)]
    )
    assert not torch.allclose(SAMPLERS["ddim"](field, x0, grid).x, x, atol=1e-6)
    assert not torch.allclose(dpm_solver(field, x0, grid, lower_order_final=False).x, x, atol=1e-6)
    assert torch.allclose(dpm_solver(field, x0, grid).x, x, atol=1e-10)
    assert not torch.allclose(dpm_solver(field, x0, grid, order=3).x, x, atol=1e-6)
    with pytest.raises(ValueError, match="order must be 2 or 3"):
        dpm_solver(field, x0, grid, order=4)


def _slopes(schedule, spacing, end, names, counts):
    """-d log(error) / d log(K) against a tight dopri5 solution, for each sampler in names."""
    path = AffinePath(schedule)
    f = Field.from_oracle(MixtureOracle(MIX, path))
    x0 = _x(16, 0)
    ref = SAMPLERS["dopri5"](f, x0, uniform_grid(1, 0.0, end), atol=1e-10, rtol=1e-10).x
    out = {}
    for name in names:
        errs = [
            float(
                (
                    SAMPLERS[name](
                        f, x0, solver_grid(k, path.coefficients, spacing=spacing, stop=end, end=end)
                    ).x
                    - ref
                )
                .norm(dim=1)
                .mean()
            )
            for k in counts
        ]
        out[name] = (-np.polyfit(np.log(counts), np.log(errs), 1)[0], errs)
    return out


@pytest.mark.parametrize(
    "schedule,spacing",
    [(VPSchedule(), "logsnr"), (VPSchedule(), "time"), (LinearSchedule(), "time")],
)
def test_second_and_third_order_with_the_oracle_field(schedule, spacing):
    # K >= 15: no lower-order final step; DDIM on the same grids is the first-order control
    res = _slopes(schedule, spacing, 0.99, ("dpm_solver", "ddim"), [16, 32, 64])
    assert abs(res["dpm_solver"][0] - get_sampler("dpm_solver").order) < 0.3, res
    assert abs(res["ddim"][0] - 1.0) < 0.3, res


def test_3m_is_second_order_with_a_smaller_constant():
    # third-order steps after a first-order start (diffusers'): global order 2, 3-4x below 2M
    res = _slopes(VPSchedule(), "logsnr", 0.99, ("dpm_solver", "dpm_solver_3m"), [16, 32, 64])
    assert abs(res["dpm_solver_3m"][0] - get_sampler("dpm_solver_3m").order) < 0.3, res
    assert all(e3 < 0.4 * e2 for e3, e2 in zip(res["dpm_solver_3m"][1], res["dpm_solver"][1]))


def test_few_steps_to_sigma_zero_beat_ddim():
    # VP path to t = 1 (sigma = 0): the last step is the posterior mean, never a field
    # evaluation at t = 1; at 8 NFE the 2M steps are closer to the exact flow than DDIM
    path = AffinePath(VPSchedule())
    f = Field.from_oracle(MixtureOracle(MIX, path))
    x0 = _x(64, 1)
    ref = SAMPLERS["dopri5"](f, x0, uniform_grid(1, 0.0, 1.0 - 1e-6), atol=1e-10, rtol=1e-10).x
    grid = solver_grid(8, path.coefficients, spacing="logsnr", stop=0.999, end=1.0)
    assert float(grid[-1]) == 1.0 and float(grid[-2]) < 0.999
    errs = {
        name: float((SAMPLERS[name](f, x0, grid).x - ref).norm(dim=1).mean())
        for name in ("dpm_solver", "ddim")
    }
    assert errs["dpm_solver"] < 0.5 * errs["ddim"], errs


def test_solver_grid_spacings():
    path = AffinePath(VPSchedule())
    g = solver_grid(6, path.coefficients, spacing="logsnr", stop=0.999, end=1.0)
    assert g.shape == (7,) and float(g[0]) == 0.0 and float(g[-1]) == 1.0
    c = path.coefficients(torch.cat([g[:-1], torch.tensor([0.999], dtype=torch.float64)]))
    lam = torch.log(c.alpha / c.sigma)
    assert torch.allclose(torch.diff(lam), torch.diff(lam)[:1].expand(6), rtol=1e-9)
    t = solver_grid(4, path.coefficients, spacing="time", stop=0.8, end=1.0)
    assert torch.allclose(t, torch.tensor([0.0, 0.2, 0.4, 0.6, 1.0], dtype=torch.float64))
    # final_step: the last evaluation that fraction of an increment before stop
    t = solver_grid(4, path.coefficients, spacing="time", stop=0.7, end=1.0, final_step=0.5)
    assert torch.allclose(t, torch.tensor([0.0, 0.2, 0.4, 0.6, 1.0], dtype=torch.float64))
    g = solver_grid(3, path.coefficients, spacing="logsnr", stop=0.99, final_step=0.25)
    c = path.coefficients(torch.cat([g[:-1], torch.tensor([0.99], dtype=torch.float64)]))
    dl = torch.diff(torch.log(c.alpha / c.sigma))
    assert torch.allclose(dl[:2], dl[:1].expand(2), rtol=1e-9)
    assert torch.allclose(dl[2], 0.25 * dl[0], rtol=1e-9)
    with pytest.raises(ValueError, match="final_step"):
        solver_grid(4, path.coefficients, final_step=0.0)
    with pytest.raises(ValueError, match="log-SNR"):  # alpha = 0 at t = 0: lambda = -inf
        solver_grid(4, AffinePath(LinearSchedule()).coefficients, spacing="logsnr", stop=0.9)
    with pytest.raises(ValueError, match="spacing"):
        solver_grid(4, path.coefficients, spacing="karras")


def test_api_trajectory_and_bad_grids():
    path = AffinePath(VPSchedule())
    f = Field.from_oracle(MixtureOracle(MIX, path))
    x0 = _x(8, 2)
    grid = solver_grid(5, path.coefficients, stop=0.999)
    out = SAMPLERS["dpm_solver"](f, x0, grid, return_trajectory=True)
    assert out.nfe == 5 and out.trajectory.shape == (6, 8, 2)
    assert torch.equal(out.trajectory[-1], out.x) and torch.equal(out.times, grid)
    spec = get_sampler("dpm_solver")
    assert spec.nfe_per_step == 1 and spec.needs_path and not spec.stochastic
    with pytest.raises(ValueError, match="chained"):
        dpm_solver(f, x0, torch.tensor([[0.0, 0.5], [0.4, 0.9]], dtype=torch.float64))
    with pytest.raises(ValueError, match="path"):
        dpm_solver(lambda x, t: x, x0, uniform_grid(4))
