"""Time distributions of the training objectives, on the t clock (t = 0 noise, t = 1 data).

An objective draws one time per sample: uniformly on an interval (continuous-time diffusion,
flow matching), as a power of a uniform (t = t_min + (t_max - t_min) u^p, p > 1 favours the
noise end t = 0: few-step Euler samplers of a flow start there), on DDPM's integer steps t_k = 1 - (k + 1) / T (discrete DDPM), or on the L
noise levels of NCSN (t_i = i / (L - 1): a geometric ladder of sigmas under the VE schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TimeDistribution:
    """kind "uniform": t ~ U[t_min, t_max]; "power": t = t_min + (t_max - t_min) u^power,
    u ~ U[0, 1] (density proportional to (t - t_min)^(1/power - 1)); "ddpm":
    t = 1 - (k + 1) / levels, k ~ U{0..levels-1}; "levels": t = i / (levels - 1),
    i ~ U{0..levels-1}."""

    kind: str = "uniform"
    t_min: float = 0.0
    t_max: float = 1.0
    levels: int = 1000
    power: float = 1.0

    def __post_init__(self):
        if self.kind not in ("uniform", "power", "ddpm", "levels"):
            raise ValueError(
                f"time distribution {self.kind!r}: choose uniform, power, ddpm or levels"
            )
        if not self.power > 0:
            raise ValueError(
                f"the power of a power time distribution must be > 0, got {self.power}"
            )
        if self.kind != "power" and self.power != 1.0:
            raise ValueError(f"power = {self.power} needs kind 'power', got {self.kind!r}")
        if not 0.0 <= self.t_min < self.t_max <= 1.0:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got {self.t_min}, {self.t_max}")
        if self.kind != "uniform" and self.levels < 2:
            raise ValueError("a discrete time distribution needs at least 2 levels")

    def sample(self, n: int, generator: torch.Generator | None, dtype=torch.float32) -> Tensor:
        """n times, shape (n,)."""
        if self.kind in ("uniform", "power"):
            u = torch.rand(n, generator=generator, dtype=dtype)
            if self.kind == "power":
                u = u**self.power
            if self.t_min == 0.0 and self.t_max == 1.0:
                return u  # 0 + 1 * u, the same numbers without two passes over them
            return self.t_min + (self.t_max - self.t_min) * u
        k = torch.randint(0, self.levels, (n,), generator=generator)
        if self.kind == "ddpm":
            return (1.0 - (k + 1).to(dtype) / self.levels).to(dtype)
        return (k.to(dtype) / (self.levels - 1)).to(dtype)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "t_min": self.t_min,
            "t_max": self.t_max,
            "levels": self.levels,
            "power": self.power,
        }
