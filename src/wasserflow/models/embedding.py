"""Time features for t in [0, 1] and the activation registry shared by the backbones."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "selu": nn.SELU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
}
"""Name -> activation class (SiLU is the default; SELU matches TorchCFM's MLP)."""


def make_activation(name: str) -> nn.Module:
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


class SinusoidalTimeEmbedding(nn.Module):
    """phi(t) = [sin(s t w_0), ..., sin(s t w_{h-1}), cos(s t w_0), ..., cos(s t w_{h-1})].

    w_k = max_period^(-k / h), h = dim / 2, and the scale s = 1000 maps t in [0, 1] onto the
    range of DDPM's integer steps, so the embedding is the transformer / DDPM one applied to
    1000 t (Vaswani et al. 2017; Ho et al. 2020). No parameters. Input (n,), output (n, dim).
    """

    def __init__(self, dim: int = 64, scale: float = 1000.0, max_period: float = 10_000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"the embedding dimension must be even and >= 2, got {dim}")
        self.dim = dim
        self.scale = float(scale)
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
        self.register_buffer("freqs", freqs.to(torch.get_default_dtype()), persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        args = (self.scale * t)[:, None] * self.freqs.to(t.dtype)[None]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class LinearTime(nn.Module):
    """phi(t) = t as one feature (TorchCFM's ``MLP(time_varying=True)`` concatenates raw t)."""

    dim = 1

    def forward(self, t: Tensor) -> Tensor:
        return t[:, None]
