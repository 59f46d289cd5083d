"""The affine Gaussian path X_t = alpha_t X_1 + sigma_t X_0 (+ optional bridge noise).

One :class:`AffinePath` consumes any schedule. Given a coupled pair (x0, x1) (reference, data)
and times t, it returns the point x_t and the conditional target velocity

    u_t = d_alpha_t x1 + d_sigma_t x0 (+ d_gamma_t eps),

which is the regression target of conditional flow matching (Lipman et al. 2023, Tong et al.
2024). The optional bridge noise gamma_t eps, eps ~ N(0, I), reproduces TorchCFM:
``bridge="constant"`` gamma_t = bridge_sigma (I-CFM / OT-CFM with sigma > 0), and
``bridge="brownian"`` gamma_t = bridge_sigma sqrt(t (1 - t)) (Schroedinger-bridge CFM, whose
target is (1 - 2t) / (2 t (1 - t)) (x_t - mu_t) + x1 - x0).

Each path owns its reference measure N(0, reference_std^2 I): N(0, I) for linear, VP, cosine
and DDPM schedules, N(0, sigma_max^2 I) for VE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._time import broadcast_time
from .schedules import Schedule, ScheduleOutput

_BRIDGES = ("constant", "brownian")
TIME_INPUTS = ("t", "logsnr")
"""What a network is given as its time input: the clock t itself, or the path's log-SNR
(:meth:`AffinePath.network_time`)."""
LOGSNR_CLAMP = 20.0
LOGSNR_SCALE = 5.0


def expand_like(c: Tensor, x: Tensor) -> Tensor:
    """Reshape per-sample coefficients (n,) to (n, 1, ..., 1) to broadcast against x (n, ...)."""
    return c.reshape(c.shape[0], *([1] * (x.dim() - 1))).to(x.dtype)


@dataclass(frozen=True)
class PathSample:
    """A draw from the conditional path: times t (n,), endpoints x0, x1, point xt, target ut and
    the bridge noise eps (None without bridge noise); all (n, ...) but t."""

    t: Tensor
    x0: Tensor
    x1: Tensor
    xt: Tensor
    ut: Tensor
    noise: Tensor | None


@dataclass(frozen=True)
class AffinePath:
    """X_t = alpha_t X_1 + sigma_t X_0 (+ gamma_t eps) for a schedule (alpha_t, sigma_t).

    Attributes:
        schedule: any :class:`~wasserflow.paths.schedules.Schedule`.
        bridge_sigma: scale of the optional bridge noise (0: none).
        bridge: "constant" (gamma = bridge_sigma) or "brownian" (gamma = bridge_sigma
            sqrt(t (1 - t))).
    """

    schedule: Schedule
    bridge_sigma: float = 0.0
    bridge: str = "constant"

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise ValueError("schedule must be a wasserflow.paths Schedule (e.g. LinearSchedule())")
        if self.bridge not in _BRIDGES:
            raise ValueError(f"bridge must be one of {_BRIDGES}, got {self.bridge!r}")
        if not self.bridge_sigma >= 0:
            raise ValueError(f"bridge_sigma must be >= 0, got {self.bridge_sigma}")

    @property
    def reference_std(self) -> float:
        """Standard deviation of the reference N(0, reference_std^2 I) generation starts from."""
        return float(self.schedule.reference_std)

    def coefficients(self, t: Tensor | float) -> ScheduleOutput:
        """(alpha_t, sigma_t, d alpha_t / dt, d sigma_t / dt) of the schedule."""
        return self.schedule(t)

    def network_time(
        self, t: Tensor, time_input: str = "t", coefficients: ScheduleOutput | None = None
    ) -> Tensor:
        """The network's time input at clock times t (a tensor, returned in its dtype).

        ``"t"``: t itself. ``"logsnr"``: lambda_t / 5 with lambda_t = log(alpha_t / sigma_t)
        clamped to [-20, 20], the noise-level conditioning of EDM (Karras et al. 2022, c_noise
        = ln(sigma / alpha) / 4 up to sign and scale). On VP paths lambda runs from -10 at t = 0
        to 4.6 at t = 1 - 1e-3, most of it in the last third of the clock, which a raw-t input
        squeezes into a small interval; the log-SNR spreads it out (2-D moons, 3 x 64 MLP:
        W2 0.29 -> 0.25 at 8 NFE, benchmarks/README.md). Computed in float64, or in the dtype
        of ``coefficients`` (= ``self.coefficients(t)``) when the caller passes them.
        """
        if time_input == "t":
            return t
        if time_input != "logsnr":
            raise ValueError(f"time_input {time_input!r}: choose one of {', '.join(TIME_INPUTS)}")
        c = self.schedule(t.to(torch.float64)) if coefficients is None else coefficients
        return (c.log_snr.clamp(-LOGSNR_CLAMP, LOGSNR_CLAMP) / LOGSNR_SCALE).to(t.dtype)

    def sample_reference(
        self,
        n_or_shape: int | tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draws from the reference N(0, reference_std^2 I) of the given shape, e.g. (n, d).

        An int n is read as the shape (n,); pass the full shape (n, d) for point clouds."""
        shape = (n_or_shape,) if isinstance(n_or_shape, int) else tuple(n_or_shape)
        if any(int(s) < 0 for s in shape):
            raise ValueError(f"invalid sample shape {shape}")
        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return self.reference_std * z

    def _gamma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(gamma_t, d gamma_t / dt) of the bridge noise."""
        if self.bridge == "constant":
            return torch.full_like(t, self.bridge_sigma), torch.zeros_like(t)
        if ((t <= 0) | (t >= 1)).any():
            raise ValueError(
                "the Brownian-bridge velocity is singular at t = 0 and t = 1: "
                "sample t in the open interval (0, 1)"
            )
        root = torch.sqrt(t * (1.0 - t))
        return self.bridge_sigma * root, self.bridge_sigma * (1.0 - 2.0 * t) / (2.0 * root)

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
        """mu_t = alpha_t x1 + sigma_t x0 (no bridge noise), (n, ...)."""
        _check_pair(x0, x1)
        c = self.schedule(broadcast_time(t, x1))
        return expand_like(c.alpha, x1) * x1 + expand_like(c.sigma, x1) * x0

    def target_velocity(self, x0: Tensor, x1: Tensor, t: Tensor | float) -> Tensor:
        """d mu_t / dt = d_alpha_t x1 + d_sigma_t x0 (no bridge noise), (n, ...)."""
        _check_pair(x0, x1)
        c = self.schedule(broadcast_time(t, x1))
        return expand_like(c.d_alpha, x1) * x1 + expand_like(c.d_sigma, x1) * x0

    def sample(
        self,
        x0: Tensor,
        x1: Tensor,
        t: Tensor | float,
        *,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        coefficients: ScheduleOutput | None = None,
    ) -> PathSample:
        """x_t and u_t for coupled pairs (x0[i], x1[i]) at times t (n,) or a scalar.

        With bridge noise, eps is ``noise`` if given, else drawn with ``generator``.
        ``coefficients``: ``self.coefficients(t)`` if the caller has it already (saves one
        schedule evaluation per training step).
        """
        _check_pair(x0, x1)
        t = broadcast_time(t, x1)
        c = self.schedule(t) if coefficients is None else coefficients
        xt = expand_like(c.alpha, x1) * x1 + expand_like(c.sigma, x1) * x0
        ut = expand_like(c.d_alpha, x1) * x1 + expand_like(c.d_sigma, x1) * x0
        eps = None
        if self.bridge_sigma > 0:
            if noise is None:
                noise = torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
            elif noise.shape != x1.shape:
                raise ValueError(
                    f"noise has shape {tuple(noise.shape)}, expected {tuple(x1.shape)}"
                )
            gamma, d_gamma = self._gamma(t)
            eps = noise
            xt = xt + expand_like(gamma, x1) * eps
            ut = ut + expand_like(d_gamma, x1) * eps
        return PathSample(t=t, x0=x0, x1=x1, xt=xt, ut=ut, noise=eps)


def _check_pair(x0: Tensor, x1: Tensor) -> None:
    if not isinstance(x0, Tensor) or not isinstance(x1, Tensor):
        raise ValueError("x0 and x1 must be torch tensors of shape (n, ...)")
    if x0.shape != x1.shape:
        raise ValueError(
            f"x0 {tuple(x0.shape)} and x1 {tuple(x1.shape)} must have the same shape "
            "(pair them with a coupling first)"
        )
    if x1.dim() < 1 or x1.shape[0] == 0:
        raise ValueError("x0 and x1 need a batch dimension with at least one sample")
