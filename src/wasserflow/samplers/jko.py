"""Sampling a JKO flow: its blocks run backwards from the noise (Jordan, Kinderlehrer & Otto
1998 steps of KL(. || N(0, I)), fitted by :mod:`wasserflow.objectives.jko_flow`).

A JKO flow is not a vector field: it is K bijections T_1..T_K (data -> noise), block k the map
of one implicit-Euler (JKO) step of size h_k. Generation inverts them, x = T_1^{-1} o ... o
T_K^{-1}(z), each inverse by Newton's method; the state after undoing block k sits at clock time
t = (h_K + ... + h_{k}) / tau (t = 0 noise, t = 1 data), so its trajectory is measured like any
other sampler's. The grid is the model's own (:attr:`SamplingContext.model_steps`); the NFE
counts every map evaluation, Newton iterations included. Within a JKO step particles move along
the straight lines of the step's optimal map (the W2 geodesic between consecutive iterates), so
the kinetic energy of the sampled curves is the sum of the blocks' chord energies.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from .kinetic import chord_energy
from .registry import register
from .result import SampleResult, check_start


class BlockFlow(Protocol):
    """A model that generates by running K bijective blocks backwards (``models.JKOFlow``)."""

    steps: tuple[float, ...]

    def generate(self, z: Tensor, *, return_trajectory: bool = False): ...


def _own_steps(spec, nfe, ctx, options):
    """The model's block times; the budget is fixed by the blocks (checked by the spec)."""
    return ctx.model_steps, options


@register(
    "jko",
    order=None,
    nfe_per_step=None,
    needs_model_steps=True,
    plan=_own_steps,
    about="inverting its blocks",
)
def jko(
    flow: BlockFlow,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> SampleResult:
    """The blocks of ``flow`` inverted from the noise x0 (n, d) (deterministic; ``generator``
    unused); ``grid`` is the flow's K + 1 block times, increasing from 0 to 1."""
    x0 = check_start(x0)
    g = torch.as_tensor(grid, dtype=torch.float64)
    if g.dim() != 1 or g.shape[0] != len(flow.steps) + 1:
        raise ValueError(
            f"a JKO flow of {len(flow.steps)} blocks takes its own grid of "
            f"{len(flow.steps) + 1} times, got shape {tuple(g.shape)}"
        )
    s = flow.generate(x0.reshape(x0.shape[0], -1), return_trajectory=True)
    frames = s.trajectory
    energy = sum(
        chord_energy(frames[k], frames[k + 1], float(g[k]), float(g[k + 1]))
        for k in range(frames.shape[0] - 1)
    )
    traj = frames.reshape(frames.shape[0], *x0.shape) if return_trajectory else None
    return SampleResult(
        x=s.x.reshape(x0.shape), nfe=s.evaluations, trajectory=traj, times=g, energy=energy
    )
