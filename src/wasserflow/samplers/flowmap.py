"""Sampling a flow map: jumps X(x, t, s) from any time to any later one, composed on a grid.

The flow map of the ODE dx = v(x, t) dt sends the state at time t to the state at time s:
X(x, t, s) = x + (s - t) u(x, t, s), with u(x, t, s) = (1 / (s - t)) int_t^s v(x(tau), tau) dtau
the average velocity along the ODE's solution through (t, x) (t = 0 noise, t = 1 data, s >= t).
Flow maps compose, X(X(x, t, r), r, s) = X(x, t, s), so a model of X samples at any number of
evaluations: one jump X(x0, 0, 1), or k jumps on a grid 0 = t_0 < ... < t_k = 1,

    x_{k+1} = x_k + h_k u(x_k, t_k, t_{k+1}),   h_k = t_{k+1} - t_k,

exact for every k if u is the exact average velocity (so the sampler has no order in h: its
error is the model's). On a straight path u(x, t, s) = v(x, t) for all s, and every k gives the
same samples.

**Path energy** of the sampled curves: each jump is taken as its chord, the straight
constant-speed move, energy h_k |u_k|^2, summed over the jumps (the least energy of any curve
making those moves; a flow map knows nothing of the curve between its jumps).

**Deviation of the average velocity from the instantaneous one** (where the model has
u(x, t, t) = v(x, t), :attr:`FlowMapField.instantaneous`):
D = sum_k h_k |u(x_k, t_k, t_{k+1}) - u(x_k, t_k, t_k)|^2 per sample, at the start x_k of each
jump, by one more evaluation per jump (not counted in the NFE: it measures, it does not sample).
h_k^2 |u - v|^2 is the squared distance between the jump and an Euler step from x_k, so D is
the kinetic energy (jump by jump, as a chord's) of the difference between the flow map and
Euler on the same grid; it is 0 on a straight path and, for the exact map, one jump over [0, 1]
gives D = |(X(x0, 0, 1) - x0) - v(x0, 0)|^2, how far the chord turns from the initial velocity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._time import broadcast_time
from .field import Field
from .grids import uniform_grid
from .kinetic import squared_speed
from .registry import register
from .result import Recorder, SampleResult, check_start, grid_steps

AverageFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""u(x, t, s): x (n, ...), t and s (n,) -> the average velocity, x's shape."""


def _param_dtype(net, default: torch.dtype) -> torch.dtype:
    """The dtype of the network's first parameter (``default`` when it has none)."""
    params = getattr(net, "parameters", None)
    p = next(params(), None) if callable(params) else None
    return p.dtype if p is not None else default


@dataclass(frozen=True)
class AverageNetworkFn:
    """``net(x, t, s)`` (a flow-map network, the average velocity) with x, t and s cast to the
    network's dtype and the output back to x's dtype."""

    net: Callable[..., Tensor]

    def __call__(self, x: Tensor, t: Tensor, s: Tensor) -> Tensor:
        dtype = _param_dtype(self.net, torch.float32)
        if dtype == x.dtype:
            return self.net(x, t.to(dtype), s.to(dtype))
        return self.net(x.to(dtype), t.to(dtype), s.to(dtype)).to(x.dtype)


@dataclass(frozen=True)
class _Instantaneous:
    """v(x, t) = u(x, t, t): the average velocity over an empty interval."""

    average: AverageFn

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        return self.average(x, t, t)


@dataclass(frozen=True)
class FlowMapField(Field):
    """A flow map as a :class:`Field`: ``average(x, t, s)`` is u(x, t, s) (module doc) and the
    Field's velocity is u(x, t, t), so the ODE samplers drive it too where ``instantaneous``
    (the model learned u(x, t, t) = v(x, t)); the flow-map sampler drives its jumps."""

    average: AverageFn | None = None
    instantaneous: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not callable(self.average):
            raise ValueError("a FlowMapField needs average(x, t, s), the average velocity")

    @classmethod
    def from_average(
        cls, average: AverageFn, path=None, *, instantaneous: bool = True
    ) -> FlowMapField:
        """The flow map whose average velocity is ``average(x, t, s)``."""
        return cls(
            fn=_Instantaneous(average),
            path=path,
            average=average,
            instantaneous=instantaneous,
        )

    def jump(self, x: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """X(x, t, s) = x + (s - t) u(x, t, s) (one evaluation)."""
        h = (s - t).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return x + h * self.average(x, t, s)


def _jump_step(field: FlowMapField, x: Tensor, a: float, b: float, deviation: bool):
    """One jump from time a to b: (X(x, a, b), its chord energy, its deviation or None)."""
    t, s = broadcast_time(a, x), broadcast_time(b, x)
    u = field.average(x, t, s)
    h = b - a
    dev = None
    if deviation:
        dev = h * squared_speed(u - field.average(x, t, t))
    return x + h * u, abs(h) * squared_speed(u), dev


def _check_field(field: FlowMapField, deviation: bool) -> None:
    if not isinstance(field, FlowMapField):
        raise ValueError("the flowmap sampler drives a FlowMapField (a flow-map model's jumps)")
    if deviation and not field.instantaneous:
        raise ValueError(
            "this flow map has no instantaneous velocity u(x, t, t) (it learned jumps only): "
            "it has no deviation to report; sample without deviation=True"
        )


def _jumps_plan(spec, nfe, ctx, options):
    """nfe uniform jumps from 0 to the context's end; one jump when no budget is named (the
    point of a flow map)."""
    return uniform_grid(1 if nfe is None else nfe, 0.0, ctx.t_end), options


@register(
    "flowmap",
    order=None,
    nfe_per_step=1,
    needs_flow_map=True,
    plan=_jumps_plan,
    about="jumps along a flow map",
)
def flowmap(
    field: FlowMapField,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    deviation: bool = False,
) -> SampleResult:
    """Composed jumps x_{k+1} = x_k + h_k u(x_k, t_k, t_{k+1}) on ``grid`` (module doc), one
    evaluation per jump (k NFE: k uniform jumps from 0 to 1); deterministic. The energy is that
    of the jumps as chords; ``deviation`` adds :func:`average_velocity_deviation`'s D (one more
    evaluation per jump, not in the NFE)."""
    _check_field(field, deviation)
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    rec = Recorder(x, float(t_from[0]), return_trajectory, energy="increments")
    # on x's device like the recorder's energy: moved to the CPU once, in result()
    dev = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device) if deviation else None
    for a, b in zip(t_from.tolist(), t_to.tolist(), strict=True):
        x, energy, d = _jump_step(field, x, a, b, deviation)
        rec.nfe += 1
        rec.add(x, b, energy=energy, t_from=a)
        if dev is not None:
            dev = dev + d.detach().to(torch.float64)
    return rec.result(x, deviation=dev)


def average_velocity_deviation(field: FlowMapField, x0: Tensor, grid: Tensor) -> Tensor:
    """D = sum_k h_k |u(x_k, t_k, t_{k+1}) - u(x_k, t_k, t_k)|^2 per sample, (n,) float64, along
    the jumps of the flow map from x0 on ``grid`` (module doc; 2 evaluations per jump)."""
    with torch.no_grad():
        return flowmap(field, x0, grid, deviation=True).deviation
