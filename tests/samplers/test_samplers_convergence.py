"""With the exact oracle field, ODE samplers converge at their order and stochastic samplers
reach the target law (W2 to fresh samples at the sampling noise floor)."""

import math

import numpy as np
import pytest
import torch

from wasserflow.geometry import GaussianMixture, w2
from wasserflow.paths import (
    AffinePath,
    DDPMDiscreteSchedule,
    LinearSchedule,
    MixtureOracle,
    VESchedule,
    VPSchedule,
)
from wasserflow.samplers import SAMPLERS, Field, energy_field, uniform_grid

MIX = GaussianMixture.create(
    [0.3, 0.7],
    [[-2.0, 0.0], [1.5, 1.0]],
    [[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]]],
)
N = 400


@pytest.fixture(scope="module")
def reference_solution():
    f = Field.from_oracle(MixtureOracle(MIX, AffinePath(LinearSchedule())))
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = SAMPLERS["dopri5"](f, x0, uniform_grid(1), atol=1e-11, rtol=1e-11)
    return f, x0, ref


@pytest.mark.parametrize(
    "name,counts",
    [
        ("euler", [8, 16, 32, 64]),
        ("midpoint", [8, 16, 32]),
        ("heun", [8, 16, 32]),
        ("rk4", [4, 8, 16]),
    ],
)
def test_ode_samplers_converge_at_their_order(reference_solution, name, counts):
    f, x0, ref = reference_solution
    spec = SAMPLERS[name]
    errs = []
    for k in counts:
        out = spec(f, x0, uniform_grid(k))
        assert out.nfe == k * spec.nfe_per_step
        errs.append(float((out.x - ref.x).norm(dim=1).mean()))
    slope = -np.polyfit(np.log(counts), np.log(errs), 1)[0]
    assert abs(slope - spec.order) < 0.3, (name, slope, errs)


def test_dopri5_reports_nfe_and_meets_tolerance(reference_solution):
    f, x0, ref = reference_solution
    loose = SAMPLERS["dopri5"](f, x0, uniform_grid(4), atol=1e-4, rtol=1e-4, return_trajectory=True)
    assert 0 < loose.nfe < ref.nfe
    assert loose.trajectory.shape == (5, 32, 2) and torch.equal(loose.x, loose.trajectory[-1])
    assert float((loose.x - ref.x).abs().max()) < 1e-2


def _noise_floor(generator, pairs=6):
    """Mean W2^2 between two independent N-samples of the data: the best any sampler can do."""
    return (
        sum(w2(MIX.sample(N, generator), MIX.sample(N, generator)).cost for _ in range(pairs))
        / pairs
    )


@pytest.fixture(scope="module")
def floor_and_fresh():
    g = torch.Generator().manual_seed(123)
    return _noise_floor(g), MIX.sample(N, g)


def _run(name, schedule, grid, **options):
    path = AffinePath(schedule)
    f = Field.from_oracle(MixtureOracle(MIX, path))
    x0 = path.sample_reference((N, 2), torch.Generator().manual_seed(1), dtype=torch.float64)
    return SAMPLERS[name](f, x0, grid, generator=torch.Generator().manual_seed(2), **options)


CASES = {
    "ddpm": ("ddpm", DDPMDiscreteSchedule(), uniform_grid(100), {}),
    "ddim_eta1": ("ddim", VPSchedule(), uniform_grid(100), {"eta": 1.0}),
    "ddim_eta0": ("ddim", VPSchedule(), uniform_grid(50), {"eta": 0.0}),
    "euler_maruyama": ("euler_maruyama", VPSchedule(), uniform_grid(150), {}),
    "predictor_corrector": ("predictor_corrector", VPSchedule(), uniform_grid(80), {}),
    "annealed_langevin": (
        "annealed_langevin",
        VESchedule(0.05, 10.0),
        uniform_grid(19),
        {"n_steps_each": 20, "step_lr": 5e-4},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_stochastic_samplers_reach_the_target(case, floor_and_fresh):
    floor, fresh = floor_and_fresh
    name, sched, grid, opts = CASES[case]
    out = _run(name, sched, grid, **opts)
    assert w2(out.x, fresh).cost < 2.0 * floor, (case, floor)


def test_target_check_rejects_a_coarse_sampler(floor_and_fresh):
    # negative control: two DDPM steps are far from the target, so the criterion can fail
    floor, fresh = floor_and_fresh
    out = _run("ddpm", DDPMDiscreteSchedule(), uniform_grid(2))
    assert w2(out.x, fresh).cost > 5.0 * floor


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_energy_langevin_samples_the_boltzmann_density(temperature):
    # E = -log N(m, S): exp(-E / T) is N(m, T S)
    m = torch.tensor([1.0, -1.0], dtype=torch.float64)
    S = torch.tensor([[1.0, 0.5], [0.5, 0.8]], dtype=torch.float64)
    gauss = GaussianMixture.create([1.0], m, S)
    target = GaussianMixture.create([1.0], m, temperature * S)
    g = torch.Generator().manual_seed(5)
    floor = sum(w2(target.sample(N, g), target.sample(N, g)).cost for _ in range(4)) / 4
    x0 = torch.randn(N, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    f = energy_field(lambda x: -gauss.log_prob(x))
    out = SAMPLERS["energy_langevin"](
        f,
        x0,
        uniform_grid(20),
        n_langevin=300,
        step_size=0.02,
        temperature=temperature,
        generator=torch.Generator().manual_seed(2),
    )
    assert out.nfe == 320
    assert w2(out.x, target.sample(N, g)).cost < 2.0 * floor
    descent_only = SAMPLERS["energy_langevin"](f, x0, uniform_grid(20))
    assert w2(descent_only.x, target.sample(N, g)).cost > 3.0 * floor
    assert math.isclose(float(descent_only.times[-1]), 1.0)
