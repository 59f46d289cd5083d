"""Clock conversions and schedules against closed forms, diffusers' tables and autograd."""

import math

import pytest
import torch
from diffusers import DDPMScheduler

from wasserflow.paths import (
    CosineSchedule,
    DDPMDiscreteSchedule,
    LinearSchedule,
    VESchedule,
    VPSchedule,
    ddpm_index_to_time,
    from_diffusion_time,
    get_schedule,
    time_to_ddpm_index,
    to_diffusion_time,
    ve_sigma_max_from_data,
)

ALL = [
    LinearSchedule(),
    VPSchedule(),
    CosineSchedule(),
    DDPMDiscreteSchedule(),
    DDPMDiscreteSchedule(kind="cosine"),
    VESchedule(0.01, 50.0),
]


def test_clock_round_trips_and_anchors():
    k = torch.arange(-1, 1000)
    t = ddpm_index_to_time(k, 1000)
    assert float(t[0]) == 1.0 and float(t[-1]) == 0.0  # k = -1 data, k = T - 1 noise
    assert torch.equal(time_to_ddpm_index(t, 1000), k)
    assert float(ddpm_index_to_time(0, 1000)) == pytest.approx(1 - 1 / 1000)
    s = torch.rand(50, dtype=torch.float64)
    assert torch.allclose(to_diffusion_time(from_diffusion_time(s)), s, atol=0, rtol=0)
    assert float(to_diffusion_time(0.25)) == 0.75
    frac = time_to_ddpm_index(torch.tensor(0.5004), 1000, exact=False)
    assert float(frac) == pytest.approx(1000 * 0.4996 - 1)


def test_clock_bad_inputs():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_diffusion_time(1.5)
    with pytest.raises(ValueError, match="lattice"):
        time_to_ddpm_index(0.5004, 1000)
    with pytest.raises(ValueError, match="k must lie"):
        ddpm_index_to_time(1000, 1000)
    with pytest.raises(ValueError, match="positive integer"):
        ddpm_index_to_time(3, 0)


@pytest.mark.parametrize("sched", ALL, ids=lambda s: type(s).__name__ + getattr(s, "kind", ""))
def test_derivatives_match_autograd(sched):
    # away from the grid points of the discrete table (piecewise-linear in t)
    t = torch.tensor([0.0371, 0.2049, 0.5013, 0.7777, 0.9123], dtype=torch.float64)
    t.requires_grad_(True)
    out = sched(t)
    # (+ 0 t keeps constant coefficients, e.g. VE's alpha = 1, in the graph)
    da = torch.autograd.grad((out.alpha + 0 * t).sum(), t, retain_graph=True)[0]
    ds = torch.autograd.grad((out.sigma + 0 * t).sum(), t)[0]
    assert torch.allclose(out.d_alpha, da, rtol=1e-9, atol=1e-12)
    assert torch.allclose(out.d_sigma, ds, rtol=1e-9, atol=1e-12)


def test_endpoints_and_reference():
    lin = LinearSchedule()(torch.tensor([0.0, 1.0]))
    assert lin.alpha.tolist() == [0.0, 1.0] and lin.sigma.tolist() == [1.0, 0.0]
    for s in (VPSchedule(), CosineSchedule(), DDPMDiscreteSchedule()):
        o = s(torch.tensor([1.0], dtype=torch.float64))
        assert float(o.alpha) == pytest.approx(1.0) and float(o.sigma) == pytest.approx(0.0)
        assert s.reference_std == 1.0
    ve = VESchedule(0.01, 80.0)
    o = ve(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert o.sigma.tolist() == pytest.approx([80.0, 0.01]) and o.alpha.tolist() == [1.0, 1.0]
    assert ve.reference_std == 80.0
    # cosine with zero offset is the trigonometric interpolant
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    c = CosineSchedule(offset=0.0)(t)
    assert torch.allclose(c.alpha, torch.sin(math.pi * t / 2), atol=1e-12)
    assert torch.allclose(c.sigma, torch.cos(math.pi * t / 2), atol=1e-7)


def test_vp_closed_form():
    # abar(s) = exp(-(0.1 s + 9.95 s^2)), Song et al. 2021 appendix B
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    s = 1 - t
    abar = torch.exp(-(0.1 * s + 0.5 * 19.9 * s**2))
    o = VPSchedule()(t)
    assert torch.allclose(o.alpha**2, abar, rtol=1e-12)
    assert torch.allclose(o.alpha**2 + o.sigma**2, torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("kind,beta", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_ddpm_table_equals_diffusers(kind, beta):
    d = DDPMScheduler(1000, 1e-4, 0.02, beta, prediction_type="epsilon", clip_sample=False)
    sched = DDPMDiscreteSchedule(kind=kind)
    assert torch.allclose(sched.alphas_cumprod, d.alphas_cumprod.double(), rtol=2e-6, atol=1e-9)
    # on the lattice t_k the schedule returns the table itself
    k = torch.arange(1000)
    o = sched(ddpm_index_to_time(k))
    assert torch.allclose(o.alpha**2, sched.alphas_cumprod, rtol=1e-12)
    if kind == "linear":  # the continuous VP schedule is the T -> infinity limit of the table
        vp = VPSchedule()(ddpm_index_to_time(k)).alpha ** 2
        assert float((vp - sched.alphas_cumprod).abs().max()) < 5e-3


def test_ve_sigma_max_from_data():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    assert ve_sigma_max_from_data(x) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="two data points"):
        ve_sigma_max_from_data(x[:1])


def test_schedule_bad_inputs():
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESchedule(1.0, 0.5)
    with pytest.raises(ValueError, match="beta_min"):
        VPSchedule(5.0, 1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        get_schedule("nope")
    with pytest.raises(ValueError, match="kind"):
        DDPMDiscreteSchedule(kind="quadratic")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LinearSchedule()(torch.tensor([-0.1]))
    assert isinstance(get_schedule("ve", sigma_max=10.0), VESchedule)


def test_logsnr_time_input():
    """VP: lambda = log alpha - log sigma with Song et al.'s (2021, eq. 33) closed form
    log alpha = -(beta_max - beta_min) s^2 / 4 - beta_min s / 2 on s = 1 - t; linear path:
    lambda = logit(t), clamped at +-20 where alpha or sigma vanishes."""
    from wasserflow.paths import AffinePath

    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 0.999], dtype=torch.float64)
    s = 1.0 - t
    log_alpha = -(20.0 - 0.1) * s**2 / 4 - 0.1 * s / 2
    lam = log_alpha - 0.5 * torch.log1p(-torch.exp(2 * log_alpha))
    vp = AffinePath(get_schedule("vp"))
    assert torch.allclose(vp.network_time(t, "logsnr"), lam / 5, rtol=1e-12, atol=0)
    assert torch.equal(vp.network_time(t, "t"), t)
    lin = AffinePath(get_schedule("linear"))
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.allclose(
        lin.network_time(t, "logsnr"), torch.tensor([-20.0, math.log(1 / 3), 0.0, 20.0]) / 5
    )
    assert lin.network_time(t, "logsnr").dtype == torch.float32
    with pytest.raises(ValueError, match="time_input 'sigma'"):
        lin.network_time(t, "sigma")
