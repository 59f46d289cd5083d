"""Deterministic samplers: the probability-flow ODE dx = v_t(x) dt (g = 0 in
dx = [v + g^2/2 s] dt + g dW), integrated over an explicit grid.

Fixed-step explicit Runge-Kutta methods (Hairer, Norsett & Wanner, Solving ODEs I):
Euler (order 1, 1 NFE/step), midpoint (order 2, 2 NFE/step), Heun (order 2, 2 NFE/step, the
trapezoidal predictor-corrector of Karras et al. 2022 without their last-step shortcut) and
classical RK4 (order 4, 4 NFE/step); and adaptive Dormand-Prince 5(4) through torchdiffeq
(``atol``, ``rtol``), reporting the evaluations it used; its steps are clipped at the grid
times so that the field is never evaluated outside them. Grids may decrease (1 -> 0) to
encode data into noise.

The fixed-step samplers carry the path's kinetic energy (:mod:`~.kinetic`, float64) unless
asked not to: the option ``energy=False`` skips it (``SampleResult.energy`` None), which
leaves Euler's per-step work at the network call and one add.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._time import broadcast_time
from .field import Field, FieldFn, as_field
from .grids import uniform_grid
from .kinetic import add_squared_speed
from .registry import register
from .result import Recorder, SampleResult, check_start, grid_steps

# explicit Runge-Kutta tableaux: (c, A, b) with stages k_i = f(x + h sum_j A_ij k_j, t + c_i h)
_TABLEAUX = {
    "euler": ((0.0,), ((),), (1.0,)),
    "midpoint": ((0.0, 0.5), ((), (0.5,)), (0.0, 1.0)),
    "heun": ((0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),
    "rk4": (
        (0.0, 0.5, 0.5, 1.0),
        ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
        (1 / 6, 1 / 3, 1 / 3, 1 / 6),
    ),
}


def _rk_step(f, x: Tensor, t0: float, t1: float, method: str, rec: Recorder) -> tuple[Tensor, int]:
    """One step of ``method``: (x at t1, NFE). When ``rec`` tracks the energy, the step's
    kinetic energy is added to it: the extra state dE/dt = |v|^2 integrated with the same
    stages and weights, sum_i b_i |k_i|^2 |h| (module :mod:`~wasserflow.samplers.kinetic`)."""
    h = t1 - t0
    if method == "euler":  # one stage: x + h k, energy |h| |k|^2 (no weighted sums)
        k = f(x, t0)
        if rec.energy is not None:
            add_squared_speed(rec.energy, k, abs(h))
        return torch.add(x, k, alpha=h), 1
    c, a, b = _TABLEAUX[method]
    ks: list[Tensor] = []
    for ci, row in zip(c, a, strict=True):
        y = x
        for aij, k in zip(row, ks, strict=False):
            if aij:
                y = y + (h * aij) * k
        ks.append(f(y, t0 + ci * h))
    if rec.energy is not None:
        for bi, k in zip(b, ks, strict=True):
            if bi:
                add_squared_speed(rec.energy, k, bi * abs(h))
    step = sum((bi * k for bi, k in zip(b, ks, strict=True) if bi), torch.zeros_like(x))
    return x + h * step, len(ks)


def _fixed(
    method: str, field, x0: Tensor, grid: Tensor, return_trajectory: bool, energy: bool
) -> SampleResult:
    field = as_field(field)
    x = check_start(x0)
    t_from, t_to = grid_steps(grid, allow_decreasing=True)

    def f(y: Tensor, t: float) -> Tensor:
        return field.velocity(y, broadcast_time(t, y))

    rec = Recorder(x, float(t_from[0]), return_trajectory, energy="sampler" if energy else None)
    for a, b in zip(t_from.tolist(), t_to.tolist(), strict=True):
        x, n = _rk_step(f, x, a, b, method, rec)
        rec.nfe += n
        rec.add(x, b, t_from=a)
    return rec.result(x)


@register("euler", order=1, nfe_per_step=1)
def euler(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    energy: bool = True,
) -> SampleResult:
    """Explicit Euler on dx = v dt: x_{k+1} = x_k + h_k v(x_k, t_k). Order 1, 1 NFE per step."""
    return _fixed("euler", field, x0, grid, return_trajectory, energy)


@register("midpoint", order=2, nfe_per_step=2)
def midpoint(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    energy: bool = True,
) -> SampleResult:
    """Explicit midpoint: x_{k+1} = x_k + h v(x_k + h/2 v(x_k, t_k), t_k + h/2). Order 2.

    On the linear path the field is v(x, t) = (D_t(x) - x) / (1 - t) with D_t(x) = E[x1 | x_t = x]
    the denoiser, so at 2 NFE (one step, 0 to 1) midpoint returns 2 D_{1/2}(x_{1/2}) - D_0(x0),
    with x_{1/2} = (x0 + D_0(x0)) / 2: Euler's 2-step output D_{1/2}(x_{1/2}) (a posterior
    mean, blurred) pushed further away from the blurrier t = 0 prediction. On 8 x 8 digits this
    halves OT-CFM's 2-NFE Frechet distance against 2 Euler steps (below the converged ODE's) while
    its W2 rises (benchmarks/README.md, "Few-step OT-CFM").
    """
    return _fixed("midpoint", field, x0, grid, return_trajectory, energy)


@register("heun", order=2, nfe_per_step=2)
def heun(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    energy: bool = True,
) -> SampleResult:
    """Heun (explicit trapezoid): k1 = v(x_k, t_k), k2 = v(x_k + h k1, t_{k+1}),
    x_{k+1} = x_k + h (k1 + k2) / 2. Order 2, 2 NFE per step (the last step included)."""
    return _fixed("heun", field, x0, grid, return_trajectory, energy)


@register("rk4", order=4, nfe_per_step=4)
def rk4(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    energy: bool = True,
) -> SampleResult:
    """Classical fourth-order Runge-Kutta. Order 4, 4 NFE per step."""
    return _fixed("rk4", field, x0, grid, return_trajectory, energy)


def _adaptive_plan(spec, nfe, ctx, options):
    """One output interval [0, t_end]; the budget is ignored (the tolerances decide)."""
    return uniform_grid(1, 0.0, ctx.t_end), {"atol": 1e-5, "rtol": 1e-5, **options}


@register("dopri5", order=5, nfe_per_step=None, adaptive=True, plan=_adaptive_plan)
def dopri5(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> SampleResult:
    """Adaptive Dormand-Prince 5(4) (torchdiffeq.odeint, method "dopri5") with error control
    |err| <= atol + rtol |x|; the solution is reported at the grid times (1-D grid only) and
    ``nfe`` counts every evaluation the solver made (rejected steps included)."""
    from torchdiffeq import odeint

    field = as_field(field)
    x0 = check_start(x0)
    if not (atol > 0 and rtol > 0):
        raise ValueError("dopri5 needs atol > 0 and rtol > 0")
    g = torch.as_tensor(grid, dtype=torch.float64)
    if g.dim() != 1:
        raise ValueError("dopri5 takes a 1-D grid of output times")
    grid_steps(g, allow_decreasing=True)
    count = [0]
    lo, hi = float(g.min()), float(g.max())

    def f(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        count[0] += 1
        # torchdiffeq's initial step-size heuristic probes f once at t0 + h0, and h0 can leave
        # the interval (t ~ 46 on a VP path whose field vanishes at t = 0); the probe only sizes
        # the first step, so it reads the field at the nearest end instead
        y = state[0]
        v = field.velocity(y, broadcast_time(min(max(float(t), lo), hi), y))
        return v, v.reshape(v.shape[0], -1).pow(2).sum(-1)

    tg = g.to(device=x0.device, dtype=x0.dtype)
    e0 = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    # step_t clips steps at the grid times, so the field is never evaluated outside [0, 1];
    # the kinetic energy rides along as an extra state of the same steps, while the error
    # control (RMS norm) reads x alone, so the steps are those of the ODE for x by itself
    sol, energy = odeint(
        f,
        (x0, e0),
        tg,
        method="dopri5",
        atol=atol,
        rtol=rtol,
        options={"step_t": tg, "norm": lambda state: state[0].pow(2).mean().sqrt()},
    )
    return SampleResult(
        x=sol[-1],
        nfe=count[0],
        trajectory=sol.detach() if return_trajectory else None,
        times=g,
        energy=(energy[-1] - energy[0]).abs().detach().to(torch.float64).cpu(),
    )
