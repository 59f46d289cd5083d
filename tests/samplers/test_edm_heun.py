"""EDM's Heun sampler and the Karras grid: against diffusers' HeunDiscreteScheduler
(use_karras_sigmas=True), the closed-form Karras levels, and its order with the oracle field.

diffusers runs in float64: its tables are cast up and its module's ``np`` is a proxy whose
``float32`` is float64 (set_timesteps casts the sigmas with ``.astype(np.float32)``); its own
float32 sigmas are checked to agree to float32 precision. diffusers' sample is y = x / alpha
(EDM's variable): it starts from y_0 = x0 / alpha_0 and its model input y / sqrt(s^2 + 1) is x.
The toy model depends on the time through the noise level s only, as diffusers evaluates it
at interpolated timesteps of its own.
"""

import numpy as np
import pytest
import torch
from diffusers import HeunDiscreteScheduler
from diffusers.schedulers import scheduling_heun_discrete as heun_module

from wasserflow.geometry import GaussianMixture, w2
from wasserflow.paths import (
    AffinePath,
    CosineSchedule,
    DDPMDiscreteSchedule,
    LinearSchedule,
    MixtureOracle,
    VESchedule,
    VPSchedule,
)
from wasserflow.samplers import (
    SAMPLERS,
    Field,
    SamplingContext,
    edm_heun,
    get_sampler,
    karras_grid,
    uniform_grid,
)

T = 1000
MIX = GaussianMixture.create(
    [0.3, 0.7],
    [[-2.0, 0.0], [1.5, 1.0]],
    [[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]]],
)


class _Float64Numpy:
    float32 = np.float64

    def __getattr__(self, name):
        return getattr(np, name)


def _g(x, s):
    """A smooth eps-prediction of (x, noise level s): s is a (n,) tensor."""
    u = torch.log(s)[:, None]
    return 0.3 * x * torch.cos(u) + 0.2 * torch.sin(2 * u) + 0.2 * torch.tanh(x.flip(1))


def _x(n, seed):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def heun64(monkeypatch):
    ref = HeunDiscreteScheduler(T, 1e-4, 0.02, "linear", use_karras_sigmas=True)
    monkeypatch.setattr(heun_module, "np", _Float64Numpy())
    d = HeunDiscreteScheduler(T, 1e-4, 0.02, "linear", use_karras_sigmas=True)
    for name in ("betas", "alphas", "alphas_cumprod"):
        setattr(d, name, getattr(d, name).double())
    return d, ref


def _diffusers_run(d, x0, alpha0):
    y = x0 / alpha0
    for k in d.timesteps:
        model_input = d.scale_model_input(y, k)
        sigma = d.sigmas[d.step_index].expand(y.shape[0])
        y = d.step(_g(model_input, sigma), k, y).prev_sample
    return y


def test_equals_diffusers_heun_with_karras_sigmas(heun64):
    d, ref = heun64
    path = AffinePath(DDPMDiscreteSchedule.from_alphas_cumprod(d.alphas_cumprod))

    def eps_model(x, t):
        c = path.coefficients(t)
        return _g(x, c.sigma / c.alpha)

    field = Field(eps_model, "epsilon", path)
    # n = 1 is left out: diffusers' one "linspace" timestep is k = 0, so its only level is s_min
    for n in (2, 3, 5, 10, 25):
        d.set_timesteps(n)
        ref.set_timesteps(n)
        assert d.sigmas.dtype == torch.float64
        assert torch.allclose(ref.sigmas.double(), d.sigmas, rtol=1e-6, atol=0)
        grid = karras_grid(n, path.coefficients, stop=1.0 - 1.0 / T)
        c = path.coefficients(grid)
        levels = torch.cat([d.sigmas[:1], d.sigmas[1::2]])  # diffusers repeats inner levels
        assert torch.allclose(c.sigma / c.alpha, levels, rtol=1e-12, atol=0), n
        x0 = _x(5, n)
        y = _diffusers_run(d, x0, c.alpha[0])
        out = edm_heun(field, x0, grid)
        assert out.nfe == len(d.timesteps) == 2 * n - 1
        # diffusers' D = y - s eps, (y - D) / s loses ~1e-16 |y| / s_min: ~1e-10 here
        assert torch.allclose(out.x, y, rtol=0, atol=1e-9), n
        if n > 2:  # negative control: another rho moves the inner levels
            other = karras_grid(n, path.coefficients, rho=6.0, stop=1 - 1 / T)
            assert not torch.allclose(edm_heun(field, x0, other).x, y, atol=1e-4), n


def test_karras_grid_closed_form():
    path = AffinePath(VPSchedule())
    g = karras_grid(6, path.coefficients, sigma_min=0.01, sigma_max=50.0, rho=7.0)
    c = path.coefficients(g)
    i = torch.arange(6, dtype=torch.float64)
    want = (50.0 ** (1 / 7) + i / 5 * (0.01 ** (1 / 7) - 50.0 ** (1 / 7))) ** 7
    assert g.shape == (7,) and float(g[-1]) == 1.0
    assert torch.allclose(c.sigma[:-1] / c.alpha[:-1], want, rtol=1e-12)
    # defaults: the path's own levels at t = 0 and at stop, hit exactly
    g = karras_grid(4, path.coefficients, stop=0.999)
    assert float(g[0]) == 0.0 and float(g[-2]) == 0.999 and float(g[-1]) == 1.0
    # rho = 1: uniform in s; the linear path needs a finite sigma_max (s = inf at t = 0)
    lin = AffinePath(LinearSchedule())
    g = karras_grid(5, lin.coefficients, sigma_min=0.5, sigma_max=4.5, rho=1.0)
    c = lin.coefficients(g[:-1])
    assert torch.allclose(
        c.sigma / c.alpha, torch.linspace(4.5, 0.5, 5, dtype=torch.float64), rtol=1e-12
    )
    assert float(g[0]) == pytest.approx(1 / 5.5, rel=1e-12)
    with pytest.raises(ValueError, match="sigma_max"):
        karras_grid(5, lin.coefficients, sigma_min=0.01)
    with pytest.raises(ValueError, match="range"):
        karras_grid(5, path.coefficients, sigma_min=0.01, sigma_max=1e6)
    # VE: no s = 0 on the path, so N + 1 levels down to sigma_min at t = 1
    ve = AffinePath(VESchedule(0.05, 10.0))
    g = karras_grid(3, ve.coefficients)
    assert g.shape == (4,) and float(g[0]) == 0.0 and float(g[-1]) == 1.0


def _order(schedule, counts):
    path = AffinePath(schedule)
    f = Field.from_oracle(MixtureOracle(MIX, path))
    x0 = _x(8, 0)
    grids = [
        karras_grid(k, path.coefficients, sigma_min=0.02, sigma_max=20.0)[:-1] for k in counts
    ]  # without the last (Euler) step to s = 0, the same for all k
    ref = SAMPLERS["dopri5"](f, x0, grids[0][[0, -1]], atol=1e-10, rtol=1e-10).x
    errs = []
    for k, g in zip(counts, grids):
        out = edm_heun(f, x0, g)
        assert out.nfe == 2 * (k - 1)
        errs.append(float((out.x - ref).norm(dim=1).mean()))
    return -np.polyfit(np.log(counts), np.log(errs), 1)[0], errs


@pytest.mark.parametrize("schedule", [VPSchedule(), LinearSchedule()])
def test_second_order_with_the_oracle_field(schedule):
    slope, errs = _order(schedule, [16, 32, 64])
    assert abs(slope - get_sampler("edm_heun").order) < 0.3, (slope, errs)


def test_plans_for_ddpm_and_flow_models():
    spec = get_sampler("edm_heun")
    path = AffinePath(DDPMDiscreteSchedule())
    ctx = SamplingContext(path=path, t_last_trained=1 - 1 / T, num_train_timesteps=T)
    plan = spec.make_plan(9, ctx)
    assert torch.equal(plan.grid, karras_grid(5, path.coefficients, stop=1 - 1 / T))
    assert plan.denoise_at is None and plan.options == {}
    # flow matching on the linear path: start at EDM's s_max = 80, stop at s_min = 0.002
    lin = AffinePath(LinearSchedule())
    plan = spec.make_plan(8, SamplingContext(path=lin), {"rho": 5.0})
    assert plan.grid.shape == (5,) and plan.options == {}
    assert float(plan.grid[0]) == pytest.approx(1 / 81, rel=1e-12)
    assert float(plan.grid[-2]) == pytest.approx(1 / 1.002, rel=1e-12)
    # the cosine schedule's alpha_0 ~ 1e-17 (s ~ 1e16) is treated alike
    cos = AffinePath(CosineSchedule())
    c = cos.coefficients(spec.make_plan(8, SamplingContext(path=cos, t_last_trained=0.999)).grid)
    assert float(c.sigma[0] / c.alpha[0]) == pytest.approx(80.0, rel=1e-10)
    f = Field.from_oracle(MixtureOracle(MIX, lin))
    out = edm_heun(f, _x(8, 1), plan.grid, return_trajectory=True)
    assert out.nfe == 7 and out.trajectory.shape == (5, 8, 2)
    assert torch.equal(out.times, plan.grid) and torch.equal(out.trajectory[-1], out.x)


def test_churn_draws_from_the_generator_and_reaches_the_target():
    path = AffinePath(VPSchedule())
    f = Field.from_oracle(MixtureOracle(MIX, path))
    grid = karras_grid(24, path.coefficients, stop=0.999)  # churn needs more than ~12 steps
    x0 = path.sample_reference((400, 2), torch.Generator().manual_seed(1), dtype=torch.float64)
    churn = {"S_churn": 10.0, "S_tmin": 0.05, "S_tmax": 50.0}

    def run(seed, **opts):
        return edm_heun(f, x0, grid, generator=torch.Generator().manual_seed(seed), **opts)

    a, b, c = run(2, **churn), run(2, **churn), run(3, **churn)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x) and a.nfe == 47
    # outside [S_tmin, S_tmax] nothing changes: the deterministic sampler
    assert torch.equal(run(2, S_churn=10.0, S_tmax=1e-3).x, run(2).x)
    g = torch.Generator().manual_seed(123)
    floor = sum(w2(MIX.sample(400, g), MIX.sample(400, g)).cost for _ in range(4)) / 4
    assert w2(a.x, MIX.sample(400, g)).cost < 2.0 * floor
    assert get_sampler("edm_heun").stochastic  # it may draw noise (as ddim with eta > 0)


def test_refuses_grids_it_cannot_use():
    f = Field.from_oracle(MixtureOracle(MIX, AffinePath(LinearSchedule())))
    x0 = _x(4, 0)
    with pytest.raises(ValueError, match="finite noise levels"):
        edm_heun(f, x0, uniform_grid(4))  # alpha = 0 at t = 0 on the linear path
    with pytest.raises(ValueError, match="chained"):
        edm_heun(f, x0, torch.tensor([[0.1, 0.5], [0.4, 0.9]], dtype=torch.float64))
    with pytest.raises(ValueError, match="churn"):
        edm_heun(f, x0, uniform_grid(4, 0.1, 1.0), S_churn=-1.0)
    with pytest.raises(ValueError, match="path"):
        edm_heun(lambda x, t: x, x0, uniform_grid(4, 0.1, 1.0))
    assert get_sampler("edm_heun").nfe_per_step == 2
