"""Experiment ``free-energy``: KL descent along the forward diffusion, de Bruijn, JKO vs FP.

Forward diffusion = Ornstein-Uhlenbeck flow dX = -X dtau + sqrt(2) dW (the VP SDE after the
time change tau(s) = 1/2 int_0^s beta), the W2 gradient flow of F = KL(. || N(0, I)). From a
Gaussian-mixture data law rho_0 = sum_k w_k N(m_k, S_k) the marginal is again a mixture,
rho_tau = law of e^-tau X + sqrt(1 - e^-2tau) Z (:meth:`GaussianMixture.noised`), so

    KL(rho_tau || pi) = E_rho_tau[log rho_tau - log pi]     (Monte Carlo, exact log densities),
    I(rho_tau || pi) = E_rho_tau |grad log rho_tau(x) + x|^2   (exact scores),

with common random numbers across tau. de Bruijn: d/dtau KL = -I, checked pointwise (central
differences) and integrated: KL(0) - KL(tau) = int_0^tau I.
JKO: from the moment-matched Gaussian of the data, closed-form JKO iterates (geometry.jko)
at several h against the exact OU marginal at t_k = k h; the error max_k W2 should shrink like
h (first order). Entropic JKO on a grid for the mixture itself (no Gaussian approximation;
full profile: minutes on 2 cores): its discrete free energy F(rho_k) against the exact KL(rho_{kh} || pi)
of the OU marginal (Monte Carlo with exact log-densities).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ..data import get_mixture
from ..geometry import (
    Gaussian,
    gaussian_jko,
    gaussian_kl,
    gaussian_potential,
    gaussian_w2,
    jko_grid,
    ou_gaussian,
    standard_gaussian_potential,
)
from . import figures
from .context import Check, Context, ExperimentResult, Figure, Table, Verdict, table
from .records import OMIT_NONE, to_json
from .registry import Profile, register_experiment

CLAIM = (
    "The forward diffusion is the W2 gradient flow of KL(. || N(0, I)): the KL decreases "
    "with dissipation equal to the relative Fisher information (de Bruijn), and JKO "
    "iterates converge to the Fokker-Planck curve as the step h shrinks (first order)."
)
DEBRUIJN_TOL = 0.05
GRID_NOTE = (
    "Grid JKO: Peyre's entropic scheme (eps = h^2 / 2) on the mixture's "
    "density itself; its error mixes the O(h) time step with the entropic blur "
    "(about eps / 2 of extra variance per step) and the grid."
)


@dataclass(frozen=True)
class GridJKOProfile:
    """The entropic grid JKO on the mixture: an n x n grid over [-half_width, half_width]^2
    and its step sizes h."""

    n: int
    half_width: float
    h: tuple[float, ...]


@dataclass(frozen=True)
class FreeEnergyProfile(Profile):
    """The mixture, n Monte Carlo points, n_tau OU times up to tau_max, the JKO steps h up to
    jko_t_max, and the grid JKO (None: skipped)."""

    mixture: str
    n: int
    tau_max: float
    n_tau: int
    h: tuple[float, ...]
    jko_t_max: float
    grid_jko: GridJKOProfile | None


PROFILES = {
    "test": FreeEnergyProfile("gmm2d", 1000, 2.0, 21, (0.4, 0.2, 0.1), 2.0, None),
    "quick": FreeEnergyProfile("gmm2d", 2000, 3.0, 31, (0.4, 0.2, 0.1, 0.05), 2.0, None),
    "default": FreeEnergyProfile("gmm2d", 8000, 3.0, 61, (0.4, 0.2, 0.1, 0.05, 0.025), 2.0, None),
    "full": FreeEnergyProfile(
        "gmm2d",
        20000,
        3.0,
        121,
        (0.4, 0.2, 0.1, 0.05, 0.025, 0.0125),
        2.0,
        GridJKOProfile(n=64, half_width=6.0, h=(0.4, 0.2, 0.1)),
    ),
}


@dataclass(frozen=True)
class KLCurve:
    """KL(rho_tau || N(0, I)) (Monte Carlo, with its standard error) and the relative Fisher
    information I at each tau."""

    tau: list[float]
    kl: list[float]
    kl_std_error: list[float]
    fisher: list[float]


@dataclass(frozen=True)
class DeBruijn:
    """dKL/dtau (central differences) against -I at the inner times, and the integrated form
    KL(0) - KL(tau_max) against int I dtau (trapezoid)."""

    dkl_dtau: list[float]
    minus_fisher: list[float]
    tau_mid: list[float]
    kl_drop: float
    fisher_integral: float
    integrated_relative_error: float
    pointwise_median_relative_error: float | None
    monotone: bool


@dataclass(frozen=True)
class FreeEnergyCurve:
    """A free energy along times t (grid JKO: with the exact KL at the same times)."""

    t: list[float]
    free_energy: list[float]
    exact: list[float] | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class JKOvsFP:
    """Closed-form JKO iterates at each h against the exact OU marginals: max_k W2 error, the
    curves (keyed by str(h)), the exact KL curve and the fitted order of the error in h."""

    h: list[float]
    max_w2_error: list[float]
    curves: dict[str, FreeEnergyCurve]
    exact: FreeEnergyCurve
    order: float | None


@dataclass(frozen=True)
class GridJKO:
    """Entropic grid JKO at each h: max_k |F(rho_k) - KL(rho_kh)|, curves, wall seconds."""

    h: list[float]
    max_kl_error: list[float]
    curves: dict[str, FreeEnergyCurve]
    seconds: list[float]
    grid: int


@dataclass(frozen=True)
class FreeEnergyNumbers:
    mixture: str
    curve: KLCurve
    de_bruijn: DeBruijn
    jko: JKOvsFP
    jko_grid: GridJKO | None = field(default=None, metadata=OMIT_NONE)


def kl_curve(mix, taus: list[float], n: int, g: torch.Generator) -> KLCurve:
    """Monte Carlo KL(rho_tau || N(0, I)) and I(rho_tau || N(0, I)) with common random numbers."""
    x = mix.sample(n, g)
    z = torch.randn(x.shape, generator=g, dtype=torch.float64)
    d = mix.dim
    kl, fisher, kl_se = [], [], []
    for tau in taus:
        a, s = math.exp(-tau), math.sqrt(-math.expm1(-2 * tau))
        rho = mix.noised(a, s)
        y = a * x + s * z
        log_pi = -0.5 * (y**2).sum(-1) - 0.5 * d * math.log(2 * math.pi)
        lr = rho.log_prob(y) - log_pi
        kl.append(float(lr.mean()))
        kl_se.append(float(lr.std() / math.sqrt(n)))
        fisher.append(float(((rho.score(y) + y) ** 2).sum(-1).mean()))
    return KLCurve(list(taus), kl, kl_se, fisher)


def _debruijn(c: KLCurve) -> DeBruijn:
    tau, kl, fi = c.tau, c.kl, c.fisher
    deriv, mid_fi = [], []
    for k in range(1, len(tau) - 1):
        deriv.append((kl[k + 1] - kl[k - 1]) / (tau[k + 1] - tau[k - 1]))
        mid_fi.append(fi[k])
    integral = sum(0.5 * (fi[k] + fi[k + 1]) * (tau[k + 1] - tau[k]) for k in range(len(tau) - 1))
    drop = kl[0] - kl[-1]
    rel = [abs(dv + f) / f for dv, f in zip(deriv, mid_fi) if f > 0]
    return DeBruijn(
        dkl_dtau=deriv,
        minus_fisher=[-f for f in mid_fi],
        tau_mid=tau[1:-1],
        kl_drop=drop,
        fisher_integral=integral,
        integrated_relative_error=abs(drop - integral) / max(abs(drop), 1e-300),
        pointwise_median_relative_error=sorted(rel)[len(rel) // 2] if rel else None,
        monotone=all(_monotone_checks(c)),
    )


def _monotone_checks(c: KLCurve) -> list[bool]:
    """KL(tau_k+1) <= KL(tau_k) + 3 standard errors at every step."""
    return [b <= a + 3 * se for a, b, se in zip(c.kl, c.kl[1:], c.kl_std_error)]


def _fitted_order(hs: list[float], errs: list[float]) -> float | None:
    """The least-squares slope of log error against log h."""
    lh = [math.log(h) for h in hs]
    le = [math.log(max(e, 1e-300)) for e in errs]
    mx, my = sum(lh) / len(lh), sum(le) / len(le)
    den = sum((a - mx) ** 2 for a in lh)
    return sum((a - mx) * (b - my) for a, b in zip(lh, le)) / den if den > 0 else None


def jko_vs_fp(mix, hs: list[float], t_max: float) -> JKOvsFP:
    """Closed-form JKO iterates against the exact OU marginals."""
    d = mix.dim
    zero, eye = torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
    target = gaussian_potential(zero, eye)
    init = Gaussian(mean=mix.mean, cov=mix.cov)
    errors, curves = [], {}
    for h in hs:
        res = gaussian_jko(init, target, h, max(1, round(t_max / h)))
        errs = []
        for t, st in zip(res.times.tolist(), res.states):
            ex = ou_gaussian(init, target, t)
            errs.append(float(gaussian_w2(st.mean, st.cov, ex.mean, ex.cov)))
        errors.append(max(errs))
        curves[str(h)] = FreeEnergyCurve(res.times.tolist(), res.free_energy.tolist())
    ts = torch.linspace(0, t_max, 101, dtype=torch.float64).tolist()

    def kl(t: float) -> float:
        g = ou_gaussian(init, target, t)
        return gaussian_kl(g.mean, g.cov, zero, eye)

    exact = FreeEnergyCurve(ts, [kl(t) for t in ts])
    return JKOvsFP(list(hs), errors, curves, exact, _fitted_order(list(hs), errors))


def grid_jko_vs_fp(
    mix, hs: list[float], t_max: float, n_grid: int, half_width: float, g: torch.Generator
) -> GridJKO:
    """Entropic grid JKO from the mixture's density: F(rho_k) against the exact KL(rho_kh)."""
    u = torch.linspace(-half_width, half_width, n_grid, dtype=torch.float64)
    X, Y = torch.meshgrid(u, u, indexing="ij")
    dens = mix.log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).exp().reshape(X.shape)
    out = GridJKO([], [], {}, [], n_grid)
    for h in hs:
        t0 = time.perf_counter()
        res = jko_grid([u, u], dens, standard_gaussian_potential(2), h, max(1, round(t_max / h)))
        F = res.free_energy.tolist()
        exact = kl_curve(mix, res.times.tolist(), 20000, g).kl
        out.h.append(h)
        out.max_kl_error.append(max(abs(a - b) for a, b in zip(F, exact)))
        out.curves[str(h)] = FreeEnergyCurve(res.times.tolist(), F, exact)
        out.seconds.append(time.perf_counter() - t0)
    return out


def taus(cfg: FreeEnergyProfile) -> list[float]:
    """The OU times of the KL curve: n_tau of them up to tau_max, dense near tau = 0."""
    K = cfg.n_tau - 1
    return [cfg.tau_max * (k / K) ** 2 for k in range(K + 1)]


def measure(ctx: Context, cfg: FreeEnergyProfile) -> FreeEnergyNumbers:
    mix = get_mixture(cfg.mixture)
    ctx.report("KL and Fisher information along the OU flow", 0.1)
    curve = kl_curve(mix, taus(cfg), cfg.n, ctx.generator(300))
    ctx.report("JKO iterates against Fokker-Planck", 0.7)
    jko = jko_vs_fp(mix, list(cfg.h), cfg.jko_t_max)
    grid = None
    if cfg.grid_jko is not None and mix.dim == 2:
        ctx.report("entropic grid JKO on the mixture", 0.75)
        gc = cfg.grid_jko
        grid = grid_jko_vs_fp(
            mix, list(gc.h), cfg.jko_t_max, gc.n, gc.half_width, ctx.generator(301)
        )
    return FreeEnergyNumbers(cfg.mixture, curve, _debruijn(curve), jko, grid)


@register_experiment(
    "free-energy", FreeEnergyProfile, title="Free-energy descent", profiles=PROFILES, order=40
)
def run(ctx: Context) -> ExperimentResult:
    t0 = time.perf_counter()
    numbers = measure(ctx, ctx.config.of(FreeEnergyProfile))
    return ExperimentResult(
        name="free-energy",
        title="Free-energy descent",
        claim=CLAIM,
        verdict=verdict(numbers),
        numbers=to_json(numbers),
        tables=tables(numbers),
        figures=_figures(ctx, numbers),
        notes=[GRID_NOTE] if numbers.jko_grid is not None else [],
        seconds=time.perf_counter() - t0,
    )


def tables(n: FreeEnergyNumbers) -> list[Table]:
    db, jko, gj = n.de_bruijn, n.jko, n.jko_grid
    out = [
        table(
            "de Bruijn identity",
            ["KL(0) - KL(tau_max)", "int I dtau", "relative error", "median pointwise rel. error"],
            [
                [
                    db.kl_drop,
                    db.fisher_integral,
                    db.integrated_relative_error,
                    db.pointwise_median_relative_error,
                ]
            ],
        ),
        table(
            "JKO vs Fokker-Planck (max_k W2 to the exact marginal)",
            ["h", "max W2 error"],
            [[h, e] for h, e in zip(jko.h, jko.max_w2_error)],
        ),
    ]
    if gj is not None:
        out.append(
            table(
                f"Entropic grid JKO ({gj.grid}^2 grid) from the mixture: "
                "max_k |F(rho_k) - KL(rho_kh)|",
                ["h", "max KL error", "seconds"],
                [list(r) for r in zip(gj.h, gj.max_kl_error, gj.seconds)],
            )
        )
    return out


def _figures(ctx: Context, n: FreeEnergyNumbers) -> list[Figure]:
    curve, db = n.curve, n.de_bruijn
    S = figures.Series
    out = [
        figures.curves(
            ctx.figures,
            "free-energy-kl",
            "KL(rho_tau || N(0, I)) and the relative Fisher information along the OU flow",
            [
                S(curve.tau, curve.kl, "KL (Monte Carlo)"),
                S(curve.tau, curve.fisher, "Fisher information I"),
            ],
            xlabel="tau (OU time)",
            ylabel="nats",
            logy=True,
        ),
        figures.curves(
            ctx.figures,
            "free-energy-debruijn",
            "de Bruijn: dKL/dtau (finite differences) against -I",
            [S(db.tau_mid, db.dkl_dtau, "dKL/dtau"), S(db.tau_mid, db.minus_fisher, "-I", "--")],
            xlabel="tau",
            ylabel="rate",
        ),
        _kl_figure(
            ctx,
            "free-energy-jko",
            "KL along JKO iterates and along the exact Fokker-Planck flow (Gaussian start)",
            S(n.jko.exact.t, n.jko.exact.free_energy, "Fokker-Planck (exact)", "k-"),
            n.jko.curves,
            "JKO",
        ),
    ]
    if n.jko_grid is not None:
        out.append(
            _kl_figure(
                ctx,
                "free-energy-jko-grid",
                "KL along entropic "
                f"grid JKO iterates from the mixture {n.mixture} and "
                "along the Fokker-Planck flow",
                S(curve.tau, curve.kl, "Fokker-Planck (exact mixture, MC)", "k-"),
                n.jko_grid.curves,
                "grid JKO",
            )
        )
    return out


def _kl_figure(
    ctx: Context,
    name: str,
    caption: str,
    exact: figures.Series,
    curves: dict[str, FreeEnergyCurve],
    label: str,
) -> Figure:
    """An exact KL curve with the iterates' free energies at each step size h (dots)."""
    series = [exact] + [
        figures.Series(c.t, c.free_energy, f"{label} h = {h}", "o") for h, c in curves.items()
    ]
    return figures.curves(ctx.figures, name, caption, series, xlabel="t", ylabel="KL", logy=True)


def verdict(n: FreeEnergyNumbers) -> Verdict:
    db, jko, grid = n.de_bruijn, n.jko, n.jko_grid
    kl = n.curve.kl
    checks = [
        Check(
            "de Bruijn: |KL drop - int I| / KL drop",
            db.integrated_relative_error,
            "<",
            DEBRUIJN_TOL,
        ),
        *(
            Check(f"KL at tau_{k + 1} against KL at tau_{k} + 3 s.e.", b, "<=", a + 3 * se)
            for k, (a, b, se) in enumerate(zip(kl, kl[1:], n.curve.kl_std_error))
        ),
    ]
    text = (
        f"KL {'decreases' if db.monotone else 'does not decrease'} monotonically; "
        f"int I matches the KL drop to {100 * db.integrated_relative_error:.1f}% "
        f"(tolerance {100 * DEBRUIJN_TOL:g}%)"
    )
    errs = jko.max_w2_error
    shrink = all(b < a for a, b in zip(errs, errs[1:]))
    checks += _shrinks("JKO max W2 error", jko.h, errs)
    checks += [
        Check("fitted order of the JKO error in h", jko.order, ">", 0.7),
        Check("fitted order of the JKO error in h", jko.order, "<", 1.3),
    ]
    text += (
        f"; JKO error {'shrinks' if shrink else 'does not shrink'} with h, "
        f"{errs[0]:.2e} -> {errs[-1]:.2e}, fitted order {jko.order:.2f}"
    )
    if grid is not None:
        ge = grid.max_kl_error
        checks += _shrinks("grid JKO max KL error", grid.h, ge)
        text += (
            f"; grid JKO on the mixture: max KL error {ge[0]:.3f} -> {ge[-1]:.3f} as h "
            f"goes {grid.h[0]:g} -> {grid.h[-1]:g}"
        )
    return Verdict.judge(checks, text)


def _shrinks(what: str, hs: list[float], errs: list[float]) -> list[Check]:
    """The error at each h below the error at the h before it."""
    return [
        Check(f"{what} at h = {h:g} against h = {h0:g}", b, "<", a)
        for h0, h, a, b in zip(hs, hs[1:], errs, errs[1:])
    ]
