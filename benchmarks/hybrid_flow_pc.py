"""Measured and not kept in the library (benchmarks/README.md, hybrid samplers: it loses to the
best pure sampler at every NFE); registered only when benchmarks/hybrids.py imports it.

A predictor-corrector for flow-matching models: Euler on the flow, a Langevin (JKO) step of
the free energy toward the current marginal as the corrector.

The predictor integrates the model's probability-flow ODE dx = v_t(x) dt (Euler,
x <- x + h v_t(x)). The corrector at the new time t pulls the particles back toward the
marginal p_t the flow should have reached: it is one step of the W2 gradient flow of the free
energy F(rho) = KL(rho || p_t) = int rho log(rho / p_t), whose implicit (JKO) step is
argmin_rho F(rho) + W2^2(rho, rho_k) / (2 eps) (Jordan, Kinderlehrer & Otto 1998) and whose
particle discretisation is unadjusted Langevin (the forward-flow splitting of the same step,
Wibisono 2018, "Sampling as optimization in the space of measures"):

    x <- x + eps grad log p_t(x) + sqrt(2 eps) z,     z ~ N(0, I).

p_t is a fixed point of the exact flow; ULA's bias is second order per step: on a Gaussian
marginal N(m, s^2 I) one step maps it to N(m, (s^2 + eps^2 / s^2) I), so the corrector leaves
the exact marginal invariant up to O(eps^2).

The score comes from the velocity where the path allows it (docs/design.md section 2): on an
affine path with a Gaussian reference independent of the data (I-CFM: the linear path with
independent coupling; every diffusion path), s_t = -eps_hat / sigma_t with
eps_hat = (alpha'_t x - alpha_t v) / D_t, on the linear path s_t(x) = -(x - t v_t(x)) / (1 - t).
The sampler is registered with ``needs_score``, so OT-, entropic- and reflow-coupled flows
(whose velocity is not that conversion) are refused with the alternatives. The corrector is
skipped where sigma_t = 0 (t = 1 on the linear path: the score is singular there).

Step size: ``snr`` sets eps = 2 (snr |z| / |s|)^2 (batch-mean norms, Song et al. 2021,
Algorithm 5), about 2 snr^2 sigma_t^2 near a Gaussian; ``step`` fixes eps instead.

Measured (benchmarks/README.md, "Hybrid samplers", benchmarks/hybrids.py, 3 seeds,
2026-12-04): it does NOT help, and is kept as that measured result (and the tested corrector).
Against the best pure ODE sampler (euler / midpoint / heun) of the same I-CFM model at NFE
2 / 4 / 8 (1 / 3 / 7 used): moons W2 2.77 / 1.35 / 0.86 against 1.27 / 0.38 / 0.35, gmm2d
2.13 / 1.05 / 0.61 against 1.09 / 0.37 / 0.31, digits FD 726 / 138 / 55 against
17 / 21 / 16. Against Euler with the same predictor steps the corrector helps a little (moons
1.35 against 1.78 with 2 steps, 0.86 against 0.96 with 4): an evaluation spent on a corrector
buys less than one spent on a (second-order) step.

Grid policy: K uniform steps with K + n_corrector (K - 1) <= NFE (a corrector after every
predictor step but the last), K = (NFE + n_corrector) // (1 + n_corrector).
"""

from __future__ import annotations

import torch
from torch import Tensor

from wasserflow.paths import broadcast_time
from wasserflow.samplers.field import Field, FieldFn, as_field
from wasserflow.samplers.grids import uniform_grid
from wasserflow.samplers.registry import budget, register
from wasserflow.samplers.result import (
    Recorder,
    SampleResult,
    check_start,
    grid_steps,
)
from wasserflow.samplers.sde import langevin_corrector


def _flow_pc_plan(spec, nfe, ctx, options):
    """K uniform steps to ``t_end`` with K + n_corrector (K - 1) <= the budget (module doc)."""
    nc = int(spec.option(options, "n_corrector"))
    steps = max(1, (budget(nfe) + nc) // (1 + nc))
    return uniform_grid(steps, 0.0, ctx.t_end), options


@register(
    "flow_pc",
    order=1,
    stochastic=True,
    needs_path=True,
    needs_score=True,
    nfe_per_step=None,
    plan=_flow_pc_plan,
    about="Euler on the flow with a Langevin (JKO) corrector toward p_t",
)
def flow_pc(
    field: Field | FieldFn,
    x0: Tensor,
    grid: Tensor,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    n_corrector: int = 1,
    snr: float = 0.1,
    step: float | None = None,
) -> SampleResult:
    """Predictor-corrector for a flow (module doc): per grid step t_k -> t_{k+1}, one Euler
    step x <- x + h v_{t_k}(x), then ``n_corrector`` Langevin steps toward p_{t_{k+1}} with the
    score converted from the velocity (skipped after the last step and where sigma = 0).

    Weak order 1 (the corrector's O(eps^2) bias per step aside). NFE: K + n_corrector (K - 1)
    for K grid steps (fewer when sigma vanishes inside the grid).
    """
    if n_corrector < 0 or not snr > 0 or (step is not None and not step > 0):
        raise ValueError("flow_pc needs n_corrector >= 0, snr > 0 and step > 0 (or None)")
    field = as_field(field)
    x = check_start(x0)
    t_from, t_to = grid_steps(grid)
    rec = Recorder(x, float(t_from[0]), return_trajectory)
    K = t_from.shape[0]
    for k, (a, b) in enumerate(zip(t_from.tolist(), t_to.tolist(), strict=True)):
        x = x + (b - a) * field.velocity(x, broadcast_time(a, x))
        rec.nfe += 1
        if k < K - 1 and float(field.coefficients(torch.tensor(b, dtype=torch.float64)).sigma) > 0:
            for _ in range(n_corrector):
                x = langevin_corrector(field, x, b, generator, snr=snr, step=step)
                rec.nfe += 1
        rec.add(x, b)
    return rec.result(x)
