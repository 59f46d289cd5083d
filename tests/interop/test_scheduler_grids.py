"""scheduler_grid against diffusers' schedulers' own ``timesteps`` / ``sigmas`` after
set_timesteps, and the abar table against diffusers' and wasserflow's own (independent) one."""

import math

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)

from wasserflow.errors import InputError
from wasserflow.interop import DiffusersClock, alphas_cumprod, scheduler_grid
from wasserflow.paths import ddpm_alphas_cumprod, time_to_ddpm_index

COUNTS = [1, 2, 3, 5, 8, 10, 20, 25, 50, 61, 100]
SPACINGS = ["linspace", "leading", "trailing"]
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
BETAS = [
    {"beta_schedule": "linear"},
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    {"beta_schedule": "squaredcos_cap_v2"},
]


@pytest.mark.parametrize("betas", BETAS, ids=lambda b: b["beta_schedule"])
@pytest.mark.parametrize("T", [1000, 50])
def test_alphas_cumprod_is_diffusers_table_bit_for_bit(betas, T):
    d = DDPMScheduler(num_train_timesteps=T, **betas)
    cfg = {"num_train_timesteps": T, **betas}
    assert torch.equal(alphas_cumprod(cfg), d.alphas_cumprod)
    # float32 rounding (1 - 0.999 at the cosine's capped end: 1.3e-5 relative)
    exact = alphas_cumprod(cfg, torch.float64)
    assert torch.allclose(exact, d.alphas_cumprod.double(), rtol=1e-4, atol=0)


def test_float64_table_equals_wasserflows_own_ddpm_table():
    for kind, name in (("linear", "linear"), ("cosine", "squaredcos_cap_v2")):
        ours = ddpm_alphas_cumprod(1000, kind)
        cfg = {"num_train_timesteps": 1000, "beta_schedule": name}
        assert torch.allclose(alphas_cumprod(cfg, torch.float64), ours, rtol=1e-12, atol=0)


def test_trained_betas_and_refusals():
    betas = np.linspace(1e-3, 0.05, 30).tolist()
    d = DDPMScheduler(num_train_timesteps=30, trained_betas=betas)
    cfg = {"num_train_timesteps": 30, "trained_betas": betas}
    assert torch.equal(alphas_cumprod(cfg), d.alphas_cumprod)
    with pytest.raises(InputError, match="beta_schedule 'sigmoid' is not supported"):
        alphas_cumprod({"beta_schedule": "sigmoid"})
    with pytest.raises(InputError, match="zero terminal"):
        alphas_cumprod({"rescale_betas_zero_snr": True})
    with pytest.raises(InputError, match="trained_betas has 30 entries"):
        alphas_cumprod({"num_train_timesteps": 40, "trained_betas": betas})


def test_timestep_map_is_the_integer_step_on_the_grid_and_diffusers_sigma_to_t_between():
    d = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    clock = DiffusersClock.from_config(d.config)
    T = 1000
    ks = torch.tensor([0, 1, 2, 10, 333, 500, 998, 999])
    assert torch.equal(clock.timestep(clock.time_of_step(ks)), ks.double())
    assert torch.equal(time_to_ddpm_index(clock.time_of_step(ks), T), ks)
    # between steps: the timestep of the noise level s(t), as diffusers' _sigma_to_t
    t = torch.tensor([0.0013, 0.25, 0.5004, 0.77777, 0.9991])
    c = clock.path.coefficients(t)
    s = (c.sigma / c.alpha).numpy()
    log_sigmas = np.log(np.array(((1 - d.alphas_cumprod) / d.alphas_cumprod) ** 0.5))
    theirs = np.array([d._sigma_to_t(v, log_sigmas) for v in s])
    assert np.allclose(clock.timestep(t).numpy(), theirs, rtol=0, atol=1e-3)
    assert not np.allclose(clock.timestep(t).numpy(), T * (1 - t.numpy()) - 1, atol=1e-3)


def _ddim(spacing):
    return DDIMScheduler(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_ddim_and_ddpm_timesteps(spacing):
    for cls, sampler in ((DDIMScheduler, "ddim"), (DDPMScheduler, "ddpm")):
        d = cls(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
        for n in COUNTS:
            d.set_timesteps(n)
            g = scheduler_grid(d, n)
            assert g.sampler == sampler and g.sigmas is None
            assert torch.equal(g.timesteps, d.timesteps), (cls, n)
            ks = d.timesteps[d.timesteps >= 0]
            assert torch.equal(time_to_ddpm_index(g.grid[:, 0], 1000), ks)


def _set(d, n):
    d.set_timesteps(n)
    return d


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("final", ["zero", "sigma_min"])
def test_dpm_solver_and_unipc_timesteps_and_sigmas(spacing, final):
    for cls, sampler in (
        (DPMSolverMultistepScheduler, "dpm_solver"),
        (UniPCMultistepScheduler, "unipc"),
    ):
        for order in (2, 3):
            d = cls(
                timestep_spacing=spacing,
                final_sigmas_type=final,
                solver_order=order,
                steps_offset=1 if spacing == "leading" else 0,
            )
            for n in COUNTS:
                _set(d, n)
                g = scheduler_grid(d, n)
                assert g.sampler == sampler and g.options["order"] == order
                assert torch.equal(g.timesteps, d.timesteps), (cls, spacing, n)
                assert torch.equal(g.sigmas, d.sigmas), (cls, spacing, n)
                # the grid's times have the scheduler's noise levels (without the spurious
                # trailing timestep -1 of diffusers 0.42.1, see samplers/grids.py)
                keep = torch.cat([d.timesteps >= 0, torch.tensor([True])])
                c = DiffusersClock.from_config(d.config).path.coefficients(g.grid)
                levels = (c.sigma / c.alpha).float()
                assert torch.allclose(levels, d.sigmas[keep], rtol=1e-6, atol=0)


def test_dpm_solver_lambda_min_clipped_on_the_cosine_schedule():
    d = DPMSolverMultistepScheduler(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1)
    for n in (5, 20):
        _set(d, n)
        g = scheduler_grid(d, n)
        assert torch.equal(g.timesteps, d.timesteps) and torch.equal(g.sigmas, d.sigmas)
        assert int(d.timesteps[0]) < 999  # the clipping took effect


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("betas", BETAS, ids=lambda b: b["beta_schedule"])
def test_euler_and_heun_karras_timesteps_and_sigmas(spacing, betas):
    for cls in (EulerDiscreteScheduler, HeunDiscreteScheduler):
        d = cls(use_karras_sigmas=True, timestep_spacing=spacing, **betas)
        clock = DiffusersClock.from_config(d.config)
        for n in (1, 4, 25):
            _set(d, n)
            g = scheduler_grid(d, n)
            assert g.sampler == ("ddim" if cls is EulerDiscreteScheduler else "edm_heun")
            assert g.timesteps.shape == d.timesteps.shape
            assert torch.allclose(g.timesteps, d.timesteps, rtol=1e-6, atol=1e-4), (cls, n)
            assert torch.allclose(g.sigmas, d.sigmas, rtol=1e-6, atol=0), (cls, n)
            # the clock grid has the distinct levels, ends at s = 0 (t = 1), and its
            # model timesteps are the scheduler's
            levels = torch.unique_consecutive(d.sigmas.double())
            c = clock.path.coefficients(g.grid[:-1])
            assert torch.allclose(c.sigma / c.alpha, levels[:-1], rtol=1e-6, atol=0)
            assert float(g.grid[-1]) == 1.0
            steps = torch.unique_consecutive(d.timesteps.double())
            assert torch.allclose(clock.timestep(g.grid[:-1]), steps, rtol=0, atol=1e-3)


def test_euler_final_sigma_min_and_explicit_sigma_range():
    d = EulerDiscreteScheduler(
        use_karras_sigmas=True, final_sigmas_type="sigma_min", sigma_min=0.1, sigma_max=10.0
    )
    _set(d, 6)
    g = scheduler_grid(d, 6)
    assert torch.allclose(g.sigmas, d.sigmas, rtol=1e-6) and float(d.sigmas[0]) == 10.0
    assert math.isclose(float(g.grid[-1]), 1 - 1 / 1000, rel_tol=0, abs_tol=1e-9)


@pytest.mark.parametrize(
    "name,config,match",
    [
        ("euler", {}, "use_karras_sigmas=True only"),
        ("dpm_solver", {"use_karras_sigmas": True}, "use_karras_sigmas=True takes steps"),
        ("dpm_solver", {"algorithm_type": "dpmsolver"}, "DPM-Solver\\+\\+"),
        ("unipc", {"disable_corrector": [0]}, "corrector"),
        ("unipc", {"solver_type": "bh1"}, "bh2"),
        ("LMSDiscreteScheduler", {}, "not supported"),
        ("ddim", {"timestep_spacing": "bogus"}, "spacing"),
    ],
)
def test_settings_no_sampler_reproduces_are_refused(name, config, match):
    with pytest.raises(InputError, match=match):
        scheduler_grid(name, 10, config)


def test_step_count_is_checked():
    with pytest.raises(InputError, match=r"integer in \[1, 1000\]"):
        scheduler_grid("ddim", 0)
