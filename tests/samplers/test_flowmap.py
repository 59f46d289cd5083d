"""The flow-map sampler against closed forms (paths/oracle.py, checked against an RK4 solve of
the mixture oracle in tests/paths/test_oracle_flow_maps.py): the jumps of an exact flow map give
the exact samples at any NFE, their energy tends to the path's action of docs/design.md section
3 (scipy quad), and the deviation of the average velocity from the instantaneous one is zero on
the straight (geodesic) path and falls as h^2 with the jump size on the curved one."""

import pytest
import scipy.integrate
import torch

from wasserflow.paths import AffinePath, GaussianFlowMap, GaussianGeodesicOracle, get_schedule
from wasserflow.samplers import (
    Field,
    FlowMapField,
    SamplingContext,
    average_velocity_deviation,
    get_sampler,
    uniform_grid,
)

M = torch.tensor([1.0, -0.5], dtype=torch.float64)
S = torch.tensor([[1.5, 0.6], [0.6, 0.5]], dtype=torch.float64)
EXACT = GaussianFlowMap(M, S, AffinePath(get_schedule("linear")))
FIELD = FlowMapField.from_average(EXACT.average_velocity)
X0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
FLOWMAP = get_sampler("flowmap")


@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_exact_jumps_give_the_exact_samples_at_any_nfe(k):
    res = FLOWMAP(FIELD, X0, uniform_grid(k), return_trajectory=True)
    assert res.nfe == k and res.trajectory.shape == (k + 1, 500, 2)
    torch.testing.assert_close(res.x, EXACT.flow_map(X0, 0.0, 1.0))
    for j, t in enumerate(res.times.tolist()):
        torch.testing.assert_close(res.trajectory[j], EXACT.flow_map(X0, 0.0, t))


def test_one_jump_energy_is_the_chord_and_many_tend_to_the_action():
    one = FLOWMAP(FIELD, X0, uniform_grid(1))
    torch.testing.assert_close(one.energy, (EXACT.flow_map(X0, 0.0, 1.0) - X0).pow(2).sum(1))
    # docs/design.md section 3: per eigenvalue s^2 of S the action of the independent linear
    # path is int (t s^2 - (1 - t))^2 / ((1 - t)^2 + t^2 s^2) dt, plus |m|^2 for the means
    action = float(M.pow(2).sum())
    for s2 in torch.linalg.eigvalsh(S).tolist():
        action += scipy.integrate.quad(
            lambda t, s2=s2: (t * s2 - (1 - t)) ** 2 / ((1 - t) ** 2 + t**2 * s2), 0, 1
        )[0]
    x0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    many = FLOWMAP(FIELD, x0, uniform_grid(256)).energy.mean()
    assert float(many) == pytest.approx(action, rel=0.02)  # sampling error of 20,000 points


def test_deviation_vanishes_on_the_geodesic_and_falls_as_h_squared_off_it():
    geo = GaussianGeodesicOracle(M, S)
    straight = FlowMapField.from_average(
        lambda x, t, s: torch.where(
            (s == t)[:, None],
            geo.velocity(x, t),
            (geo.flow_map(x, t, s) - x) / (s - t + (s == t).double())[:, None],
        )
    )
    for k in (1, 3):
        assert average_velocity_deviation(straight, X0, uniform_grid(k)).abs().max() < 1e-20
    one = average_velocity_deviation(FIELD, X0, uniform_grid(1))
    chord = EXACT.flow_map(X0, 0.0, 1.0) - X0
    torch.testing.assert_close(one, (chord - EXACT.velocity(X0, 0.0)).pow(2).sum(1))
    d = [float(average_velocity_deviation(FIELD, X0, uniform_grid(k)).mean()) for k in (8, 16)]
    assert 3.6 < d[0] / d[1] < 4.4  # sum_k h |u - v|^2 with u - v = O(h): O(h^2)
    res = FLOWMAP(FIELD, X0, uniform_grid(2), deviation=True)
    assert res.nfe == 2  # the deviation's evaluations measure, they do not sample
    torch.testing.assert_close(
        res.deviation, average_velocity_deviation(FIELD, X0, uniform_grid(2))
    )


def test_the_sampler_refuses_what_is_not_a_flow_map():
    with pytest.raises(ValueError, match="drives a FlowMapField"):
        FLOWMAP(Field(fn=EXACT.velocity), X0, uniform_grid(2))
    jumps_only = FlowMapField.from_average(EXACT.average_velocity, instantaneous=False)
    with pytest.raises(ValueError, match="no instantaneous velocity"):
        FLOWMAP(jumps_only, X0, uniform_grid(2), deviation=True)
    with pytest.raises(ValueError, match="sampler flowmap jumps along a flow map.*euler"):
        FLOWMAP.make_plan(2, SamplingContext(description="icfm"))
    ctx = SamplingContext(flow_map=True, velocity=False, description="flowmap-distill")
    with pytest.raises(ValueError, match="learns the jumps of a flow map.*flowmap, not euler"):
        get_sampler("euler").make_plan(2, ctx)
    assert FLOWMAP.make_plan(None, ctx).grid.tolist() == [0.0, 1.0]  # one jump by default
    assert FLOWMAP.make_plan(4, ctx).grid.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
