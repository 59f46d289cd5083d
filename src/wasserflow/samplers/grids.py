"""Time grids: pure functions returning clock times t in [0, 1] (t = 0 noise, t = 1 data).

* :func:`uniform_grid`: t_k = start + k (end - start) / K.
* :func:`diffusers_timesteps`: the integer timesteps diffusers' schedulers visit for a number
  of inference steps and a ``timestep_spacing`` ("leading", "trailing", "linspace"; Lin et
  al. 2024, "Common diffusion noise schedules and sample steps are flawed", Table 2).
* :func:`diffusers_steps`: the (K, 2) explicit (t_from, t_to) steps of diffusers' DDPMScheduler
  (each timestep steps to the next one, the last to alpha = 1) or DDIMScheduler (each timestep
  k steps to k - T // K, below 0 to the "final alpha": 1 with ``set_alpha_to_one`` else
  abar_0). DDIM's steps do not chain for trailing/linspace spacing when K does not divide T;
  the explicit steps reproduce that exactly.
* :func:`solver_grid`: K evaluation times spaced uniformly in t or in the log-SNR
  lambda = log(alpha / sigma) from ``start`` toward ``stop`` (the last trained time), then a
  jump to ``end`` (t = 1: sigma = 0), as diffusers' DPMSolverMultistepScheduler ("linspace"
  timesteps, final sigma "zero"; ``final_step=1``) and Lu et al. (2022, "logSNR" steps) place
  them; ``final_step < 1`` moves the last evaluation closer to the data.
* :func:`karras_grid`: the noise levels of Karras et al. (2022, "Elucidating the design space
  of diffusion-based generative models", eq. 5), s_i = sigma_t / alpha_t spaced uniformly in
  s^(1/rho), mapped to clock times, then t = 1 (s = 0), for EDM-style samplers.
* :func:`time_at_log_snr`: the clock times where the log-SNR takes given values (bisection).

diffusers 0.42.1 bug: with "trailing" spacing, ``np.arange(T, 0, -T / K)`` yields K + 1 values
for some K (62 counts K <= 1000 at T = 1000, the first K = 61), so set_timesteps emits an extra
timestep -1, whose step reads ``alphas_cumprod[-1]`` (the noisiest entry) by wrap-around.
:func:`diffusers_timesteps` reproduces the list as diffusers builds it; :func:`diffusers_steps`
drops the spurious -1, so its K steps equal diffusers' first K steps.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from wasserflow.paths.clock import ddpm_index_to_time

SPACINGS = ("leading", "trailing", "linspace")
SOLVER_SPACINGS = ("logsnr", "time")
KARRAS_RHO = 7.0  # Karras et al. (2022), eq. 5 and Table 1


def uniform_grid(n_steps: int, start: float = 0.0, end: float = 1.0) -> Tensor:
    """(n_steps + 1,) float64 times from start to end (either direction)."""
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0) or start == end:
        raise ValueError("start and end must be distinct times in [0, 1]")
    return torch.linspace(start, end, int(n_steps) + 1, dtype=torch.float64)


def diffusers_timesteps(
    num_inference_steps: int,
    num_train_timesteps: int = 1000,
    spacing: str = "leading",
    steps_offset: int = 0,
) -> Tensor:
    """The decreasing integer timesteps (LongTensor) diffusers' set_timesteps produces."""
    n, T = int(num_inference_steps), int(num_train_timesteps)
    if n != num_inference_steps or not 1 <= n <= T:
        raise ValueError(
            f"num_inference_steps must be an integer in [1, {T}], got {num_inference_steps!r}"
        )
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    elif spacing == "leading":
        ts = (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.int64) + steps_offset
    elif spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}: choose one of {SPACINGS}")
    return torch.from_numpy(ts)


def diffusers_steps(
    num_inference_steps: int,
    *,
    scheduler: str = "ddim",
    num_train_timesteps: int = 1000,
    spacing: str = "leading",
    set_alpha_to_one: bool = True,
    steps_offset: int = 0,
) -> Tensor:
    """(K, 2) float64 clock steps (t_from, t_to) reproducing diffusers' sampling loop.

    Timestep k is t = 1 - (k + 1) / T; "alpha = 1" (k = -1) is t = 1 and abar_0 is 1 - 1/T.
    ``scheduler`` "ddpm": k_i -> k_{i+1}, last -> t = 1 (DDPMScheduler.previous_timestep).
    ``scheduler`` "ddim": k -> k - T // K, negative -> the final alpha (DDIMScheduler.step).
    """
    T = int(num_train_timesteps)
    ks = diffusers_timesteps(num_inference_steps, T, spacing, steps_offset)
    ks = ks[ks >= 0]  # diffusers' spurious trailing -1 (see the module docstring)
    if scheduler == "ddpm":
        prev = torch.cat([ks[1:], torch.tensor([-1])])
        final = -1
    elif scheduler == "ddim":
        prev = ks - T // int(num_inference_steps)
        final = -1 if set_alpha_to_one else 0
    else:
        raise ValueError(f"unknown scheduler {scheduler!r}: choose 'ddpm' or 'ddim'")
    prev = torch.where(prev < 0, torch.full_like(prev, final), prev)
    return torch.stack([ddpm_index_to_time(ks, T), ddpm_index_to_time(prev, T)], dim=1)


def solver_grid(
    n_steps: int,
    schedule,
    *,
    spacing: str = "time",
    start: float = 0.0,
    stop: float = 1.0,
    end: float = 1.0,
    final_step: float = 1.0,
) -> Tensor:
    """(n_steps + 1,) float64 times t_0 = start < ... < t_{K-1} < t_K = end for multistep
    exponential integrators (:func:`~wasserflow.samplers.dpm_solver.dpm_solver`).

    The K evaluation times are spaced uniformly in t (``spacing="time"``) or in
    lambda(t) = log(alpha_t / sigma_t) (``"logsnr"``, inverted by bisection; needs alpha(start) > 0
    and sigma(stop) > 0) with increment (stop - start) / (K - 1 + final_step), so the last one
    lies ``final_step`` increments before ``stop``; then the grid jumps to ``end``.
    ``final_step=1`` is diffusers' DPMSolverMultistepScheduler ("linspace": K + 1 points from
    start to stop, the last one replaced by end = sigma 0); smaller values move the last
    evaluation toward the data. ``schedule`` maps a float64 tensor of times to a ScheduleOutput
    (a Schedule or ``AffinePath.coefficients``); lambda must increase in t. The field is
    evaluated only at t_0..t_{K-1}, so ``end`` may be t = 1 where sigma = 0 and the model was
    not trained.
    """
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not 0.0 <= start < stop <= end <= 1.0:
        raise ValueError(f"need 0 <= start < stop <= end <= 1, got {start}, {stop}, {end}")
    if not 0.0 < final_step <= 1.0:
        raise ValueError(f"final_step must lie in (0, 1], got {final_step}")
    k = int(n_steps)
    frac = torch.arange(k + 1, dtype=torch.float64) / (k - 1 + final_step)
    if spacing == "time":
        pts = start + (stop - start) * frac
    elif spacing == "logsnr":
        ends = torch.tensor([start, stop], dtype=torch.float64)
        lam0, lam1 = schedule(ends).log_snr.tolist()
        if not (np.isfinite(lam0) and np.isfinite(lam1) and lam0 < lam1):
            raise ValueError(
                f"log-SNR spacing needs a finite, increasing lambda on [{start}, "
                f"{stop}] (got {lam0}, {lam1}): use spacing='time'"
            )
        target = lam0 + (lam1 - lam0) * frac[:k]
        pts = torch.cat(
            [time_at_log_snr(schedule, target, start, stop), torch.zeros(1, dtype=torch.float64)]
        )
        pts[0] = start
    else:
        raise ValueError(
            f"unknown solver grid spacing {spacing!r}: choose one of {SOLVER_SPACINGS}"
        )
    pts[-1] = end
    if not (torch.diff(pts) > 0).all():
        raise ValueError("the grid is not strictly increasing: fewer steps or a wider interval")
    return pts


def time_at_log_snr(schedule, target: Tensor, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    """The float64 times t in [lo, hi] with lambda(t) = log(alpha_t / sigma_t) = ``target``
    (bisection, 80 halvings: below float64 resolution; lambda must increase in t; a target
    outside [lambda(lo), lambda(hi)] gives the nearer end)."""
    target = torch.as_tensor(target, dtype=torch.float64)
    lo_t = torch.full_like(target, float(lo))
    hi_t = torch.full_like(target, float(hi))
    for _ in range(80):
        mid = 0.5 * (lo_t + hi_t)
        below = schedule(mid).log_snr < target
        lo_t, hi_t = torch.where(below, mid, lo_t), torch.where(below, hi_t, mid)
    return 0.5 * (lo_t + hi_t)


def karras_grid(
    n_steps: int,
    schedule,
    *,
    rho: float = KARRAS_RHO,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    stop: float = 1.0,
) -> Tensor:
    """(n_steps + 1,) float64 times of the Karras et al. (2022, eq. 5) noise levels.

    EDM's noise level of an affine path is s_t = sigma_t / alpha_t = exp(-lambda_t). The N =
    ``n_steps`` levels s_i = (s_max^(1/rho) + i / (N - 1) (s_min^(1/rho) - s_max^(1/rho)))^rho,
    i = 0..N-1 (N = 1: s_max alone), are mapped to the times where s_t = s_i (the log-SNR
    inverted by :func:`time_at_log_snr`), then the grid ends at t = 1, where s = 0 on VP,
    DDPM and linear paths (EDM's s_N = 0). On a path whose sigma stays positive at t = 1 (VE)
    there is no s = 0: the grid holds N + 1 levels from s_max to s_min instead.

    ``sigma_max`` defaults to s at t = 0 (then t_0 = 0 exactly); the linear path has alpha = 0
    there (s = inf), so pass a finite one (EDM uses 80). ``sigma_min`` defaults to s at
    ``stop`` (the last trained time; then the last level lies at ``stop`` exactly); pass one
    where sigma(stop) = 0 (EDM uses 0.002). diffusers' ``use_karras_sigmas=True`` on a DDPM
    schedule is the default with ``stop = 1 - 1/T``.
    """
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")
    if not 0.0 < stop <= 1.0:
        raise ValueError(f"stop must lie in (0, 1], got {stop}")
    ends = schedule(torch.tensor([0.0, stop, 1.0], dtype=torch.float64))
    s_ends = (ends.sigma / ends.alpha).tolist()  # inf where alpha = 0
    to_zero = s_ends[2] == 0.0
    s_max = s_ends[0] if sigma_max is None else float(sigma_max)
    s_min = s_ends[1] if sigma_min is None else float(sigma_min)
    if not (np.isfinite(s_max) and 0.0 < s_min < s_max):
        raise ValueError(
            f"karras_grid needs 0 < sigma_min < sigma_max < inf, got sigma_min = "
            f"{s_min}, sigma_max = {s_max} (s = sigma_t / alpha_t; pass sigma_max "
            "where alpha_0 = 0, sigma_min where sigma_stop = 0)"
        )
    if s_max > s_ends[0] * (1 + 1e-12) or s_min < s_ends[2] * (1 - 1e-12):
        raise ValueError(
            f"the noise levels [{s_min}, {s_max}] leave the path's range "
            f"[{s_ends[2]}, {s_ends[0]}] of s = sigma_t / alpha_t"
        )
    k = int(n_steps) if to_zero else int(n_steps) + 1
    ramp = torch.linspace(0.0, 1.0, k, dtype=torch.float64)
    levels = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    pts = time_at_log_snr(schedule, -torch.log(levels), 0.0, 1.0)
    if sigma_max is None:
        pts[0] = 0.0
    if sigma_min is None and k > 1:
        pts[-1] = stop
    if to_zero:
        pts = torch.cat([pts, torch.ones(1, dtype=torch.float64)])
    if not (torch.diff(pts) > 0).all():
        raise ValueError(
            "the Karras grid is not strictly increasing: fewer steps or a wider "
            "range of noise levels"
        )
    return pts
