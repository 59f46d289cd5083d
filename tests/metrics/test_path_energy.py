"""The path-energy decomposition PE - W2^2 = curvature + coupling gap, on closed forms."""

import math

import pytest
import torch

from wasserflow.geometry import gaussian_w2
from wasserflow.metrics.path_energy import path_energy_decomposition
from wasserflow.paths import AffinePath, LinearSchedule, gaussian_oracle
from wasserflow.paths.oracle import GaussianGeodesicOracle
from wasserflow.samplers import Field, get_sampler, uniform_grid


def test_both_parts_vanish_on_the_ot_geodesic_of_two_gaussians():
    """McCann's interpolant between N(0, I) and N(m, S): straight curves along the Brenier map."""
    m = torch.tensor([1.0, -0.5], dtype=torch.float64)
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    geo = GaussianGeodesicOracle(m, cov)
    z = torch.randn(400, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = get_sampler("dopri5")(geo.velocity, z, uniform_grid(1), atol=1e-9, rtol=1e-9)
    dec = path_energy_decomposition(z, r.x, r.energy)
    pe = dec.path_energy.value
    assert abs(dec.curvature.value) < 1e-6 * pe
    assert dec.coupling_gap.lower == 0.0 and dec.coupling_gap.upper < 1e-6 * pe
    # the brackets of W2^2 and of the geodesic gap follow from the coupling gap's
    w2 = dec.w2_squared
    assert w2.lower == pytest.approx(dec.chord_energy.value - dec.coupling_gap.upper)
    assert dec.geodesic_gap.upper == pytest.approx(dec.curvature.value + dec.coupling_gap.upper)
    # and the energy is W2^2 between the two Gaussians up to the sample's own error
    bures = gaussian_w2(torch.zeros(2, dtype=torch.float64), torch.eye(2), m, cov) ** 2
    assert dec.path_energy.lower < float(bures) < dec.path_energy.upper


def test_independent_linear_path_is_curved_but_optimally_coupled():
    """Linear path to N(m, s^2 I): the flow map m + s z is the Brenier map (coupling gap 0) but
    the curves bend: curvature_i = |z_i|^2 s (2 - pi / 2) exactly."""
    d, s = 3, 0.5
    m = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    f = Field.from_oracle(gaussian_oracle(m, s**2 * torch.eye(d), AffinePath(LinearSchedule())))
    z = torch.randn(300, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    r = get_sampler("dopri5")(f, z, uniform_grid(1), atol=1e-9, rtol=1e-9)
    dec = path_energy_decomposition(z, r.x, r.energy)
    expected = float(z.pow(2).sum(-1).mean()) * s * (2 - math.pi / 2)
    assert dec.curvature.value == pytest.approx(expected, rel=1e-5)
    assert dec.coupling_gap.lower == 0.0 and dec.coupling_gap.upper < 1e-8


def test_a_bad_coupling_shows_as_coupling_gap():
    """Straight curves (curvature 0) along a shuffled pairing of N(0, I) with N(3, I / 4): the
    independent coupling's cost 18 + 2 (1 + 1/4) against the Bures W2^2 18 + 2 (1 - 1/2)^2,
    a gap of 2."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    x1 = x0[torch.randperm(1000, generator=g)] * 0.5 + 3.0
    energy = (x1 - x0).pow(2).sum(-1)  # constant-speed straight lines on the unit clock
    dec = path_energy_decomposition(x0, x1, energy)
    assert abs(dec.curvature.value) < 1e-12
    assert dec.coupling_gap.contains(2.0) and dec.coupling_gap.lower > 1.0
    assert dec.w2_squared.upper < dec.chord_energy.value


def test_bad_input_is_refused():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="one shape"):
        path_energy_decomposition(x, torch.zeros(5, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="energy has 3"):
        path_energy_decomposition(x, x, torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        path_energy_decomposition(x, x, torch.full((4,), float("nan")))
