"""Sampling plans for dpm_solver: the NFE budget, the grid's end at sigma = 0 without a separate
denoising evaluation, the last trained time respected, and the same compatibility rule as ddim."""

import pytest
import torch

from wasserflow.engine import build_path, check_compatible, make_config, sampling_plan


def method_config(method, **overrides):
    return make_config(method, "moons", overrides=overrides)


@pytest.mark.parametrize("method,last", [("sde-vp", 1.0 - 1e-3), ("ddpm", 1.0 - 1e-3)])
@pytest.mark.parametrize("nfe", [1, 2, 8, 30])
def test_dpm_solver_grid_ends_at_the_data_without_denoising(method, last, nfe):
    plan = sampling_plan(method_config(method), "dpm_solver", nfe)
    g = plan.grid
    assert g.dim() == 1 and g.shape[0] == nfe + 1  # K steps, one evaluation each
    assert float(g[0]) == 0.0 and float(g[-1]) == 1.0
    assert (torch.diff(g) > 0).all() and float(g[-2]) < last  # evaluated at trained times only
    assert plan.denoise_at is None and not {"spacing", "final_step"} & set(plan.options)


def test_dpm_solver_spacing_from_the_recipe():
    # default: uniform in t, the last evaluation half a step before the last trained time
    step = (1.0 - 1e-3) / 3.5
    g = sampling_plan(method_config("sde-vp"), "dpm_solver", 4).grid
    assert torch.allclose(
        g, torch.tensor([0.0, step, 2 * step, 3 * step, 1.0], dtype=torch.float64)
    )
    diffusers_like = method_config(
        "sde-vp", sampler={"name": "dpm_solver", "options": {"final_step": 1.0}}
    )
    step = (1.0 - 1e-3) / 4
    assert torch.allclose(
        sampling_plan(diffusers_like, "dpm_solver", 4).grid,
        torch.tensor([0.0, step, 2 * step, 3 * step, 1.0], dtype=torch.float64),
    )
    for t_max in (1.0 - 1e-3, 1.0):  # log-SNR: lambda(1) = inf, so it stops at 1 - 1e-3
        recipe = method_config(
            "sde-vp",
            sampler={"name": "dpm_solver", "options": {"spacing": "logsnr"}},
            times={"kind": "uniform", "t_min": 0.0, "t_max": t_max},
        )
        plan = sampling_plan(recipe, "dpm_solver", 4)
        assert "spacing" not in plan.options and plan.denoise_at is None
        c = build_path(recipe).coefficients(plan.grid[:-1])
        dl = torch.diff(torch.log(c.alpha / c.sigma))
        assert torch.allclose(dl, dl[:1].expand(3), rtol=1e-8)
        c_stop = build_path(recipe).coefficients(torch.tensor(0.999, dtype=torch.float64))
        lam_stop = torch.log(c_stop.alpha / c_stop.sigma)
        assert torch.allclose(lam_stop - torch.log(c.alpha[-1] / c.sigma[-1]), 0.5 * dl[0])
    # icfm's linear path has alpha = 0 at t = 0: time spacing works, log-SNR cannot
    assert sampling_plan(method_config("icfm"), "dpm_solver", 4).grid.shape == (5,)


@pytest.mark.parametrize("method", ["otcfm", "sbcfm", "rectified-flow", "energy-matching"])
def test_dpm_solver_refused_like_ddim(method):
    recipe = method_config(method)
    for sampler in ("ddim", "dpm_solver"):
        with pytest.raises(ValueError, match="independent coupling"):
            check_compatible(recipe, sampler)
    check_compatible(method_config("icfm"), "dpm_solver")  # linear path, independent: allowed
