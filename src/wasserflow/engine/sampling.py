"""From (method recipe, sampler, NFE budget) to the sampler's time grid and options.

The NFE budget is met exactly where a sampler's cost per step is fixed (``nfe // nfe_per_step``
steps); adaptive dopri5 ignores it and reports what it used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..samplers import diffusers_steps, get_sampler, uniform_grid

DEFAULT_NFE = 100


def _t_end(recipe: dict) -> float:
    """Where stochastic samplers stop: before sigma = 0 for VP-type paths (score singular)."""
    t = recipe.get("times", {})
    return float(t.get("t_max", 1.0)) if t.get("kind", "uniform") == "uniform" else 1.0


def check_compatible(recipe: dict, sampler: str) -> None:
    """Refuse a sampler the trained model cannot drive, with the reason.

    Score-based and ancestral samplers convert the prediction to a score or to (x1, eps), which
    DESIGN.md section 2 allows only for a Gaussian reference independent of the data: not for
    OT / entropic couplings, bridges or reflow pairs. energy_langevin needs an energy model.
    """
    spec = get_sampler(sampler)
    method = recipe["method"]
    is_energy = recipe.get("model_kind") == "energy"
    if sampler == "energy_langevin" and not is_energy:
        raise ValueError(f"sampler energy_langevin needs an energy model; {method} trains a "
                         "vector field: use euler, heun, rk4 or dopri5")
    independent = (recipe.get("coupling") == "independent" and not recipe.get("bridge_sigma")
                   and not recipe.get("reflow") and not is_energy)
    if (spec.needs_score or spec.needs_path) and not independent:
        raise ValueError(
            f"sampler {sampler} needs the score of a Gaussian path with independent coupling, "
            f"which {method} does not learn: use an ODE sampler (euler, heun, midpoint, rk4, "
            "dopri5)" + (" or energy_langevin" if is_energy else ""))


@dataclass(frozen=True)
class SamplingPlan:
    """The grid and options of one sampler call, and where to finish with the posterior mean.

    ``denoise_at``: paths whose training times stop short of t = 1 (VP: sigma -> 0 makes the
    epsilon-to-velocity conversion blow up as sigma' ~ 1 / sqrt(1 - t)) are integrated up to
    that time and finished with one evaluation of E[x1 | x_t] (Tweedie), as score-SDE does.
    """

    grid: Tensor
    options: dict[str, Any] = field(default_factory=dict)
    denoise_at: float | None = None


def sampling_plan(recipe: dict, sampler: str, nfe: int | None) -> SamplingPlan:
    """The plan for ``sampler`` on the recipe's path with about ``nfe`` evaluations."""
    grid, options = _grid_and_options(recipe, sampler, nfe)
    end = float(grid.reshape(-1)[-1])
    return SamplingPlan(grid, options, end if end < 1.0 and _t_end(recipe) < 1.0 else None)


def _grid_and_options(recipe: dict, sampler: str, nfe: int | None) -> tuple[Tensor, dict[str, Any]]:
    if nfe is not None and (int(nfe) != nfe or nfe < 1):
        raise ValueError(f"nfe must be a positive integer, got {nfe!r}")
    check_compatible(recipe, sampler)
    spec = get_sampler(sampler)
    opts: dict[str, Any] = {}
    if recipe["sampler"]["name"] == sampler:
        opts.update(recipe["sampler"].get("options", {}))
    sched = recipe["schedule"]["name"]
    end = _t_end(recipe)
    if sampler == "dopri5":
        return uniform_grid(1, 0.0, end), {"atol": 1e-5, "rtol": 1e-5, **opts}
    budget = DEFAULT_NFE if nfe is None else int(nfe)
    if sampler in ("ddim", "ddpm"):
        if sched == "ddpm":
            T = recipe["schedule"].get("num_train_timesteps", 1000)
            grid = diffusers_steps(min(budget, T), scheduler=sampler, num_train_timesteps=T,
                                   spacing="trailing", set_alpha_to_one=True)
            return grid, opts
        return uniform_grid(budget, 0.0, end), opts
    if sampler == "annealed_langevin":
        levels = recipe["times"].get("levels", 10) if recipe["times"]["kind"] == "levels" else 10
        grid = torch.linspace(0.0, 1.0, levels, dtype=torch.float64)
        each = max(1, (budget - 1) // levels) if nfe is not None else 100
        return grid, {**opts, "n_steps_each": each}
    if sampler == "energy_langevin":
        n_lang = budget // 2
        opts = {**opts, "n_langevin": n_lang}
        return uniform_grid(max(1, budget - n_lang)), opts
    if sampler == "predictor_corrector":
        per = 1 + opts.get("n_corrector", 1)
        return uniform_grid(max(1, budget // per), 0.0, end), opts
    if sampler == "euler_maruyama":
        return uniform_grid(budget, 0.0, end), opts
    per = spec.nfe_per_step or 1
    return uniform_grid(max(1, budget // per), 0.0, end), opts
