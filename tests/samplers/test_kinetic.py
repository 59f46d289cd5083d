"""The kinetic energy int |v|^2 dt that samplers integrate along the ODE they solve, against
closed forms of Gaussian probability-flow ODEs (trajectories x_t = alpha_t m + r_t u)."""

import math

import pytest
import torch
from scipy.integrate import quad

from wasserflow.paths import AffinePath, LinearSchedule, VPSchedule, gaussian_oracle
from wasserflow.samplers import Field, get_sampler, uniform_grid

D, S = 3, 0.5
M = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def _linear():
    """Linear path to N(m, s^2 I): x_t = t m + sigma_t z, sigma_t^2 = (1 - t)^2 + t^2 s^2, so
    int |v|^2 = |m|^2 + 2 (m.z)(s - 1) + |z|^2 (1 + s^2 - pi s / 2) per curve (the last
    integral in closed form: int_0^1 sigma'^2 dt = 1 + s^2 - s (atan s + atan 1/s))."""
    f = Field.from_oracle(gaussian_oracle(M, S**2 * torch.eye(D), AffinePath(LinearSchedule())))
    z = torch.randn(64, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = (
        M.pow(2).sum() + 2 * (z @ M) * (S - 1) + z.pow(2).sum(-1) * (1 + S * S - math.pi * S / 2)
    )
    return f, z, exact


@pytest.mark.parametrize(
    ("name", "order"), [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)]
)
def test_runge_kutta_energy_converges_at_the_method_order(name, order):
    f, z, exact = _linear()
    err = [
        float((get_sampler(name)(f, z, uniform_grid(k)).energy - exact).abs().max())
        for k in (8, 32)
    ]
    measured = math.log(err[0] / err[1]) / math.log(4)
    assert measured == pytest.approx(order, abs=0.35)


def test_dopri5_carries_the_energy_as_a_state():
    """One output interval: the endpoints' chord would miss the curvature entirely."""
    f, z, exact = _linear()
    r = get_sampler("dopri5")(f, z, uniform_grid(1), atol=1e-8, rtol=1e-8)
    assert torch.allclose(r.energy, exact, rtol=1e-6, atol=1e-6)
    chord = (r.x - z).pow(2).sum(-1)
    assert (r.energy - chord).mean() > 0.3  # the curvature a chord would report as 0


def _vp_exact(t_stop: float):
    """VP path to N(m, s^2 I): x_t = alpha_t m + r_t u with r_t^2 = alpha^2 s^2 + sigma^2;
    int |x'|^2 = |m|^2 int alpha'^2 + 2 (m.u) int alpha' r' + |u|^2 int r'^2 (scipy quad)."""
    sch = VPSchedule()

    def co(t):
        c = sch(torch.tensor([t], dtype=torch.float64))
        a, g, da, dg = (float(v[0]) for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma))
        r = math.sqrt(a * a * S * S + g * g)
        return a, da, r, (a * da * S * S + g * dg) / r

    def integral(fn):
        return quad(fn, 0.0, t_stop, epsabs=1e-13, epsrel=1e-12, limit=200)[0]

    i_aa = integral(lambda t: co(t)[1] ** 2)
    i_ar = integral(lambda t: co(t)[1] * co(t)[3])
    i_rr = integral(lambda t: co(t)[3] ** 2)
    u = torch.randn(64, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a0, _, r0, _ = co(0.0)
    z = a0 * M + r0 * u
    exact = M.pow(2).sum() * i_aa + 2 * (u @ M) * i_ar + u.pow(2).sum(-1) * i_rr
    f = Field.from_oracle(gaussian_oracle(M, S**2 * torch.eye(D), AffinePath(sch)))
    return f, z, exact


@pytest.mark.parametrize(
    ("name", "tol"),
    [("ddim", 0.03), ("dpm_solver", 3e-3), ("unipc", 1e-3), ("ipndm", 1e-3), ("edm_heun", 2e-3)],
)
def test_exponential_integrators_energy_is_that_of_their_dense_output(name, tol):
    """Their steps move along the path's own curve alpha d + sigma e with frozen predictions:
    its energy converges to the exact ODE's as the grid is refined."""
    f, z, exact = _vp_exact(0.99)
    rel = []
    for k in (8, 128):
        r = get_sampler(name)(f, z, uniform_grid(k, 0.0, 0.99))
        rel.append(float((r.energy - exact).abs().max() / exact.abs().max()))
    assert rel[1] < tol
    assert rel[1] < rel[0] / 5


@pytest.mark.parametrize("name", ["euler", "heun", "rk4", "ddim", "dpm_solver", "unipc", "ipndm"])
def test_path_energy_is_at_least_the_chord_energy(name):
    """int |v|^2 >= |x1 - x0|^2 on the unit clock for every curve (Cauchy-Schwarz)."""
    f, z, _ = _vp_exact(0.99)
    r = get_sampler(name)(f, z, uniform_grid(4, 0.0, 0.99))
    chord = (r.x - z).pow(2).sum(-1) / 0.99
    assert (r.energy - chord).min() > -1e-9


def test_stochastic_samplers_report_no_energy():
    f, z, _ = _vp_exact(0.99)
    g = torch.Generator().manual_seed(0)
    assert get_sampler("ddim")(f, z, uniform_grid(4, 0, 0.99), eta=1.0, generator=g).energy is None
    assert get_sampler("euler_maruyama")(f, z, uniform_grid(4, 0, 0.99), generator=g).energy is None


@pytest.mark.parametrize("name", ["euler", "midpoint", "heun", "rk4"])
def test_energy_off_gives_the_same_samples_and_no_energy(name):
    """``energy=False`` skips the kinetic energy only: the same samples bit for bit."""
    field = Field(fn=lambda x, t: torch.sin(3 * x) + t[:, None])
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    grid = uniform_grid(6)
    on = get_sampler(name)(field, x0, grid)
    off = get_sampler(name)(field, x0, grid, energy=False)
    assert off.energy is None and on.energy is not None and on.energy.dtype == torch.float64
    assert torch.equal(on.x, off.x) and on.nfe == off.nfe


def test_euler_energy_is_the_polyline_energy_in_float64():
    """Euler's energy is sum_k h_k |v_k|^2 of its polyline: |x_{k+1} - x_k|^2 / h_k in
    float64 from the frames (the velocities are the field's, exactly representable here)."""
    field = Field(fn=lambda x, t: torch.cos(x) * (1 + t[:, None]))
    x0 = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grid = uniform_grid(5).to(torch.float64)
    r = get_sampler("euler")(field, x0, grid, return_trajectory=True)
    steps = torch.diff(r.trajectory, dim=0)
    h = torch.diff(grid)
    expected = (steps.pow(2).sum(-1) / h[:, None]).sum(0)
    torch.testing.assert_close(r.energy, expected, rtol=1e-12, atol=0)
