"""From (method recipe, sampler, NFE budget) to the sampler's time grid and options.

The NFE budget is met exactly where a sampler's cost per step is fixed (``nfe // nfe_per_step``
steps); adaptive dopri5 ignores it and reports what it used.

dpm_solver (DPM-Solver++(2M); dpm_solver_3m alike) evaluates the model at K = nfe times below
the last trained time and then steps to t = 1 (sigma = 0 on VP paths) with its data prediction,
so no separate denoising evaluation is needed. Its grid (:func:`~wasserflow.samplers.solver_grid`, options
``spacing`` and ``final_step`` in the recipe's sampler options) defaults to
:data:`DPM_SOLVER_GRID`, chosen on the 2-D moons benchmark (benchmarks/README.md, 8 NFE, one
seed): uniform in t (better than log-SNR for 4 of 5 VP models, and than Karras spacings for
all), with the last evaluation half an increment before the last trained time (diffusers puts
it a whole increment before), which lowered W2 at 8 NFE for every VP model tried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..paths import get_schedule
from ..samplers import diffusers_steps, get_sampler, solver_grid, uniform_grid

DEFAULT_NFE = 100
DPM_SOLVER_GRID = {"spacing": "time", "final_step": 0.5}
LOGSNR_T_STOP = 1.0 - 1e-3  # log-SNR spacing needs sigma > 0 at its stop time


def _t_end(recipe: dict) -> float:
    """Where stochastic samplers stop: before sigma = 0 for VP-type paths (score singular)."""
    t = recipe.get("times", {})
    return float(t.get("t_max", 1.0)) if t.get("kind", "uniform") == "uniform" else 1.0


def _t_last_trained(recipe: dict) -> float:
    """The largest time the model was trained at (DDPM: level k = 0, t = 1 - 1 / T)."""
    t = recipe.get("times", {})
    kind = t.get("kind", "uniform")
    if kind == "ddpm":
        return 1.0 - 1.0 / int(t.get("levels", 1000))
    return 1.0 if kind == "levels" else float(t.get("t_max", 1.0))


def check_compatible(recipe: dict, sampler: str) -> None:
    """Refuse a sampler the trained model cannot drive, with the reason.

    Score-based, ancestral and exponential-integrator samplers (ddim, ddpm, dpm_solver) convert
    the prediction to a score or to (x1, eps), which DESIGN.md section 2 allows only for a
    Gaussian reference independent of the data: not for OT / entropic couplings, bridges or
    reflow pairs. energy_langevin needs an energy model.
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
    if sampler in ("dpm_solver", "dpm_solver_3m"):
        sched_opts = {k: v for k, v in recipe["schedule"].items() if k != "name"}
        spacing = opts.pop("spacing", DPM_SOLVER_GRID["spacing"])
        final_step = opts.pop("final_step", DPM_SOLVER_GRID["final_step"])
        stop = _t_last_trained(recipe)
        if spacing == "logsnr":
            stop = min(stop, LOGSNR_T_STOP)
        grid = solver_grid(budget, get_schedule(sched, **sched_opts), spacing=spacing,
                           stop=stop, end=1.0, final_step=final_step)
        return grid, opts
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
