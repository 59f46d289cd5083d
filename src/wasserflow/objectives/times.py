"""Time distributions of the training objectives, on the t clock (t = 0 noise, t = 1 data).

An objective draws one time per sample: uniformly on an interval (continuous-time diffusion,
flow matching), on DDPM's integer steps t_k = 1 - (k + 1) / T (discrete DDPM), or on the L
noise levels of NCSN (t_i = i / (L - 1): a geometric ladder of sigmas under the VE schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TimeDistribution:
    """kind "uniform": t ~ U[t_min, t_max]; "ddpm": t = 1 - (k + 1) / levels, k ~ U{0..levels-1};
    "levels": t = i / (levels - 1), i ~ U{0..levels-1}."""

    kind: str = "uniform"
    t_min: float = 0.0
    t_max: float = 1.0
    levels: int = 1000

    def __post_init__(self):
        if self.kind not in ("uniform", "ddpm", "levels"):
            raise ValueError(f"time distribution {self.kind!r}: choose uniform, ddpm or levels")
        if not 0.0 <= self.t_min < self.t_max <= 1.0:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got {self.t_min}, {self.t_max}")
        if self.kind != "uniform" and self.levels < 2:
            raise ValueError("a discrete time distribution needs at least 2 levels")

    def sample(self, n: int, generator: torch.Generator | None, dtype=torch.float32) -> Tensor:
        """n times, shape (n,)."""
        if self.kind == "uniform":
            u = torch.rand(n, generator=generator, dtype=dtype)
            return self.t_min + (self.t_max - self.t_min) * u
        k = torch.randint(0, self.levels, (n,), generator=generator)
        if self.kind == "ddpm":
            return (1.0 - (k + 1).to(dtype) / self.levels).to(dtype)
        return (k.to(dtype) / (self.levels - 1)).to(dtype)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "t_min": self.t_min, "t_max": self.t_max, "levels": self.levels}
