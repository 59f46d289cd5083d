"""Flow-map objectives: what MeanFlow, shortcut models and flow-map distillation share.

One network gives the average velocity over [t, s] (t = 0 noise, t = 1 data, s >= t):

    u(x, t, s) = (X(x, t, s) - x) / (s - t),   X(x, t, s) the ODE's state at s started at (t, x),

so the flow map is X(x, t, s) = x + (s - t) u(x, t, s) (:mod:`wasserflow.samplers.flowmap`
samples it at any number of jumps) and u(x, t, t) is the instantaneous velocity v(x, t). On a
straight path u(x, t, s) = v(x, t) for every s: how far u is from v is how curved the paths are.

:class:`FlowMapNet` is the module trained around a backbone built with one extra scalar input
(:mod:`wasserflow.models.conditioning`): u(x, t, s) = backbone(x, k t, k (s - t)), the step
h = s - t embedded and added to the time embedding (MeanFlow's (t, t - r) input, its best in
Geng et al. 2025, Table 1c). The factor k (``time_factor``, default 1/1000) undoes the 1000 of
the shipped backbones' sinusoidal embeddings (sin(1000 w t): DDPM's integer steps), so they see
sin(w t) as SiT's embedder, which MeanFlow builds on, does: the MeanFlow target differentiates
the network in t, and at 1000 t its high frequencies made the target noisy. On 2-D Gaussian
data (600 steps, MLP 64 x 2) the one-jump error of MeanFlow fell from 0.22 to 0.03 of
E|X - x|^2 with k = 1/1000, and its plain (p = 0) loss, which diverged at k = 1, trained. :class:`FlowMapSpec` is the part of the three registered objectives that
depends on this network only: its head, the field samplers drive
(:class:`~wasserflow.samplers.FlowMapField`) and the sampling facts (a flow map, with or without
an instantaneous velocity).

The papers' clocks run the other way (MeanFlow, shortcut models: t = 1 noise, t = 0 data):
their (t, r) with r <= t are wasserflow's (1 - t, 1 - r), and their u(z, r, t) is our
u(x, 1 - t, 1 - r) with the sign of the velocity flipped (their ODE runs from 1 down to 0).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._time import broadcast_time
from ..paths import AffinePath
from ..samplers import AverageNetworkFn, FlowMapField, SamplingContext
from .registry import ObjectiveSpec


class FlowMapNet(nn.Module):
    """u(x, t, s) = backbone(x, k t, k (s - t)) (module doc), k = ``time_factor``; ``s`` None
    means s = t, the instantaneous velocity u(x, t, t), so ``net(x, t)`` is a velocity field
    like any other."""

    def __init__(self, backbone: nn.Module, time_factor: float = 1.0):
        super().__init__()
        self.backbone = backbone
        self.time_factor = float(time_factor)

    def forward(
        self, x: Tensor, t: Tensor | float, s: Tensor | float | None = None, *labels: Tensor
    ) -> Tensor:
        t = broadcast_time(t, x)
        s = t if s is None else broadcast_time(s, x, "s")
        k = self.time_factor
        return self.backbone(x, k * t, k * (s - t), *labels)


def expand(h: Tensor, x: Tensor) -> Tensor:
    """A per-sample (n,) factor shaped to multiply x (n, ...)."""
    return h.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def squared_norm(d: Tensor) -> Tensor:
    """|d_i|^2 per sample (n,), summed over the non-batch dimensions."""
    return d.pow(2).reshape(d.shape[0], -1).sum(1)


class FlowMapSpec(ObjectiveSpec):
    """The flow-map part of a registered objective (module doc): a backbone with the step as
    one extra input inside :class:`FlowMapNet`, sampled by its jumps (the run's default sampler,
    which also measures its path geometry). ``instantaneous``: whether the loss trains
    u(x, t, t) = v(x, t) (then the ODE samplers drive it too)."""

    conditions = ("scalar",)
    ode_sampler = None
    flow_map = True
    instantaneous: ClassVar[bool] = True

    def network(self, objective: Any, backbone: nn.Module) -> nn.Module:
        return FlowMapNet(backbone, objective.time_factor)

    def field(self, objective: Any, model: nn.Module, path: AffinePath | None) -> FlowMapField:
        return FlowMapField.from_average(
            AverageNetworkFn(model), path, instantaneous=self.instantaneous
        )

    def sampling_context(
        self, objective: Any, base: SamplingContext, model: Any = None
    ) -> SamplingContext:
        return dataclasses.replace(base, flow_map=True, velocity=self.instantaneous)


def check_times(t_max: float, time_factor: float) -> None:
    """The largest trained time must lie in (0, 1], the time factor be positive."""
    if not 0.0 < t_max <= 1.0:
        raise ValueError(f"t_max must lie in (0, 1], got {t_max}")
    if not time_factor > 0:
        raise ValueError(f"time_factor must be positive, got {time_factor}")


def check_power_of_two(name: str, value: int, least: int = 1) -> None:
    """``value`` must be a power of 2, at least ``least``."""
    v = value
    if isinstance(v, bool) or not isinstance(v, int) or v < least or v & (v - 1):
        raise ValueError(f"{name} must be a power of 2 (at least {least}), got {v!r}")


def ends_at(base: SamplingContext, t_max: float) -> SamplingContext:
    """A flow map trained on [0, t_max]: samplers stop at t_max (and finish with the posterior
    mean, where t_max < 1, as a VP path's samplers do)."""
    return dataclasses.replace(base, t_end=t_max, t_last_trained=t_max)


def uniform_times(n: int, generator: torch.Generator, dtype: torch.dtype, t_max: float) -> Tensor:
    """n times uniform on [0, t_max]."""
    return t_max * torch.rand(n, generator=generator, dtype=dtype)


def path_point(
    path: AffinePath, x0: Tensor, x1: Tensor, t: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """(x_t, u_t): the point of the coupled pair (x0, x1) at times t (n,) in [0, 1] and its
    conditional velocity, bridge noise included (drawn from ``generator``)."""
    s = path.sample(x0, x1, t, generator=generator, coefficients=path.schedule.at(t))
    return s.xt, s.ut
