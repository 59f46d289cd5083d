"""diffusers' schedulers' timesteps as wasserflow clock grids, to compare step for step.

:func:`scheduler_grid` computes, from a scheduler's name (or instance) and configuration, what
its ``set_timesteps(K)`` produces (``timesteps`` and, where it has them, ``sigmas``, as the
scheduler holds them) and the clock grid on which a registered wasserflow sampler takes the same
steps on the same model (:class:`~wasserflow.interop.DiffusersClock`: step k is
t_k = 1 - (k + 1) / T, a noise level s = sigma / alpha the time where the path has it):

=============================== ============ ================================================
scheduler                       sampler      grid
=============================== ============ ================================================
DDIMScheduler                   ddim         (K, 2) steps k -> k - T // K (``diffusers_steps``)
DDPMScheduler                   ddpm         (K, 2) steps k_i -> k_{i+1}, the last to t = 1
DPMSolverMultistepScheduler     dpm_solver   t_{k_i}, then t = 1 (final sigma "zero") or
                                             t_0 = 1 - 1/T ("sigma_min"); order 2 or 3
UniPCMultistepScheduler         unipc        as DPM-Solver (bh2, data prediction, corrector)
EulerDiscreteScheduler          ddim         the K Karras levels, then s = 0 or s_0
HeunDiscreteScheduler           edm_heun     the K Karras levels, then s = 0
=============================== ============ ================================================

Timestep spacings "linspace", "leading" (with ``steps_offset``) and "trailing" (Lin et al.
2024, "Common diffusion noise schedules and sample steps are flawed", Table 2), DPM-Solver's
``lambda_min_clipped``; Euler and Heun need ``use_karras_sigmas=True`` (Karras et al. 2022,
eq. 5, rho = 7, between the noise levels of the spacing's first and last timesteps, or the
config's ``sigma_min`` / ``sigma_max``), whose fractional timesteps are the log-noise-level
interpolation :meth:`DiffusersClock.timestep` also uses. Settings under which a scheduler's
steps are not those of a wasserflow sampler (Karras sigmas in DPM-Solver or UniPC, whose
timesteps are rounded away from their sigmas; Lu lambdas; exponential, beta or flow sigmas;
other solver types) are refused with the reason.

diffusers 0.42.1's "trailing" spacing can emit K + 1 timesteps, the last -1 (see
:mod:`wasserflow.samplers.grids`); ``timesteps`` reproduces that and ``grid`` drops it.

The arithmetic is diffusers' (float32 tables, float64 numpy in between), so ``timesteps`` and
``sigmas`` equal the scheduler's own (tests/interop/test_scheduler_grids.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..samplers import diffusers_steps, diffusers_timesteps
from .diffusers_schedule import DiffusersClock, alphas_cumprod, read_config

KARRAS_RHO = 7.0
SAMPLER_OF = {
    "DDIMScheduler": "ddim",
    "DDPMScheduler": "ddpm",
    "DPMSolverMultistepScheduler": "dpm_solver",
    "UniPCMultistepScheduler": "unipc",
    "EulerDiscreteScheduler": "ddim",
    "HeunDiscreteScheduler": "edm_heun",
}
"""The wasserflow sampler that takes each supported scheduler's steps."""
ALIASES = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "dpm_solver": "DPMSolverMultistepScheduler",
    "dpmsolver": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "DDIMScheduler": {"timestep_spacing": "leading", "steps_offset": 0, "set_alpha_to_one": True},
    "DDPMScheduler": {"timestep_spacing": "leading", "steps_offset": 0},
    "DPMSolverMultistepScheduler": {
        "timestep_spacing": "linspace",
        "steps_offset": 0,
        "solver_order": 2,
        "algorithm_type": "dpmsolver++",
        "solver_type": "midpoint",
        "lower_order_final": True,
        "euler_at_final": False,
        "final_sigmas_type": "zero",
        "lambda_min_clipped": -math.inf,
    },
    "UniPCMultistepScheduler": {
        "timestep_spacing": "linspace",
        "steps_offset": 0,
        "solver_order": 2,
        "solver_type": "bh2",
        "predict_x0": True,
        "lower_order_final": True,
        "disable_corrector": [],
        "final_sigmas_type": "zero",
    },
    "EulerDiscreteScheduler": {
        "timestep_spacing": "linspace",
        "steps_offset": 0,
        "use_karras_sigmas": False,
        "final_sigmas_type": "zero",
        "interpolation_type": "linear",
        "timestep_type": "discrete",
        "sigma_min": None,
        "sigma_max": None,
    },
    "HeunDiscreteScheduler": {
        "timestep_spacing": "linspace",
        "steps_offset": 0,
        "use_karras_sigmas": False,
    },
}
_OTHER_SIGMAS = ("use_lu_lambdas", "use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas")


@dataclass(frozen=True)
class SchedulerGrid:
    """What ``scheduler.set_timesteps(num_inference_steps)`` produces, and the same steps on
    wasserflow's clock.

    Attributes:
        scheduler: the diffusers class name.
        num_inference_steps: K.
        timesteps: the scheduler's ``timesteps`` (int64, or float32 for Euler / Heun).
        sigmas: its ``sigmas`` (float32, with the final one), or None (DDIM, DDPM).
        grid: the clock grid (float64; (K + 1,) times or (K, 2) steps) for ``sampler``.
        sampler: the registered wasserflow sampler that takes these steps.
        options: that sampler's options matching the scheduler's (order, lower_order_final).
    """

    scheduler: str
    num_inference_steps: int
    timesteps: Tensor
    sigmas: Tensor | None
    grid: Tensor
    sampler: str
    options: dict[str, Any] = field(default_factory=dict)


def _name_and_config(scheduler, config) -> tuple[str, dict[str, Any]]:
    if isinstance(scheduler, str):
        name = ALIASES.get(scheduler, scheduler)
        given = {} if config is None else read_config(config)
    else:  # a diffusers scheduler instance
        name = type(scheduler).__name__
        given = read_config(scheduler if config is None else config)
    if name not in SAMPLER_OF:
        raise InputError(
            f"scheduler {name!r} is not supported: choose one of {', '.join(SAMPLER_OF)} "
            f"(or {', '.join(ALIASES)})"
        )
    cfg = read_config({**_DEFAULTS[name], **{k: v for k, v in given.items() if k != "_where"}})
    cfg["_where"] = given.get("_where", f"the {name} config")
    return name, cfg


def _refuse(cfg: Mapping[str, Any], name: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if cfg.get(key):
            raise InputError(
                f"{cfg['_where']}: {name} with {key}=True takes steps that no wasserflow "
                "sampler reproduces on one clock; use its default sigmas"
            )


def _dpm_like_timesteps(cfg: Mapping[str, Any], n: int, last: int) -> np.ndarray:
    """DPM-Solver's / UniPC's integer timesteps (K of them; trailing may give K + 1)."""
    T, spacing = cfg["num_train_timesteps"], cfg["timestep_spacing"]
    if spacing == "linspace":
        return np.linspace(0, last - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
    if spacing == "leading":
        ratio = last // (n + 1)
        ts = (np.arange(0, n + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64)
        return ts + int(cfg["steps_offset"])
    if spacing == "trailing":
        return np.arange(last, 0, -T / n).round().copy().astype(np.int64) - 1
    raise InputError(
        f"{cfg['_where']}: timestep_spacing {spacing!r}: choose linspace, leading or trailing"
    )


def _sigma_table(table32: Tensor) -> np.ndarray:
    """diffusers' float32 noise levels ((1 - abar) / abar)^(1/2), k = 0..T-1."""
    return np.array(((1 - table32) / table32) ** 0.5)


def _final_sigma(cfg: Mapping[str, Any], table32: Tensor) -> float:
    kind = cfg.get("final_sigmas_type", "zero")
    if kind == "zero":
        return 0.0
    if kind == "sigma_min":
        return float(((1 - table32[0]) / table32[0]) ** 0.5)
    raise InputError(f"{cfg['_where']}: final_sigmas_type {kind!r}: choose zero or sigma_min")


def _multistep(name: str, cfg: dict[str, Any], n: int, table32: Tensor, clock: DiffusersClock):
    _refuse(cfg, name, ("use_karras_sigmas", *_OTHER_SIGMAS))
    order = cfg["solver_order"]
    if name == "DPMSolverMultistepScheduler":
        if cfg["algorithm_type"] != "dpmsolver++" or cfg["solver_type"] != "midpoint":
            raise InputError(
                f"{cfg['_where']}: wasserflow's dpm_solver is DPM-Solver++ with the "
                f"midpoint solver type, not algorithm_type={cfg['algorithm_type']!r}, "
                f"solver_type={cfg['solver_type']!r}"
            )
        if order not in (2, 3) or cfg["euler_at_final"]:
            raise InputError(
                f"{cfg['_where']}: wasserflow's dpm_solver has orders 2 and 3 and no euler_at_final"
            )
        T = cfg["num_train_timesteps"]
        lam = torch.log(table32**0.5) - torch.log((1 - table32) ** 0.5)
        clipped = int(torch.searchsorted(torch.flip(lam, [0]), float(cfg["lambda_min_clipped"])))
        last = T - clipped
        sampler, options = "dpm_solver", {"order": order}
    else:
        if cfg["solver_type"] != "bh2" or not cfg["predict_x0"] or order not in (1, 2, 3):
            raise InputError(
                f"{cfg['_where']}: wasserflow's unipc is UniPC bh2 with data prediction, "
                f"orders 1 to 3, not solver_type={cfg['solver_type']!r}, "
                f"predict_x0={cfg['predict_x0']!r}, solver_order={order!r}"
            )
        if cfg["disable_corrector"]:
            raise InputError(
                f"{cfg['_where']}: wasserflow's unipc applies the corrector at every step "
                "(disable_corrector must be empty)"
            )
        last = cfg["num_train_timesteps"]
        sampler, options = "unipc", {"order": order}
    options["lower_order_final"] = bool(cfg["lower_order_final"])
    ks = _dpm_like_timesteps(cfg, n, last)
    sig = np.interp(ks, np.arange(table32.shape[0]), _sigma_table(table32))
    final = _final_sigma(cfg, table32)
    sigmas = torch.from_numpy(np.concatenate([sig, [final]]).astype(np.float32))
    keep = torch.from_numpy(ks[ks >= 0].copy())
    end = 1.0 if final == 0.0 else 1.0 - 1.0 / clock.num_train_timesteps  # t_0: s = s_0
    grid = torch.cat([clock.time_of_step(keep), torch.tensor([end], dtype=torch.float64)])
    return torch.from_numpy(ks), sigmas, grid, sampler, options


def _karras(name: str, cfg: dict[str, Any], n: int, table32: Tensor, clock: DiffusersClock):
    if not cfg.get("use_karras_sigmas"):
        raise InputError(
            f"{cfg['_where']}: {name} is reproduced with use_karras_sigmas=True only "
            "(compare DDIM, DPM-Solver or UniPC for its other spacings)"
        )
    _refuse(cfg, name, _OTHER_SIGMAS)
    if cfg.get("interpolation_type", "linear") != "linear" or (
        cfg.get("timestep_type", "discrete") != "discrete"
    ):
        raise InputError(
            f"{cfg['_where']}: {name} needs interpolation_type 'linear' and timestep_type "
            "'discrete'"
        )
    T, spacing = cfg["num_train_timesteps"], cfg["timestep_spacing"]
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, n, dtype=np.float32)[::-1].copy()
    elif spacing == "leading":
        ts = (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.float32)
        ts += cfg["steps_offset"]
    elif spacing == "trailing":
        ts = np.arange(T, 0, -T / n).round().copy().astype(np.float32) - 1
    else:
        raise InputError(
            f"{cfg['_where']}: timestep_spacing {spacing!r}: choose linspace, leading or trailing"
        )
    table_sigmas = _sigma_table(table32)
    log_sigmas = np.log(table_sigmas)
    in_sigmas = np.interp(ts, np.arange(T), table_sigmas)
    s_min = cfg.get("sigma_min") if cfg.get("sigma_min") is not None else in_sigmas[-1].item()
    s_max = cfg.get("sigma_max") if cfg.get("sigma_max") is not None else in_sigmas[0].item()
    ramp = np.linspace(0, 1, n)
    lo, hi = s_min ** (1 / KARRAS_RHO), s_max ** (1 / KARRAS_RHO)
    levels = (hi + ramp * (lo - hi)) ** KARRAS_RHO
    steps = np.interp(np.log(np.maximum(levels, 1e-10)), log_sigmas, np.arange(T))
    final = 0.0 if name == "HeunDiscreteScheduler" else _final_sigma(cfg, table32)
    sig32 = np.concatenate([levels, [final]]).astype(np.float32)
    grid = clock.time_at_sigma(torch.from_numpy(sig32.astype(np.float64)))
    timesteps = torch.from_numpy(steps.astype(np.float32))
    sigmas = torch.from_numpy(sig32)
    if name == "HeunDiscreteScheduler":
        timesteps = torch.cat([timesteps[:1], timesteps[1:].repeat_interleave(2)])
        sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
    return timesteps, sigmas, grid, SAMPLER_OF[name], {}


def scheduler_grid(scheduler, num_inference_steps: int, config=None) -> SchedulerGrid:
    """The timesteps, sigmas and wasserflow clock grid of a diffusers scheduler (module doc).

    Args:
        scheduler: a diffusers scheduler instance (its class and config are used), its class
            name ("DPMSolverMultistepScheduler", ...) or a short name (ddim, ddpm, dpm_solver,
            unipc, euler, heun).
        num_inference_steps: K, as passed to ``set_timesteps``.
        config: the scheduler config (a dict, a scheduler_config.json or a scheduler); the
            scheduler's own defaults fill in what it leaves out.

    Sample a wrapped model with ``model.sample(n, sampler=g.sampler, grid=g.grid,
    options=g.options)`` (:meth:`~wasserflow.interop.ExternalModel.sample`) or call the
    sampler directly: ``get_sampler(g.sampler)(field, x0, g.grid, **g.options)``.
    """
    name, cfg = _name_and_config(scheduler, config)
    n = num_inference_steps
    T = cfg["num_train_timesteps"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= T:
        raise InputError(
            f"num_inference_steps must be an integer in [1, {T}], got {num_inference_steps!r}"
        )
    table32 = alphas_cumprod(cfg, torch.float32)
    clock = DiffusersClock(table32.to(torch.float64), "epsilon")
    spacing = cfg["timestep_spacing"]
    if name in ("DDIMScheduler", "DDPMScheduler"):
        kind = "ddim" if name == "DDIMScheduler" else "ddpm"
        try:
            timesteps = diffusers_timesteps(n, T, spacing, int(cfg["steps_offset"]))
            grid = diffusers_steps(
                n,
                scheduler=kind,
                num_train_timesteps=T,
                spacing=spacing,
                set_alpha_to_one=bool(cfg.get("set_alpha_to_one", True)),
                steps_offset=int(cfg["steps_offset"]),
            )
        except ValueError as e:
            raise InputError(f"{cfg['_where']}: {e}") from e
        return SchedulerGrid(name, n, timesteps, None, grid, SAMPLER_OF[name], {})
    make = (
        _multistep
        if name in ("DPMSolverMultistepScheduler", "UniPCMultistepScheduler")
        else _karras
    )
    timesteps, sigmas, grid, sampler, options = make(name, cfg, n, table32, clock)
    if grid.dim() == 1 and not (torch.diff(grid) > 0).all():
        raise InputError(
            f"{name} with {n} steps visits a noise level twice (its grid is not strictly "
            "increasing): choose fewer steps"
        )
    return SchedulerGrid(name, n, timesteps, sigmas, grid, sampler, options)
