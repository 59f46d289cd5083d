"""Displacement interpolation and trajectory geometry: the Benamou-Brenier facts of docs/design.md 3."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wasserflow.geometry import (
    displacement_interpolation,
    exact_ot,
    trajectory_action,
    trajectory_geometry,
    w2,
)


def pair(seed, n=60, d=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.rand(
        n, d, generator=g, dtype=torch.float64
    ) * 4 + 1


def optimal_straight_paths(x, y, times):
    r = exact_ot(x, y)
    perm = r.plan.argmax(1)  # equal-size uniform: the plan is a permutation
    return torch.stack([(1 - t) * x + t * y[perm] for t in times]), r


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0])
def test_interpolant_is_constant_speed_geodesic(t):
    x, y = pair(0)
    r = exact_ot(x, y)
    mu_t = displacement_interpolation(x, y, r, t)
    assert float(mu_t.weights.sum()) == pytest.approx(1.0)
    d0t = w2(x, mu_t.points, None, mu_t.weights).w2
    dt1 = w2(mu_t.points, y, mu_t.weights, None).w2
    assert d0t == pytest.approx(t * r.w2, rel=1e-7, abs=1e-9)
    assert dt1 == pytest.approx((1 - t) * r.w2, rel=1e-7, abs=1e-9)


def test_interpolant_weighted_plan():
    x, y = pair(1, n=30)
    y = y[:20]
    b = torch.linspace(1, 2, 20, dtype=torch.float64)
    b = b / b.sum()
    r = exact_ot(x, y, None, b)
    mu = displacement_interpolation(x, y, r, 0.25)
    assert w2(x, mu.points, None, mu.weights).w2 == pytest.approx(0.25 * r.w2, rel=1e-7)


def test_action_equals_w2_on_optimal_straight_paths():
    x, y = pair(2)
    times = torch.linspace(0, 1, 11, dtype=torch.float64)
    traj, r = optimal_straight_paths(x, y, times)
    geo = trajectory_geometry(traj, times)
    assert geo.action == pytest.approx(r.cost, rel=1e-10)
    assert abs(geo.geodesic_gap) < 1e-10 * r.cost
    assert geo.straightness == pytest.approx(0.0, abs=1e-10)
    assert geo.normalized_path_energy < 1e-10


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), wiggle=st.floats(0.05, 2.0), shuffle=st.booleans())
def test_action_exceeds_w2_otherwise(seed, wiggle, shuffle):
    """Same endpoints, any other trajectories: curved (wiggle) or along a non-optimal pairing."""
    x, y = pair(seed, n=25)
    times = torch.linspace(0, 1, 21, dtype=torch.float64)
    traj, r = optimal_straight_paths(x, y, times)
    if shuffle:
        perm = torch.randperm(25, generator=torch.Generator().manual_seed(seed))
        end = traj[-1][perm]
        traj = torch.stack([(1 - t) * x + t * end for t in times])
    g = torch.Generator().manual_seed(seed + 7)
    bump = (
        torch.sin(math.pi * times)[:, None, None]
        * wiggle
        * torch.randn(1, 25, 2, generator=g, dtype=torch.float64)
    )
    geo = trajectory_geometry(traj + bump, times)
    assert geo.geodesic_gap > 0
    assert geo.action == pytest.approx(geo.pairing_cost + geo.straightness, rel=1e-10)


def test_time_reparametrisation_costs_action():
    """Straight optimal paths run at non-constant speed have action > W2^2 (Cauchy-Schwarz)."""
    x, y = pair(3)
    times = torch.linspace(0, 1, 41, dtype=torch.float64)
    traj, r = optimal_straight_paths(x, y, times**2)
    assert trajectory_action(traj, times) > r.cost * 1.01


def test_independent_linear_path_gaussian_closed_form():
    """docs/design.md 3: the I-CFM marginal path N(0,1) -> N(0, s^2), run along its own marginal
    field, has action int (t s^2 - (1-t))^2 / ((1-t)^2 + t^2 s^2) dt (1.858 for s = 2) against
    W2^2 = (s - 1)^2 = 1. The marginal flow map of a centred Gaussian path is x -> sd(t) x."""
    s = 2.0
    times = torch.linspace(0, 1, 4001, dtype=torch.float64)
    sd = torch.sqrt((1 - times) ** 2 + times**2 * s**2)
    z = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    traj = sd[:, None, None] * z[None]
    geo = trajectory_geometry(traj, times)
    emp = float((z**2).mean())
    assert geo.action / emp == pytest.approx(1.858, abs=2e-3)
    assert geo.endpoint_w2_squared / emp == pytest.approx(1.0, rel=1e-9)


def test_bad_trajectories():
    with pytest.raises(ValueError, match="shape"):
        trajectory_action(torch.zeros(3, 2), torch.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="entries"):
        trajectory_action(torch.zeros(3, 4, 2), torch.linspace(0, 1, 4))
    with pytest.raises(ValueError, match="monotone"):
        trajectory_action(torch.zeros(3, 4, 2), torch.tensor([0.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="NaN"):
        trajectory_action(torch.full((3, 4, 2), float("nan")), torch.linspace(0, 1, 3))
