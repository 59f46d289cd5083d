"""Sampling an Energy Matching model (Balcerak et al. 2025, arXiv:2504.10612).

The model is one time-independent scalar potential E(x); its field is v(x) = -grad E(x).
Far from the data it transports noise like OT flow matching, near the data exp(-E / T) is a
Boltzmann density. Sampling is gradient descent along the grid, then overdamped Langevin at
temperature T:

    descent:  x_{k+1} = x_k - h_k grad E(x_k)                    (g = 0, explicit Euler),
    Langevin: x <- x - eta grad E(x) + sqrt(2 eta T) z           (ULA, targets exp(-E / T)),

i.e. dx = -grad E dt + g dW with g = 0 then g = sqrt(2 T) (in dx = [v + g^2/2 s] dt + g dW
with s = -grad E / T the Langevin part has v = 0 at stationarity).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from wasserflow.geometry import energy_gradient

from .._time import broadcast_time
from .field import Field, FieldFn, as_field
from .grids import uniform_grid
from .registry import budget, register
from .result import Recorder, SampleResult, check_start, gaussian_noise, grid_steps
from .sde import langevin_step


def energy_field(energy: Callable[[Tensor], Tensor]) -> Field:
    """The Field v(x, t) = -grad_x E(x) of a scalar potential E: (n, ...) -> (n,) (autograd)."""

    def v(x: Tensor, t: Tensor) -> Tensor:
        return -energy_gradient(energy, x)

    return Field(fn=v)


def _descent_then_langevin_plan(spec, nfe, ctx, options):
    """Half the budget descends E on a uniform grid, the other half are Langevin steps."""
    k = budget(nfe)
    n_lang = k // 2
    return uniform_grid(max(1, k - n_lang)), {**options, "n_langevin": n_lang}


@register(
    "energy_langevin",
    order=None,
    stochastic=True,
    needs_energy=True,
    nfe_per_step=None,
    plan=_descent_then_langevin_plan,
)
def energy_langevin(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    n_langevin: int = 0,
    step_size: float | None = None,
    temperature: float = 1.0,
) -> SampleResult:
    """Gradient descent on E over the grid steps, then ``n_langevin`` Langevin steps of size
    ``step_size`` (default: the last grid step) at ``temperature``. ``field`` is -grad E (see
    :func:`energy_field`); its t argument is ignored by time-independent energies. Frames:
    the grid, then one per Langevin step on a clock extended past t_K by step_size each.
    NFE = K + n_langevin."""
    if n_langevin < 0 or temperature < 0:
        raise ValueError("energy_langevin needs n_langevin >= 0 and temperature >= 0")
    field = as_field(field)
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    eta = float(t_to[-1] - t_from[-1]) if step_size is None else float(step_size)
    if not eta > 0:
        raise ValueError(f"step_size must be > 0, got {eta}")
    rec = Recorder(x, float(t_from[0]), return_trajectory)
    for a, b in zip(t_from.tolist(), t_to.tolist(), strict=True):
        x = x + (b - a) * field.velocity(x, broadcast_time(a, x))
        rec.nfe += 1
        rec.add(x, b)
    t = float(t_to[-1])
    for j in range(n_langevin):
        v = field.velocity(x, broadcast_time(t, x))  # -grad E: the score of exp(-E / T) times T
        x = langevin_step(x, v, eta, gaussian_noise(x, generator), temperature)
        rec.nfe += 1
        rec.add(x, t + (j + 1) * eta)
    return rec.result(x)
