"""The denoising-step / JKO-step bridge against closed forms: the VP time change against the
integral of beta (Song et al. 2021), one-step W2s against hand-derived 1-D Gaussian formulas
(OU marginals, the scalar JKO step, DDIM with the Tweedie posterior), and their orders in h."""

import math

import pytest
import torch

from wasserflow.geometry import Gaussian, ou_gaussian, standard_gaussian_potential
from wasserflow.geometry.measures import GaussianMixture
from wasserflow.metrics.jko_bridge import (
    gaussian_jko_bridge,
    jko_bridge,
    uniform_tau_grid,
    vp_time_change,
)
from wasserflow.paths.affine import AffinePath
from wasserflow.paths.oracle import MixtureOracle
from wasserflow.paths.schedules import LinearSchedule, VPSchedule
from wasserflow.samplers.field import Field

PATH = AffinePath(VPSchedule(beta_min=0.1, beta_max=20.0))
MEAN = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)


def test_time_change_is_half_integral_of_beta():
    s = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    expected = 0.5 * (0.1 * s + 0.5 * (20.0 - 0.1) * s**2)  # 1/2 int_0^s beta_min + u (bmax - bmin)
    assert torch.allclose(vp_time_change(PATH, s), expected, atol=1e-12)


def test_vp_marginals_are_the_ou_flow():
    """rho_s of the VP path = OU flow toward N(0, I) at time tau(s) (reference: ou_gaussian)."""
    from wasserflow.paths.oracle import gaussian_oracle

    oracle = gaussian_oracle(MEAN, COV, PATH)
    for s in (0.1, 0.3, 0.7):
        g = oracle.marginal(1.0 - s)
        ou = ou_gaussian(
            Gaussian(MEAN, COV), standard_gaussian_potential(2), float(vp_time_change(PATH, s))
        )
        assert torch.allclose(g.means[0], ou.mean, atol=1e-10)
        assert torch.allclose(g.covs[0], ou.cov, atol=1e-10)


def test_uniform_tau_grid_has_constant_h():
    r = gaussian_jko_bridge(MEAN, COV, PATH, uniform_tau_grid(PATH, 0.2, 0.5, 6))
    assert torch.allclose(r.h, r.h[0].expand(6), rtol=1e-6)
    assert float(r.s_from[0]) == 0.2 and float(r.s_to[-1]) == pytest.approx(0.5)


def test_one_step_w2_against_1d_closed_forms():
    m, c = 0.8, 0.3  # data N(m, c) in 1-D
    s_a, s_b = 0.3, 0.35
    r = gaussian_jko_bridge(torch.tensor([m]), torch.tensor([[c]]), PATH, [s_a, s_b])
    tau = lambda s: 0.5 * (0.1 * s + 0.5 * 19.9 * s**2)  # noqa: E731
    h = tau(s_b) - tau(s_a)
    al_a, al_b = math.exp(-tau(s_a)), math.exp(-tau(s_b))
    sg_a, sg_b = math.sqrt(1 - al_a**2), math.sqrt(1 - al_b**2)
    mu_a, v_a = al_a * m, al_a**2 * c + sg_a**2
    mu_b, v_b = al_b * m, al_b**2 * c + sg_b**2
    # scalar JKO toward N(0, 1): T x = a x + b minimises a^2 v/2 - log a + (a-1)^2 v/(2h) (+ mean)
    a = (v_a / h + math.sqrt(v_a**2 / h**2 + 4 * v_a * (1 + 1 / h))) / (2 * v_a * (1 + 1 / h))
    w2_jko = math.hypot(mu_a / (1 + h) - mu_b, a * math.sqrt(v_a) - math.sqrt(v_b))
    # DDIM with the exact (Tweedie) x1: slope (alpha_a alpha_b c + sigma_a sigma_b) / v_b, mean exact
    slope = (al_a * al_b * c + sg_a * sg_b) / v_b
    w2_ddim = abs(slope * math.sqrt(v_b) - math.sqrt(v_a))
    assert float(r.h[0]) == pytest.approx(h, rel=1e-10)
    assert float(r.w2_jko[0]) == pytest.approx(w2_jko, rel=1e-6, abs=1e-12)
    assert float(r.w2_denoise[0]) == pytest.approx(w2_ddim, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_orders_in_h(sampler):
    """Per step O(h^2); accumulated over a fixed stretch of gradient-flow time O(h)."""
    runs = [
        gaussian_jko_bridge(MEAN, COV, PATH, uniform_tau_grid(PATH, 0.2, 0.4, k), sampler)
        for k in (8, 16, 32)
    ]
    for coarse, fine in zip(runs, runs[1:], strict=False):
        assert float(coarse.h[0] / fine.h[0]) == pytest.approx(2.0, rel=1e-3)
        for name in ("w2_jko", "w2_denoise", "w2_roundtrip"):
            one_step = float(getattr(coarse, name).max() / getattr(fine, name).max())
            total = float(getattr(coarse, name).sum() / getattr(fine, name).sum())
            assert 3.0 < one_step < 4.6, (name, one_step)
            assert 1.7 < total < 2.3, (name, total)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_particle_bridge_tracks_closed_form(sampler):
    """Gaussian data, one large step (h = 1.2): the particle estimates (exact OT on n = 800
    samples, affine JKO maps) agree with the closed form up to the sampling error (~0.07)."""
    from wasserflow.paths.oracle import gaussian_oracle

    m, c = torch.tensor([0.8]), torch.tensor([[0.3]])
    oracle = gaussian_oracle(m, c, PATH)
    data = oracle.mixture.sample(800, generator=torch.Generator().manual_seed(0))
    ref = gaussian_jko_bridge(m, c, PATH, [0.1, 0.5], sampler)
    r = jko_bridge(
        Field.from_oracle(oracle),
        data,
        [0.1, 0.5],
        sampler,
        n_particles=800,
        n_centers=0,
        generator=torch.Generator().manual_seed(1),
    )
    assert r.method == "particles" and float(r.h[0]) == pytest.approx(float(ref.h[0]))
    assert 0 < float(r.w2_floor[0]) < 0.12
    for name in ("w2_jko", "w2_denoise", "w2_roundtrip"):
        exact, est = float(getattr(ref, name)[0]), float(getattr(r, name)[0])
        assert exact > 0.14, name  # the step's error is above the sampling floor
        assert abs(est - exact) < 0.12, (name, est, exact)


def test_particle_bridge_mixture_2d():
    mix = GaussianMixture.create([0.5, 0.5], torch.tensor([[-1.0, 0.0], [1.0, 0.5]]), 0.1)
    data = mix.sample(150, generator=torch.Generator().manual_seed(0))
    field = Field.from_oracle(MixtureOracle(mix, PATH))
    r = jko_bridge(
        field,
        data,
        [0.3, 0.32],
        "ddim",
        n_particles=150,
        n_centers=4,
        generator=torch.Generator().manual_seed(1),
    )
    assert r.w2_jko.shape == (1,) and torch.isfinite(r.w2_roundtrip).all()
    # h ~ 0.06: the one-step error (~1e-3) is below the n = 150 sampling floor
    for v in (r.w2_jko, r.w2_denoise, r.w2_roundtrip):
        assert float(v[0]) < 2 * float(r.w2_floor[0])


def test_bad_input():
    with pytest.raises(ValueError, match="variance-preserving"):
        vp_time_change(AffinePath(LinearSchedule()), 0.5)
    with pytest.raises(ValueError, match="increasing"):
        gaussian_jko_bridge(MEAN, COV, PATH, [0.4, 0.2])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        gaussian_jko_bridge(MEAN, COV, PATH, [0.0, 0.2])
    with pytest.raises(ValueError, match="sampler"):
        gaussian_jko_bridge(MEAN, COV, PATH, [0.1, 0.2], sampler="euler")
