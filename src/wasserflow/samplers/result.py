"""The sampler result type and the grid / trajectory bookkeeping every sampler shares."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .kinetic import path_segment_energy


@dataclass(frozen=True)
class SampleResult:
    """Output of a sampler.

    Attributes:
        x: the final samples, x0's shape.
        nfe: number of field evaluations, each at one point (x, t) of the whole batch (a
            velocity-and-score pair from one model call counts once).
        trajectory: (F, n, ...) frames when ``return_trajectory=True``, else None.
        times: (F,) float64 clock times of the frames (of the grid, also without trajectory).
        energy: (n,) float64 kinetic energy int |dx/dt|^2 dt of each sample's path as solved
            (:mod:`~wasserflow.samplers.kinetic`), or None (stochastic samplers).
        deviation: (n,) float64 deviation of a flow map's average velocities from its
            instantaneous ones along the jumps taken (:func:`~wasserflow.samplers.flowmap.
            average_velocity_deviation`), when asked for, else None.
    """

    x: Tensor
    nfe: int
    trajectory: Tensor | None
    times: Tensor
    energy: Tensor | None = None
    deviation: Tensor | None = None


def grid_steps(grid: Tensor, *, allow_decreasing: bool = False) -> tuple[Tensor, Tensor]:
    """(t_from, t_to), each (K,) float64, from a grid.

    ``grid`` is either a 1-D tensor t_0 < t_1 < ... < t_K of clock times in [0, 1] (steps
    t_k -> t_{k+1}), or a (K, 2) tensor of explicit (t_from, t_to) steps with t_from <= t_to,
    for schedulers whose steps do not chain (diffusers' DDIM with trailing/linspace spacing,
    see :func:`~wasserflow.samplers.grids.diffusers_steps`).
    """
    if not isinstance(grid, Tensor):
        grid = torch.as_tensor(grid, dtype=torch.float64)
    g = grid.detach().to(torch.float64).cpu()
    flat = g.reshape(-1).tolist()  # checked as Python floats: no tensor op per check
    if not all(0.0 <= v <= 1.0 for v in flat):  # also refuses NaN
        raise ValueError("grid times must be finite and lie in [0, 1] (t = 0 noise, t = 1 data)")
    if g.dim() == 1:
        if g.shape[0] < 2:
            raise ValueError("a grid needs at least two times (one step)")
        pairs = list(zip(flat[:-1], flat[1:], strict=True))
        ok = all(a < b for a, b in pairs) or (allow_decreasing and all(a > b for a, b in pairs))
        if not ok:
            need = "strictly monotone" if allow_decreasing else "strictly increasing"
            raise ValueError(f"grid times must be {need}; build one with uniform_grid(n_steps)")
        return g[:-1], g[1:]
    if g.dim() == 2 and g.shape[1] == 2 and g.shape[0] >= 1:
        if any(a > b for a, b in zip(flat[0::2], flat[1::2], strict=True)):
            raise ValueError("explicit grid steps (t_from, t_to) need t_from <= t_to")
        return g[:, 0].clone(), g[:, 1].clone()
    raise ValueError(f"grid must be (K + 1,) times or (K, 2) steps, got shape {tuple(g.shape)}")


def check_start(x0: Tensor) -> Tensor:
    if not isinstance(x0, Tensor) or x0.dim() < 1 or x0.shape[0] == 0:
        raise ValueError("x0 must be a non-empty tensor of shape (n, ...)")
    if not torch.is_floating_point(x0):
        raise ValueError("x0 must be a floating-point tensor")
    return x0


class Recorder:
    """Collects frames (when asked), their times and the path's kinetic energy, then builds the
    SampleResult.

    ``energy``: None (not tracked: stochastic samplers), ``"sampler"`` (the sampler adds to
    :attr:`energy` itself, or passes each step's energy to :meth:`add`: Runge-Kutta samplers)
    or the path's schedule
    ``coefficients(t)`` (each step's energy is that of the path-shaped curve between its end
    points, :func:`~wasserflow.samplers.kinetic.path_segment_energy`)."""

    def __init__(self, x: Tensor, t: float, keep: bool, energy=None) -> None:
        self.keep = keep
        self.frames = [x.detach().clone()] if keep else []
        self.times = [float(t)]
        self.nfe = 0
        self._energy_mode = energy
        # accumulated on x's device (no host sync per step), moved to the CPU once in result()
        self.energy = (
            None
            if energy is None
            else torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        )
        self._last = x

    def add(
        self, x: Tensor, t: float, *, energy: Tensor | None = None, t_from: float | None = None
    ) -> None:
        """Record the state x at time t after one step (from ``t_from``, default the last
        recorded time), with the step's kinetic energy when the sampler integrates it."""
        if self.keep:
            self.frames.append(x.detach().clone())
        if self.energy is not None:
            if energy is None and callable(self._energy_mode):
                s = self.times[-1] if t_from is None else float(t_from)
                energy = path_segment_energy(self._last, x, s, float(t), self._energy_mode)
            if energy is not None:
                self.energy += energy.detach().to(self.energy.device, torch.float64)
        self._last = x
        self.times.append(float(t))

    def result(self, x: Tensor, deviation: Tensor | None = None) -> SampleResult:
        traj = torch.stack(self.frames) if self.keep else None
        return SampleResult(
            x=x,
            nfe=self.nfe,
            trajectory=traj,
            times=torch.tensor(self.times, dtype=torch.float64),
            energy=None if self.energy is None else self.energy.cpu(),
            deviation=None if deviation is None else deviation.cpu(),
        )


def gaussian_noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """z ~ N(0, I) of x's shape, dtype and device, drawn from ``generator``."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
