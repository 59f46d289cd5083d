"""CFG against the tilted law on a grid (metrics/guidance_geometry.py): the grid residual of the
continuity equation vanishes (to discretisation) for the exact conditional and unconditional
paths, which the exact fields transport, and not for the guided field with the tilted
marginals; draws of the grid-normalised tilted law at s = 1 have the class Gaussian's moments,
and so do the exact fields' CFG samples at s = 1 (s = 0: the mixture's moments)."""

import math

import torch

from wasserflow.geometry import GaussianMixture, regular_grid
from wasserflow.metrics.guidance_geometry import continuity_residual, exact_cfg, tilted_target
from wasserflow.paths import AffinePath, ClassOracle, LinearSchedule

MIX = GaussianMixture.isotropic(
    torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]], dtype=torch.float64), std=0.5
)
ORACLE = ClassOracle(MIX, AffinePath(LinearSchedule()))
GRID = regular_grid(-4.0, 4.0, (120, 120))


def test_the_continuity_residual_separates_transported_paths_from_the_tilted_one():
    for t in (0.3, 0.6):
        assert continuity_residual(ORACLE, 0, 1.0, t, GRID) < 0.01  # p_t(x | c) and v_c
        assert continuity_residual(ORACLE, 0, 0.0, t, GRID) < 0.01  # p_t(x) and v_u
        assert continuity_residual(ORACLE, 0, 3.0, t, GRID) > 0.2  # tilted marginals and v_s


def test_tilted_draws_at_scale_one_have_the_class_moments():
    x = tilted_target(ORACLE, 0, 1.0, 20_000, GRID, torch.Generator().manual_seed(0))
    se = 0.5 / math.sqrt(20_000)
    assert (x.mean(0) - MIX.means[0]).abs().max() < 5 * se
    cov = torch.cov(x.T)  # the uniform jitter inside a cell adds h^2 / 12 per axis
    h = GRID.spacing[0]
    torch.testing.assert_close(cov, (0.25 + h * h / 12) * torch.eye(2, dtype=torch.float64),
                               atol=0.015, rtol=0)  # fmt: skip


def test_exact_cfg_at_scales_one_and_zero_has_the_class_and_mixture_moments():
    n = 20_000
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = exact_cfg(ORACLE, 0, 1.0, x0, steps=50)
    se = 0.5 / math.sqrt(n)
    assert (x.mean(0) - MIX.means[0]).abs().max() < 5 * se
    torch.testing.assert_close(torch.cov(x.T), 0.25 * torch.eye(2, dtype=torch.float64),
                               atol=0.015, rtol=0)  # fmt: skip
    u = exact_cfg(ORACLE, 0, 0.0, x0, steps=50)  # the unconditional law: the mixture
    assert (u.mean(0) - MIX.means.mean(0)).abs().max() < 5 * 0.8 / math.sqrt(n)
