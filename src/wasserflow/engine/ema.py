"""Exponential moving average of model weights (Polyak averaging), as a plain tensor dict."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """shadow <- decay * shadow + (1 - decay) * param after every optimiser step.

    Warm-up as in common practice (e.g. k-diffusion's EMAWarmup with power 1): the effective
    decay is min(decay, (1 + step) / (10 + step)), so early averages do not remember the random
    initialisation. Buffers are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        shadow, params = [], []
        for k, p in model.named_parameters():
            if torch.is_floating_point(p):
                shadow.append(self.shadow[k])
                params.append(p.detach())
            else:
                self.shadow[k].copy_(p)
        if shadow:  # one fused pass; elementwise the same mul_ then add_ as a per-tensor loop
            torch._foreach_mul_(shadow, d)
            torch._foreach_add_(shadow, params, alpha=1 - d)
        for k, b in model.named_buffers():
            if k in self.shadow:  # persistent buffers (those of the state dict) are copied
                self.shadow[k].copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k in self.shadow:
            self.shadow[k].copy_(state[k])
