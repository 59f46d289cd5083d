"""A diffusers scheduler configuration on wasserflow's clock: its abar table, its
parametrisation, and the map from clock times to the timesteps its model was trained on.

diffusers (von Platen et al., huggingface/diffusers) writes a noise schedule as a
``scheduler_config.json``; every DDPM-family scheduler builds the same table from it:

    beta_k, k = 0..T-1:  "linear"             linspace(beta_start, beta_end, T)
                         "scaled_linear"      linspace(sqrt(beta_start), sqrt(beta_end), T)^2
                         "squaredcos_cap_v2"  min(1 - f((k+1)/T) / f(k/T), 0.999),
                                              f(u) = cos((u + 0.008) / 1.008 pi / 2)^2
                                              (Nichol & Dhariwal 2021, eq. 17)
                         or ``trained_betas`` as given,
    abar_k = prod_{i <= k} (1 - beta_i),

in float32 (the arithmetic the model was trained with; :func:`alphas_cumprod` reproduces it,
and ``dtype=torch.float64`` gives the exact values). On the clock, DDPM's step k is
t_k = 1 - (k + 1) / T (docs/design.md section 2) and the path is
:class:`~wasserflow.paths.DDPMDiscreteSchedule` over that table.

**Timesteps between the steps.** At t_k the model is called with the integer timestep k. At
other clock times it is called with the fractional timestep whose noise level
s = sigma / alpha = sqrt((1 - abar) / abar) is that of t, interpolated linearly in log s
between the table's entries: the rule by which diffusers' Euler, Heun and other Karras-type
schedulers turn a noise level into the timestep they feed the model (``_sigma_to_t``). It is
the identity at the integer steps, monotone, and clamped to [0, T - 1].

Prediction types: "epsilon" -> "epsilon", "v_prediction" -> "v_prediction" (Salimans & Ho
2022; wasserflow's convention equals diffusers' ``get_velocity``), "sample" -> "x1".
``clip_sample`` and ``thresholding`` are sampling heuristics of diffusers' schedulers, not part
of the model: the field is the model's own prediction, unclipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..paths import AffinePath, DDPMDiscreteSchedule

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTIONS = {"epsilon": "epsilon", "v_prediction": "v_prediction", "sample": "x1"}
DEFAULTS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "trained_betas": None,
    "prediction_type": "epsilon",
}
"""diffusers' defaults (DDPMScheduler, DDIMScheduler, ...) for keys a config leaves out."""


def read_config(config: Mapping[str, Any] | str | Path | Any, where: str = "") -> dict[str, Any]:
    """A scheduler configuration as a dict with :data:`DEFAULTS` filled in: from a mapping, a
    ``scheduler_config.json`` (or the folder holding one), or a diffusers scheduler (its
    ``.config``)."""
    if hasattr(config, "config") and not isinstance(config, (str, Path, Mapping)):
        config = dict(config.config)
    if isinstance(config, (str, Path)):
        p = Path(config)
        if p.is_dir():
            p = p / "scheduler_config.json"
        if not p.is_file():
            raise InputError(f"{p}: no scheduler config there (a diffusers scheduler_config.json)")
        try:
            config = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{p} is not a JSON scheduler config ({e})") from e
        where = where or str(p)
    if not isinstance(config, Mapping):
        raise InputError(
            "scheduler_config must be a dict, a scheduler_config.json or a diffusers scheduler"
        )
    out = {**DEFAULTS, **config}
    for k, v in DEFAULTS.items():
        if out[k] is None:
            out[k] = v
    out["_where"] = where or "the scheduler config"
    return out


def _betas(cfg: Mapping[str, Any], dtype: torch.dtype) -> Tensor:
    where = cfg.get("_where", "the scheduler config")
    T = cfg["num_train_timesteps"]
    if isinstance(T, bool) or not isinstance(T, int) or T < 2:
        raise InputError(f"{where}: num_train_timesteps must be an integer >= 2, got {T!r}")
    if cfg.get("trained_betas") is not None:
        betas = torch.tensor(cfg["trained_betas"], dtype=dtype).reshape(-1)
        if betas.shape[0] != T:
            raise InputError(
                f"{where}: trained_betas has {betas.shape[0]} entries for num_train_timesteps = {T}"
            )
        return betas
    kind = cfg["beta_schedule"]
    b0, b1 = float(cfg["beta_start"]), float(cfg["beta_end"])
    if kind == "linear":
        return torch.linspace(b0, b1, T, dtype=dtype)
    if kind == "scaled_linear":
        return torch.linspace(b0**0.5, b1**0.5, T, dtype=dtype) ** 2
    if kind == "squaredcos_cap_v2":

        def f(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor(
            [min(1 - f((k + 1) / T) / f(k / T), 0.999) for k in range(T)], dtype=dtype
        )
    raise InputError(
        f"{where}: beta_schedule {kind!r} is not supported: choose one of "
        f"{', '.join(BETA_SCHEDULES)} or give trained_betas"
    )


def alphas_cumprod(config: Mapping[str, Any], dtype: torch.dtype = torch.float32) -> Tensor:
    """abar_k of a scheduler config (module doc), computed in ``dtype`` (float32: diffusers'
    own arithmetic, bit for bit; float64: the exact values)."""
    cfg = read_config(config) if "_where" not in config else config
    where = cfg["_where"]
    if cfg.get("rescale_betas_zero_snr"):
        raise InputError(
            f"{where}: rescale_betas_zero_snr makes abar = 0 at the last step (zero terminal "
            "SNR), where no finite noise level exists; wasserflow's DDPM path needs abar > 0"
        )
    betas = _betas(cfg, dtype)
    table = torch.cumprod(1.0 - betas, dim=0)
    if not (torch.isfinite(table).all() and (table > 0).all() and (betas >= 0).all()):
        raise InputError(f"{where}: the betas must lie in [0, 1) (abar_k > 0 for every step)")
    return table


def prediction_of(config: Mapping[str, Any]) -> str:
    """wasserflow's name of the config's ``prediction_type``."""
    kind = config.get("prediction_type", "epsilon")
    if kind not in PREDICTIONS:
        raise InputError(
            f"{config.get('_where', 'the scheduler config')}: prediction_type {kind!r} is not "
            f"supported: choose one of {', '.join(PREDICTIONS)}"
        )
    return PREDICTIONS[kind]


@dataclass(frozen=True)
class DiffusersClock:
    """The clock of a diffusers model: its path on t and the timesteps it is called with.

    Attributes:
        table: abar_k, k = 0..T-1 (float64 holding the float32 values the model was trained
            with).
        path: the affine path over ``table`` (:class:`DDPMDiscreteSchedule`).
        prediction: wasserflow's parametrisation of the model output.
    """

    table: Tensor
    prediction: str
    path: AffinePath = field(init=False, repr=False)
    _log_sigmas: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = torch.as_tensor(self.table, dtype=torch.float64).reshape(-1)
        object.__setattr__(self, "table", table)
        object.__setattr__(
            self, "path", AffinePath(DDPMDiscreteSchedule.from_alphas_cumprod(table))
        )
        log_s = 0.5 * (torch.log1p(-table) - torch.log(table))
        object.__setattr__(self, "_log_sigmas", log_s.numpy())

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str | Path | Any) -> DiffusersClock:
        cfg = read_config(config)
        return cls(alphas_cumprod(cfg).to(torch.float64), prediction_of(cfg))

    @property
    def num_train_timesteps(self) -> int:
        return int(self.table.shape[0])

    @property
    def sigmas(self) -> Tensor:
        """s_k = sqrt((1 - abar_k) / abar_k), k = 0..T-1 (float64): diffusers' noise levels."""
        return torch.from_numpy(np.exp(self._log_sigmas))

    def time_of_step(self, k: Tensor) -> Tensor:
        """t_k = 1 - (k + 1) / T (float64; k may be fractional)."""
        return 1.0 - (torch.as_tensor(k, dtype=torch.float64) + 1.0) / self.num_train_timesteps

    def timestep(self, t: Tensor) -> Tensor:
        """The (float64) timestep the model is called with at clock times t (module doc):
        k exactly at t_k, log-noise-level interpolation in between, clamped to [0, T - 1]."""
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).cpu()
        c = self.path.coefficients(t)
        log_s = (torch.log(c.sigma) - torch.log(c.alpha)).numpy()
        steps = np.arange(self.num_train_timesteps, dtype=np.float64)
        # log s = -inf at t = 1 (sigma = 0): np.interp clamps it to k = 0, as diffusers does
        k = np.interp(np.nan_to_num(log_s, neginf=-1e300), self._log_sigmas, steps)
        near = np.round(k)
        k = np.where(np.abs(k - near) < 1e-6, near, k)
        return torch.from_numpy(k)

    def time_at_sigma(self, sigma: Tensor) -> Tensor:
        """The clock times (float64) whose noise level s = sigma_t / alpha_t is ``sigma``
        (s = 0 is t = 1)."""
        from ..samplers import time_at_log_snr

        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        out = torch.ones_like(s)
        pos = s > 0
        if pos.any():
            out[pos] = time_at_log_snr(self.path.coefficients, -torch.log(s[pos]), 0.0, 1.0)
        return out
