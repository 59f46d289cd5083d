"""Experiment ``denoise-jko``: one denoising step against the JKO step it realises (Gaussian).

Setting: the OU forward flow (VP after the time change tau = 1/2 int beta), target pi = N(0, I),
data-side state rho = N(m, S) at OU time tau (the law of the moment-matched data Gaussian
after tau). The JKO step J_h(rho) = argmin KL(. || pi) + W2^2(., rho) / (2h) has optimal map T
with (T(x) - x) / h = -T(x) - grad log J_h(rho)(T(x)) (module jko), i.e. the map

    D_h(y) = y + h (y + grad log rho'(y)),    rho' the law being denoised,

one explicit Euler step of the reverse probability-flow ODE (a deterministic DDIM-type
denoising step), sends J_h(rho) back onto rho exactly. Measured against h, all in closed form
(Gaussians stay Gaussian under affine maps; W2 = Bures):

* ``denoise(JKO)``: W2(D_h # J_h(rho), rho), zero to rounding (the identity above);
* ``denoise(flow)``: W2(D_h # rho_{tau+h}, rho_tau), the denoising step from the exact forward
  marginal, O(h^2) (a one-step local error);
* ``JKO vs flow``: W2(J_h(rho_tau), rho_{tau+h}), O(h^2).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..data import get_mixture
from ..geometry import Gaussian, gaussian_jko_step, gaussian_potential, gaussian_w2, ou_gaussian
from . import figures
from .context import Check, Context, ExperimentResult, Figure, Table, Verdict, table
from .free_energy_exp import FreeEnergyProfile
from .records import to_json
from .registry import Profile, register_experiment

CLAIM = (
    "A denoising step is a JKO step: one explicit Euler step of the reverse probability-"
    "flow ODE undoes the JKO step of the same size exactly, and both agree with the exact "
    "flow step to second order in h."
)


@dataclass(frozen=True)
class DenoiseJKOProfile(Profile):
    """The step sizes h and the OU time tau of the start rho (the data Gaussian of
    ``free-energy``'s mixture after tau)."""

    h: tuple[float, ...]
    tau: float


@dataclass(frozen=True)
class DenoiseJKONumbers:
    """W2 errors against h (closed form) and their fitted orders (None: fewer than two)."""

    tau: float
    h: list[float]
    denoise_of_jko_w2: list[float]
    denoise_of_flow_w2: list[float]
    jko_vs_flow_w2: list[float]
    order_denoise_of_flow: float | None
    order_jko_vs_flow: float | None


PROFILES = {
    "test": DenoiseJKOProfile(h=(0.4, 0.2, 0.1, 0.05, 0.025), tau=0.1),
    "quick": DenoiseJKOProfile(h=(0.4, 0.2, 0.1, 0.05, 0.025, 0.0125), tau=0.1),
    "default": DenoiseJKOProfile(h=(0.4, 0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625), tau=0.1),
    "full": DenoiseJKOProfile(h=(0.4, 0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125), tau=0.1),
}


def denoise_step(mean: torch.Tensor, cov: torch.Tensor, h: float):
    """D_h # N(m, S) with D_h(y) = y + h (y - S^-1 (y - m)) (target N(0, I))."""
    d = mean.shape[0]
    eye = torch.eye(d, dtype=torch.float64)
    L = (1 + h) * eye - h * torch.linalg.inv(cov)
    c = h * torch.linalg.solve(cov, mean)
    S = L @ cov @ L.T
    return L @ mean + c, (S + S.T) / 2


def _slope(hs: list[float], errs: list[float]) -> float | None:
    pts = [(math.log(h), math.log(e)) for h, e in zip(hs, errs) if e > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den > 0 else None


def measure(cfg: DenoiseJKOProfile, mixture: str) -> DenoiseJKONumbers:
    """The three W2 errors at each h from the data Gaussian of ``mixture`` after OU time tau."""
    mix = get_mixture(mixture)
    d = mix.dim
    target = gaussian_potential(
        torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
    )
    rho0 = ou_gaussian(Gaussian(mean=mix.mean, cov=mix.cov), target, float(cfg.tau))
    hs = list(cfg.h)
    inv, loc, jvf = [], [], []
    for h in hs:
        J = gaussian_jko_step(rho0, target, h)
        fwd = ou_gaussian(rho0, target, h)
        mj, Sj = denoise_step(J.mean, J.cov, h)
        mf, Sf = denoise_step(fwd.mean, fwd.cov, h)
        inv.append(float(gaussian_w2(mj, Sj, rho0.mean, rho0.cov)))
        loc.append(float(gaussian_w2(mf, Sf, rho0.mean, rho0.cov)))
        jvf.append(float(gaussian_w2(J.mean, J.cov, fwd.mean, fwd.cov)))
    return DenoiseJKONumbers(cfg.tau, hs, inv, loc, jvf, _slope(hs, loc), _slope(hs, jvf))


@register_experiment(
    "denoise-jko",
    DenoiseJKOProfile,
    title="A denoising step is a JKO step",
    profiles=PROFILES,
    order=50,
)
def run(ctx: Context) -> ExperimentResult:
    t0 = time.perf_counter()
    numbers = measure(ctx.config.of(DenoiseJKOProfile), ctx.config.of(FreeEnergyProfile).mixture)
    return ExperimentResult(
        name="denoise-jko",
        title="A denoising step is a JKO step",
        claim=CLAIM,
        verdict=verdict(numbers),
        numbers=to_json(numbers),
        figures=[_figure(ctx, numbers)],
        tables=[_table(numbers)],
        seconds=time.perf_counter() - t0,
    )


def _table(n: DenoiseJKONumbers) -> Table:
    return table(
        "W2 against the step size h",
        ["h", "denoise(JKO) vs rho", "denoise(flow) vs rho", "JKO vs flow"],
        [list(r) for r in zip(n.h, n.denoise_of_jko_w2, n.denoise_of_flow_w2, n.jko_vs_flow_w2)],
    )


def _figure(ctx: Context, n: DenoiseJKONumbers) -> Figure:
    hs = n.h
    return figures.curves(
        ctx.figures,
        "denoise-jko",
        "W2 errors against the step h (Gaussian, closed form)",
        [
            figures.Series(
                hs, [max(e, 1e-17) for e in n.denoise_of_jko_w2], "denoise(JKO step) vs start"
            ),
            figures.Series(hs, n.denoise_of_flow_w2, "denoise(exact flow step) vs start"),
            figures.Series(hs, n.jko_vs_flow_w2, "JKO step vs exact flow step"),
        ],
        xlabel="h",
        ylabel="W2",
        logx=True,
        logy=True,
    )


def verdict(n: DenoiseJKONumbers) -> Verdict:
    worst = max(n.denoise_of_jko_w2)
    p1, p2 = n.order_denoise_of_flow, n.order_jko_vs_flow
    checks = [
        Check("W2 of denoise(JKO step) to the start, worst h", worst, "<", 1e-8),
        Check("order of denoise(exact flow step)", p1, ">", 1.7),
        Check("order of the JKO step against the exact flow step", p2, ">", 1.7),
    ]
    return Verdict.judge(
        checks,
        f"the denoising step undoes "
        f"the JKO step to W2 {worst:.1e}; against the exact flow step the errors "
        f"scale as h^{p1:.2f} (denoising) and h^{p2:.2f} (JKO), order 2 expected",
    )
