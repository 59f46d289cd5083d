"""iPNDM: the improved pseudo-numerical multistep sampler (Zhang & Chen 2023, "Fast sampling of
diffusion models with exponential integrator" (DEIS), arXiv:2204.13902, section 5; building on
Liu et al. 2022, "Pseudo numerical methods for diffusion models", PNDM).

In EDM's variables (see :mod:`.edm`) y = x / alpha and s = sigma / alpha = exp(-lambda), the
probability-flow ODE is dy / ds = d(y, s) = (y - D) / s = eps_hat, the noise prediction of one
field evaluation. iPNDM integrates it by Adams-Bashforth with the fixed (equal-step)
coefficients of order k = min(i + 1, ``order``), from the newest evaluation back:

    y_{i+1} = y_i + (s_{i+1} - s_i) sum_j c^k_j d_{i-j},
    c^1 = [1], c^2 = [3, -1] / 2, c^3 = [23, -16, 5] / 12, c^4 = [55, -59, 37, -9] / 24,

i.e. x_{i+1} = alpha_{i+1} (x_i / alpha_i + (s_{i+1} - s_i) E_i), a DDIM step with the
extrapolated noise E_i. One evaluation per step, never at the grid's last time (s = 0 at t = 1
on VP and linear paths may end it). diffusers' IPNDMScheduler is this sampler (with
v-prediction) on its own trigonometric schedule; the test reproduces it to ~1e-15.

On a grid uniform in s, step i is exact when eps_hat is a polynomial of degree < k in s. The
fixed coefficients ignore how the step sizes vary, which on a Karras grid leaves a local error
~ h^3 (h the step in the grid index): the measured global order there is 2, not 4
(tests/samplers/test_ipndm.py). ``variable_step=True`` uses the variable-step Adams-Bashforth
weights instead, w_j = int_{s_i}^{s_{i+1}} L_j(s) ds / (s_{i+1} - s_i), L_j the Lagrange basis
of the last k levels (the "iPNDM_v" of zju-pi/diff-sampler; the fixed ones on uniform steps):
exact for polynomials of degree < k on any grid, measured order about 3.5 on the Karras grid.

Grid policy: the Karras grid of :func:`~wasserflow.samplers.edm.karras_plan` with N = nfe
steps (as zju-pi/diff-sampler uses iPNDM), options ``rho``, ``sigma_min``, ``sigma_max``; on
the linear path it starts at s_max = 80, x0 taken as the state there (see :mod:`.edm`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._time import broadcast_time
from .ancestral import _needs_path
from .edm import karras_plan, noise_levels
from .field import Field, FieldFn, as_field
from .registry import register
from .result import Recorder, SampleResult, check_start

ADAMS_BASHFORTH = (
    (1.0,),
    (3 / 2, -1 / 2),
    (23 / 12, -16 / 12, 5 / 12),
    (55 / 24, -59 / 24, 37 / 24, -9 / 24),
)


def adams_bashforth_weights(levels: list[float], s_next: float) -> list[float]:
    """Variable-step Adams-Bashforth weights of the nodes ``levels`` (newest first) for the
    step from levels[0] to ``s_next``: the mean over the step of each Lagrange basis polynomial
    (in u = (s - levels[0]) / h, h = s_next - levels[0])."""
    h = s_next - levels[0]
    u = [(lv - levels[0]) / h for lv in levels]
    weights = []
    for j, uj in enumerate(u):
        basis = np.polynomial.Polynomial([1.0])
        for m, um in enumerate(u):
            if m != j:
                basis = basis * np.polynomial.Polynomial([-um, 1.0]) / (uj - um)
        prim = basis.integ()
        weights.append(float(prim(1.0) - prim(0.0)))
    return weights


# fixed coefficients on the (non-uniform) Karras grid: measured order 2 on the mixture oracle
# (variable_step=True: about 3.5; tests/samplers/test_ipndm.py)
@register(
    "ipndm",
    order=2,
    needs_path=True,
    plan=karras_plan,
    about="iPNDM (Adams-Bashforth in EDM's variables)",
)
def ipndm(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    order: int = 4,
    variable_step: bool = False,
) -> SampleResult:
    """iPNDM with Adams-Bashforth orders up to ``order`` (1-4), fixed coefficients or, with
    ``variable_step``, the variable-step ones (module doc); deterministic, ``generator`` unused.
    ``x0`` is the state at ``grid[0]``, which needs alpha > 0 (a finite noise level); 1 NFE per
    step; needs ``field.path``."""
    if order not in (1, 2, 3, 4):
        raise ValueError(f"ipndm order must be 1, 2, 3 or 4, got {order!r}")
    field = _needs_path(as_field(field), "ipndm")
    x = check_start(x0)
    ts, coefs, levels = noise_levels(field, grid, "ipndm")
    rec = Recorder(x, ts[0], return_trajectory, energy=field.coefficients)
    history: list[Tensor] = []  # eps_hat of the last evaluations, newest first
    for i in range(len(ts) - 1):
        c, c_next = coefs[i], coefs[i + 1]
        _, eps = field.x1_and_epsilon(x, broadcast_time(ts[i], x), c)
        rec.nfe += 1
        history = [eps, *history][:order]
        k = len(history)
        weights = (
            adams_bashforth_weights(levels[i::-1][:k], levels[i + 1])
            if variable_step
            else ADAMS_BASHFORTH[k - 1]
        )
        e = sum(w * d for w, d in zip(weights, history, strict=True))
        x = c_next.alpha * (x / c.alpha + (levels[i + 1] - levels[i]) * e)
        rec.add(x, ts[i + 1])
    return rec.result(x)
