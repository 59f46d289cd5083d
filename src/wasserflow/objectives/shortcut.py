"""Shortcut models (Frans, Hafner, Levine & Abbeel 2024, arXiv:2410.12557): a flow map trained by
self-consistency over step sizes, no JVP and no teacher.

The network u(x, t, s) (:class:`~wasserflow.objectives.flowmap.FlowMapNet`; the paper's
s_theta(x_t, t, d) is our u(x, t, t + d), its clock reversed) is trained on two parts of each
batch:

* flow matching (1 - ``consistency_fraction`` of the rows): |u(x_t, t, t) - u_t|^2 with u_t the
  path's conditional velocity, t ~ U[0, t_max];
* self-consistency (the other rows): one jump of 2d is two jumps of d,

      target = sg[(u(x_t, t, t + d) + u(x', t + d, t + 2d)) / 2],   x' = x_t + d u(x_t, t, t + d),
      loss = |u(x_t, t, t + 2d) - target|^2,

  with d = t_max 2^j / M, j ~ U{0, ..., log2(M) - 1} (M = ``base_steps``, 128 in the paper, so
  2d runs from 2 / M to the whole interval) and t ~ U[0, t_max - 2d]. At the smallest level the
  two half steps are Euler steps on the instantaneous velocity u(., ., h = 0), the flow-matching
  part's output, which anchors the ladder (the paper's d = 0 base case).

The target is computed with the current weights under no_grad (the paper also offers EMA
weights for it). Every network call takes the whole batch (the rows of the other part are
evaluated and ignored), which keeps the rows of a data-parallel step aligned with the global
batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..paths import AffinePath
from ..samplers import AverageNetworkFn, SamplingContext
from .flowmap import (
    FlowMapSpec,
    check_power_of_two,
    check_times,
    ends_at,
    expand,
    path_point,
    squared_norm,
    uniform_times,
)
from .registry import LossSetup, register_objective
from .regression import couple


def shortcut_times(
    n: int,
    generator: torch.Generator,
    dtype: torch.dtype,
    *,
    fraction: float,
    base_steps: int,
    t_max: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """(t, d, consistent), each (n,): the last round(fraction n) rows are self-consistency rows
    with d = t_max 2^j / M and t ~ U[0, t_max - 2d]; the others flow-matching rows with d = 0 and
    t ~ U[0, t_max] (module doc)."""
    k = int(round(fraction * n))
    consistent = torch.arange(n) >= n - k
    levels = int(math.log2(base_steps))
    j = torch.randint(0, levels, (n,), generator=generator)
    d = t_max * torch.pow(2.0, j.to(dtype)) / base_steps
    d = torch.where(consistent, d, torch.zeros_like(d))
    u = torch.rand(n, generator=generator, dtype=dtype)
    t = torch.where(consistent, (t_max - 2 * d) * u, uniform_times(n, generator, dtype, t_max))
    return t, d, consistent


@dataclass(frozen=True)
class ShortcutObjective:
    """Shortcut models (Frans et al. 2024): a flow map trained by flow matching and
    self-consistency over step sizes (:class:`Shortcut`); the defaults are the paper's, and
    ``time_factor`` scales the times the backbone sees (:class:`FlowMapNet`).

    Attributes:
        consistency_fraction: the fraction of each batch trained for self-consistency.
        base_steps: M, the number of the smallest steps (a power of 2).
        t_max: the largest time trained.
        time_factor: k in u(x, t, s) = backbone(x, k t, k (s - t)).
    """

    consistency_fraction: float = 0.25
    base_steps: int = 128
    t_max: float = 1.0
    time_factor: float = 1e-3
    kind: str = "shortcut"

    def __post_init__(self) -> None:
        if not 0.0 < self.consistency_fraction < 1.0:
            raise ValueError(
                f"consistency_fraction must lie in (0, 1), got {self.consistency_fraction}"
            )
        check_power_of_two("base_steps", self.base_steps, least=2)
        check_times(self.t_max, self.time_factor)


@dataclass(frozen=True)
class Shortcut:
    """The shortcut-model loss on an affine path and a coupling (module doc); ``options``: the
    objective's settings (:class:`ShortcutObjective`)."""

    path: AffinePath
    coupling: str = "independent"
    coupling_sigma: float | None = None
    options: ShortcutObjective = field(default_factory=ShortcutObjective)

    def loss(
        self, model: nn.Module, batch: Tensor, generator: torch.Generator, step: int = 0
    ) -> Tensor:
        """Per-sample losses (B,) for a data batch (or a batch of pairs)."""
        o = self.options
        x0, x1 = couple(batch, generator, self.coupling, self.coupling_sigma)
        t, d, consistent = shortcut_times(
            x1.shape[0], generator, x1.dtype, fraction=o.consistency_fraction,
            base_steps=o.base_steps, t_max=o.t_max,
        )  # fmt: skip
        xt, ut = path_point(self.path, x0, x1, t, generator)
        u = AverageNetworkFn(model)
        smallest = d <= o.t_max / o.base_steps * (1 + 1e-6)
        with torch.no_grad():  # two jumps of d (Euler steps on u(., ., h = 0) at the smallest)
            h = torch.where(smallest, torch.zeros_like(d), d)
            v1 = u(xt, t, t + h)
            x_mid = xt + expand(d, xt) * v1
            v2 = u(x_mid, t + d, t + d + h)
            two_halves = (v1 + v2) / 2
        target = torch.where(expand(consistent, xt) > 0, two_halves, ut)
        return squared_norm(u(xt, t, t + 2 * d) - target)

    __call__ = loss


@register_objective("shortcut", ShortcutObjective)
class ShortcutSpec(FlowMapSpec):
    """Shortcut models on the run's path and coupling: a flow map with its instantaneous
    velocity."""

    title = "the shortcut model"

    def loss(self, objective: ShortcutObjective, setup: LossSetup) -> Shortcut:
        return Shortcut(setup.path, setup.coupling, setup.coupling_sigma, objective)

    def sampling_context(
        self, objective: ShortcutObjective, base: SamplingContext, model: Any = None
    ) -> SamplingContext:
        return ends_at(super().sampling_context(objective, base, model), objective.t_max)
