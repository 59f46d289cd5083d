"""Sampler API: registry, parametrisation-independence, trajectories, bad inputs."""

import math

import pytest
import torch

from wasserflow.geometry import GaussianMixture, trajectory_action, trajectory_geometry
from wasserflow.paths import (
    AffinePath,
    GaussianGeodesicOracle,
    LinearSchedule,
    MixtureOracle,
    VPSchedule,
    gaussian_oracle,
    reflow_coupling,
)
from wasserflow.samplers import (
    SAMPLERS,
    Field,
    ddim,
    diffusers_steps,
    euler_maruyama,
    get_sampler,
    rk4,
    uniform_grid,
)

MIX = GaussianMixture.create([0.5, 0.5], [[-1.5, 0.0], [1.5, 0.5]], 0.4)


def _x0(n=16, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_registry():
    assert set(SAMPLERS) >= {
        "euler",
        "heun",
        "midpoint",
        "rk4",
        "dopri5",
        "ddpm",
        "ddim",
        "dpm_solver",
        "euler_maruyama",
        "predictor_corrector",
        "annealed_langevin",
        "energy_langevin",
    }
    assert get_sampler("rk4").order == 4 and not get_sampler("rk4").stochastic
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("dpm++")


def test_every_parametrisation_gives_the_same_samples():
    path = AffinePath(VPSchedule())
    oracle = MixtureOracle(MIX, path)
    x0, grid = _x0(), uniform_grid(30, 0.0, 0.999)
    fields = [
        Field(oracle.velocity, "velocity", path),
        Field(oracle.epsilon, "epsilon", path),
        Field(oracle.posterior_x1, "x1", path),
        Field(oracle.score, "score", path),
    ]
    for sampler in ("ddim", "heun", "dpm_solver"):
        outs = [SAMPLERS[sampler](f, x0, grid).x for f in fields]
        for o in outs[1:]:
            assert torch.allclose(o, outs[0], atol=1e-8), sampler


def test_ddim_is_first_order_for_the_probability_flow_ode():
    path = AffinePath(VPSchedule())
    f = Field.from_oracle(MixtureOracle(MIX, path))
    x0, end = _x0(), 0.99
    ref = SAMPLERS["dopri5"](f, x0, uniform_grid(1, 0.0, end), atol=1e-10, rtol=1e-10).x
    e = [
        float((ddim(f, x0, uniform_grid(k, 0.0, end)).x - ref).norm(dim=1).mean())
        for k in (20, 40, 80)
    ]
    assert 1.6 < e[0] / e[1] < 2.5 and 1.6 < e[1] / e[2] < 2.5, e


def test_trajectories_feed_path_geometry():
    # the OT geodesic oracle has zero geodesic gap; I-CFM between N(0,1) and N(0,4) has
    # action int_0^1 (4t - (1-t))^2 / ((1-t)^2 + 4t^2) dt = 1.858 (docs/design.md section 3)
    m, S = torch.tensor([1.0, 2.0]), torch.tensor([[2.0, 0.3], [0.3, 0.5]])
    geo = GaussianGeodesicOracle(m, S)
    out = rk4(geo.velocity, _x0(64), uniform_grid(16), return_trajectory=True)
    assert out.trajectory.shape == (17, 64, 2) and out.times.shape == (17,)
    pg = trajectory_geometry(out.trajectory, out.times)
    assert pg.geodesic_gap < 1e-8 * pg.action

    p = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
    x0 = (math.sqrt(2) * torch.erfinv(2 * p - 1))[:, None]  # N(0, 1) quantiles
    oracle = gaussian_oracle(torch.zeros(1), torch.tensor([[4.0]]), AffinePath(LinearSchedule()))
    traj = rk4(oracle.velocity, x0, uniform_grid(64), return_trajectory=True)
    integrand = lambda t: (4 * t - (1 - t)) ** 2 / ((1 - t) ** 2 + 4 * t**2)  # noqa: E731
    ts = torch.linspace(0, 1, 20001, dtype=torch.float64)
    exact = float(torch.trapezoid(integrand(ts), ts))
    assert exact == pytest.approx(1.858, abs=1e-3)
    assert trajectory_action(traj.trajectory, traj.times) == pytest.approx(exact, rel=3e-3)


def test_ode_runs_backwards_and_reflow_uses_samplers():
    f = Field.from_oracle(MixtureOracle(MIX, AffinePath(LinearSchedule())))
    x0 = _x0()
    x1 = rk4(f, x0, uniform_grid(40)).x
    back = rk4(f, x1, uniform_grid(40, 1.0, 0.0)).x
    assert torch.allclose(back, x0, atol=1e-5)
    pairs = reflow_coupling(x0, lambda z: rk4(f, z, uniform_grid(40)).x)
    assert torch.equal(pairs.x1, x1)


def test_stochastic_samplers_are_reproducible_from_the_generator():
    path = AffinePath(VPSchedule())
    f = Field.from_oracle(MixtureOracle(MIX, path))
    a = euler_maruyama(f, _x0(), uniform_grid(10), generator=torch.Generator().manual_seed(4))
    b = euler_maruyama(f, _x0(), uniform_grid(10), generator=torch.Generator().manual_seed(4))
    c = euler_maruyama(f, _x0(), uniform_grid(10), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert a.nfe == 10 and a.trajectory is None and a.times.shape == (11,)


def test_bad_inputs():
    f = Field.from_oracle(MixtureOracle(MIX, AffinePath(LinearSchedule())))
    x0 = _x0()
    with pytest.raises(ValueError, match="strictly"):
        rk4(f, x0, torch.tensor([0.0, 0.5, 0.5, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rk4(f, x0, torch.tensor([0.0, 1.5]))
    with pytest.raises(ValueError, match="increasing"):
        ddim(f, x0, uniform_grid(4, 1.0, 0.0))
    with pytest.raises(ValueError, match="path"):
        ddim(lambda x, t: x, x0, uniform_grid(4))
    with pytest.raises(ValueError, match="path"):
        Field(lambda x, t: x, "epsilon")
    with pytest.raises(ValueError, match="unknown prediction"):
        Field(lambda x, t: x, "noise", AffinePath(LinearSchedule()))
    with pytest.raises(ValueError, match="alpha_t = 0"):
        euler_maruyama(f, x0, uniform_grid(4))
    with pytest.raises(ValueError, match="sigma_t > 0"):
        SAMPLERS["annealed_langevin"](f, x0, uniform_grid(4))
    with pytest.raises(ValueError, match="n_steps"):
        uniform_grid(0)
    with pytest.raises(ValueError, match="spacing"):
        diffusers_steps(10, spacing="karras")
    with pytest.raises(ValueError, match=r"\[1, 1000\]"):
        diffusers_steps(1001)
    with pytest.raises(ValueError, match="eta"):
        ddim(f, x0, uniform_grid(4), eta=-1.0)


def test_dopri5_never_reads_the_field_outside_its_interval():
    # torchdiffeq's first-step heuristic probes t0 + h0 with a large h0 when the field vanishes
    # at the start (the exact VP field at t = 0); every evaluation must stay inside the grid
    from wasserflow.paths import AffinePath, VPSchedule, gaussian_oracle
    from wasserflow.samplers import Field, dopri5, uniform_grid

    seen = []
    cov = 0.5 * torch.eye(2, dtype=torch.float64)
    oracle = gaussian_oracle(torch.zeros(2, dtype=torch.float64), cov, AffinePath(VPSchedule()))

    def v(x, t):
        seen.append(float(t[0]))
        return oracle.velocity(x, t)

    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    res = dopri5(Field(fn=v), x0, uniform_grid(1, 0.0, 1.0 - 1e-3))
    assert torch.isfinite(res.x).all()
    assert 0.0 <= min(seen) and max(seen) <= 1.0 - 1e-3
