"""Exponential moving average of model weights (Polyak averaging), as a plain tensor dict."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """shadow <- decay * shadow + (1 - decay) * param after every optimiser step.

    Warm-up as in common practice (e.g. k-diffusion's EMAWarmup with power 1): the effective
    decay is min(decay, (1 + step) / (10 + step)), so early averages do not remember the random
    initialisation. Buffers are copied, not averaged.

    The update is two multi-tensor (``foreach``) passes over every floating parameter: the same
    ``mul_`` then ``add_`` per element as a per-tensor loop, so the same numbers. The parameters
    are looked up once per model and read through their ``Parameter`` objects afterwards (the
    objects the optimiser holds too; ``model.to(...)`` and ``load_state_dict`` update them in
    place), so a step walks no module tree unless the model has persistent buffers to copy.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._model: nn.Module | None = None
        self._float: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self._copied: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._buffers = False

    def _plan(self, model: nn.Module) -> None:
        """Pair each shadow tensor with its parameter (once per model object)."""
        shadow, params, copied = [], [], []
        for k, p in model.named_parameters():
            if torch.is_floating_point(p):
                shadow.append(self.shadow[k])
                params.append(p)
            else:
                copied.append((self.shadow[k], p))
        self._float, self._copied = (shadow, params), copied
        # persistent buffers (those of the state dict) are copied; looked up at every update,
        # since moving a module replaces its buffer tensors
        self._buffers = any(k in self.shadow for k, _ in model.named_buffers())
        self._model = model

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if model is not self._model:
            self._plan(model)
        d = min(self.decay, (1 + step) / (10 + step))
        shadow, params = self._float
        if shadow:  # one fused pass; elementwise the same mul_ then add_ as a per-tensor loop
            torch._foreach_mul_(shadow, d)
            torch._foreach_add_(shadow, params, alpha=1 - d)
        for s, p in self._copied:
            s.copy_(p)
        if self._buffers:
            for k, b in model.named_buffers():
                if k in self.shadow:
                    self.shadow[k].copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k in self.shadow:
            self.shadow[k].copy_(state[k])
