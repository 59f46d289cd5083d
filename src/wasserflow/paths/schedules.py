"""Noise schedules of affine paths X_t = alpha_t X_1 + sigma_t X_0 on the clock t in [0, 1].

A schedule is a frozen dataclass; ``schedule(t)`` returns a :class:`ScheduleOutput` with
alpha_t, sigma_t and their t-derivatives, each of the shape of t (anchor: the ``Scheduler`` of
facebookresearch/flow_matching). t = 0 is the reference (noise), t = 1 the data.

* :class:`LinearSchedule`: alpha = t, sigma = 1 - t (rectified flow / OT flow matching).
* :class:`VPSchedule`: alpha = sqrt(abar(1 - t)), sigma = sqrt(1 - abar(1 - t)),
  abar(s) = exp(-int_0^s beta), beta(u) = beta_min + u (beta_max - beta_min) (score-SDE VP).
* :class:`CosineSchedule`: improved DDPM (Nichol & Dhariwal 2021) in continuous time,
  abar(s) = f(s) / f(0), f(s) = cos(((s + offset) / (1 + offset)) pi / 2)^2.
* :class:`DDPMDiscreteSchedule`: DDPM's own table abar_k (linear betas 1e-4..0.02 or the
  improved-DDPM cosine betas, as diffusers builds them), placed at t_k = 1 - (k + 1) / T and
  interpolated linearly in log abar in between (abar = 1 at t = 1).
* :class:`VESchedule`: alpha = 1, sigma = sigma_min (sigma_max / sigma_min)^(1 - t) (NCSN/SMLD);
  its reference is N(0, sigma_max^2 I).

``reference_std`` is the standard deviation of the reference measure a generation starts from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .clock import checked_time


@dataclass(frozen=True)
class ScheduleOutput:
    """alpha_t, sigma_t, d alpha_t / dt, d sigma_t / dt (tensors of the shape of t)."""

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor

    @property
    def log_snr(self) -> Tensor:
        """lambda_t = log(alpha_t / sigma_t): -inf where alpha = 0, +inf where sigma = 0."""
        return torch.log(self.alpha) - torch.log(self.sigma)


class Schedule:
    """Base class: subclasses implement ``_coefficients(t)`` for a checked float tensor t."""

    reference_std: float = 1.0

    def __call__(self, t: Tensor | float) -> ScheduleOutput:
        return self._coefficients(checked_time(t))

    def at(self, t: Tensor) -> ScheduleOutput:
        """The schedule at a float tensor of times already known to lie in [0, 1], without the
        clock check of ``__call__`` (its reductions cost more than a linear schedule itself):
        for hot paths whose times come from a checked distribution (the training loss)."""
        return self._coefficients(t)

    def _coefficients(self, t: Tensor) -> ScheduleOutput:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """alpha_t = t, sigma_t = 1 - t: the straight interpolant of rectified flow and OT-CFM."""

    def _coefficients(self, t: Tensor) -> ScheduleOutput:
        one = torch.ones_like(t)
        return ScheduleOutput(alpha=t, sigma=1.0 - t, d_alpha=one, d_sigma=-one)


def _vp_from_log_abar(log_abar: Tensor, d_log_abar_dt: Tensor) -> ScheduleOutput:
    """alpha = sqrt(abar), sigma = sqrt(1 - abar) and derivatives from log abar and its t-slope.

    d sigma / dt is -inf at t = 1 where sigma = 0 (the VP path is not Lipschitz there).
    """
    alpha = torch.exp(0.5 * log_abar)
    sigma = torch.sqrt(-torch.expm1(log_abar))
    d_alpha = 0.5 * alpha * d_log_abar_dt
    d_sigma = -(alpha**2) * d_log_abar_dt / (2.0 * sigma)
    return ScheduleOutput(alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=d_sigma)


@dataclass(frozen=True)
class VPSchedule(Schedule):
    """Continuous VP schedule (Song et al. 2021), the T -> inf limit of DDPM's linear betas.

    With s = 1 - t: log abar(s) = -(beta_min s + (beta_max - beta_min) s^2 / 2),
    d log abar / dt = beta(s) = beta_min + s (beta_max - beta_min).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        if not (0 <= self.beta_min <= self.beta_max) or self.beta_max <= 0:
            raise ValueError("VPSchedule needs 0 <= beta_min <= beta_max and beta_max > 0")

    def beta(self, s: Tensor) -> Tensor:
        """beta(s) on the diffusion clock s = 1 - t."""
        return self.beta_min + s * (self.beta_max - self.beta_min)

    def _coefficients(self, t: Tensor) -> ScheduleOutput:
        s = 1.0 - t
        log_abar = -(self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2)
        return _vp_from_log_abar(log_abar, self.beta(s))


@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """Improved-DDPM cosine schedule in continuous time (Nichol & Dhariwal 2021, eq. 17).

    alpha_t = cos(theta(s)) / cos(theta(0)), theta(s) = (s + offset) / (1 + offset) * pi / 2,
    s = 1 - t; sigma_t = sqrt(1 - alpha_t^2). offset = 0 gives alpha = sin(pi t / 2),
    sigma = cos(pi t / 2) (the trigonometric interpolant). alpha_0 = 0 exactly.
    """

    offset: float = 0.008

    def __post_init__(self) -> None:
        if not 0 <= self.offset < 1:
            raise ValueError(f"CosineSchedule offset must lie in [0, 1), got {self.offset}")

    def _coefficients(self, t: Tensor) -> ScheduleOutput:
        c = math.pi / (2.0 * (1.0 + self.offset))
        theta = (1.0 - t + self.offset) * c
        cos0 = math.cos(self.offset * c)
        alpha = (torch.cos(theta) / cos0).clamp(0.0, 1.0)
        d_alpha = torch.sin(theta) * c / cos0
        sigma = torch.sqrt((1.0 - alpha**2).clamp_min(0.0))
        d_sigma = -alpha * d_alpha / sigma
        return ScheduleOutput(alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=d_sigma)


def ddpm_alphas_cumprod(
    num_train_timesteps: int = 1000,
    kind: str = "linear",
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    max_beta: float = 0.999,
) -> Tensor:
    """DDPM's abar_k = prod_{i <= k} (1 - beta_i), k = 0..T-1, float64.

    kind "linear": beta_i = linspace(beta_start, beta_end, T) (Ho et al. 2020);
    kind "cosine": beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta), f the improved-DDPM cosine
    (diffusers' "squaredcos_cap_v2").
    """
    T = int(num_train_timesteps)
    if T < 1:
        raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
    if kind == "linear":
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError("linear DDPM betas need 0 < beta_start <= beta_end < 1")
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    elif kind == "cosine":
        i = torch.arange(T, dtype=torch.float64)

        def f(u: Tensor) -> Tensor:
            return torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = (1.0 - f((i + 1) / T) / f(i / T)).clamp(max=max_beta)
    else:
        raise ValueError(f"unknown DDPM schedule kind {kind!r}: choose 'linear' or 'cosine'")
    return torch.cumprod(1.0 - betas, dim=0)


@dataclass(frozen=True)
class DDPMDiscreteSchedule(Schedule):
    """DDPM's discrete abar_k placed on the clock at t_k = 1 - (k + 1) / T.

    Between steps log abar is linear in t (abar = 1 at t = 1), so d alpha / dt and d sigma / dt
    are the slopes of the segment [t_k, t_{k-1}) (right-continuous in k). Build from a table
    with :meth:`from_alphas_cumprod` (e.g. a diffusers scheduler's ``alphas_cumprod``).
    """

    num_train_timesteps: int = 1000
    kind: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    alphas_cumprod: Tensor | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = self.alphas_cumprod
        if table is None:
            table = ddpm_alphas_cumprod(
                self.num_train_timesteps, self.kind, self.beta_start, self.beta_end
            )
        table = torch.as_tensor(table, dtype=torch.float64).reshape(-1)
        if table.shape[0] != self.num_train_timesteps:
            raise ValueError(
                f"alphas_cumprod has {table.shape[0]} entries for T = {self.num_train_timesteps}"
            )
        if not ((table > 0).all() and (table <= 1).all() and (torch.diff(table) <= 0).all()):
            raise ValueError("alphas_cumprod must be non-increasing and lie in (0, 1]")
        object.__setattr__(self, "alphas_cumprod", table)
        # log abar at u = k + 1 = 0..T (u = 0 is the data, abar = 1)
        logs = torch.cat([torch.zeros(1, dtype=torch.float64), torch.log(table)])
        object.__setattr__(self, "_log_table", logs)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: Tensor) -> DDPMDiscreteSchedule:
        a = torch.as_tensor(alphas_cumprod, dtype=torch.float64).reshape(-1)
        return cls(num_train_timesteps=a.shape[0], kind="table", alphas_cumprod=a)

    def _coefficients(self, t: Tensor) -> ScheduleOutput:
        T = self.num_train_timesteps
        # u = k + 1 = T (1 - t) in [0, T]; log abar at u = 0 is 0 (the data)
        logs = self._log_table.to(t.device)
        u = (T * (1.0 - t.to(torch.float64))).clamp(0.0, float(T))
        j = torch.floor(u).clamp(max=T - 1).long()
        slope_u = logs[j + 1] - logs[j]
        log_abar = logs[j] + (u - j) * slope_u
        out = _vp_from_log_abar(log_abar, -T * slope_u)
        return ScheduleOutput(
            *(v.to(t.dtype) for v in (out.alpha, out.sigma, out.d_alpha, out.d_sigma))
        )


@dataclass(frozen=True)
class VESchedule(Schedule):
    """Variance exploding (NCSN / SMLD, Song & Ermon 2019): alpha = 1,
    sigma_t = sigma_min (sigma_max / sigma_min)^(1 - t), d sigma / dt = -sigma_t log(sigma_max /
    sigma_min). The reference is N(0, sigma_max^2 I); choose sigma_max with
    :func:`ve_sigma_max_from_data` (Song & Ermon 2020, technique 1).
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __post_init__(self) -> None:
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError("VESchedule needs 0 < sigma_min < sigma_max")

    @property
    def reference_std(self) -> float:  # type: ignore[override]
        return float(self.sigma_max)

    def _coefficients(self, t: Tensor) -> ScheduleOutput:
        log_ratio = math.log(self.sigma_max / self.sigma_min)
        sigma = self.sigma_min * torch.exp((1.0 - t) * log_ratio)
        return ScheduleOutput(
            alpha=torch.ones_like(t),
            sigma=sigma,
            d_alpha=torch.zeros_like(t),
            d_sigma=-log_ratio * sigma,
        )


def ve_sigma_max_from_data(x: Tensor) -> float:
    """max_{i,j} |x_i - x_j|: the largest pairwise Euclidean distance of a data batch (n, ...).

    Song & Ermon (2020), "Improved techniques for training score-based generative models",
    technique 1: sigma_max should be as large as the maximum pairwise distance in the data.
    """
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] < 2:
        raise ValueError("x must be a tensor of shape (n, ...) with at least two data points")
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    return float(torch.cdist(x, x).max())


SCHEDULES: dict[str, type[Schedule]] = {
    "linear": LinearSchedule,
    "vp": VPSchedule,
    "cosine": CosineSchedule,
    "ddpm": DDPMDiscreteSchedule,
    "ve": VESchedule,
}


def get_schedule(name: str, **options) -> Schedule:
    """Build a schedule by name (one of :data:`SCHEDULES`) with its keyword options."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}: choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[name](**options)
