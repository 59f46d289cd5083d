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
from .context import Context, ExperimentResult, Verdict, table

CLAIM = (
    "The forward diffusion is the W2 gradient flow of KL(. || N(0, I)): the KL decreases "
    "with dissipation equal to the relative Fisher information (de Bruijn), and JKO "
    "iterates converge to the Fokker-Planck curve as the step h shrinks (first order)."
)
DEBRUIJN_TOL = 0.05


def kl_curve(mix, taus: list[float], n: int, g: torch.Generator) -> dict:
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
    return {"tau": list(taus), "kl": kl, "kl_std_error": kl_se, "fisher": fisher}


def _debruijn(c: dict) -> dict:
    tau, kl, fi = c["tau"], c["kl"], c["fisher"]
    deriv, mid_fi = [], []
    for k in range(1, len(tau) - 1):
        deriv.append((kl[k + 1] - kl[k - 1]) / (tau[k + 1] - tau[k - 1]))
        mid_fi.append(fi[k])
    integral = sum(0.5 * (fi[k] + fi[k + 1]) * (tau[k + 1] - tau[k]) for k in range(len(tau) - 1))
    drop = kl[0] - kl[-1]
    rel = [abs(dv + f) / f for dv, f in zip(deriv, mid_fi) if f > 0]
    return {
        "dkl_dtau": deriv,
        "minus_fisher": [-f for f in mid_fi],
        "tau_mid": tau[1:-1],
        "kl_drop": drop,
        "fisher_integral": integral,
        "integrated_relative_error": abs(drop - integral) / max(abs(drop), 1e-300),
        "pointwise_median_relative_error": sorted(rel)[len(rel) // 2] if rel else None,
        "monotone": all(b <= a + 3 * se for a, b, se in zip(kl, kl[1:], c["kl_std_error"])),
    }


def jko_vs_fp(mix, hs: list[float], t_max: float) -> dict:
    """Closed-form JKO iterates against the exact OU marginals."""
    d = mix.dim
    target = gaussian_potential(
        torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
    )
    init = Gaussian(mean=mix.mean, cov=mix.cov)
    out = {"h": [], "max_w2_error": [], "curves": {}}
    for h in hs:
        k = max(1, round(t_max / h))
        res = gaussian_jko(init, target, h, k)
        errs = []
        for t, st in zip(res.times.tolist(), res.states):
            ex = ou_gaussian(init, target, t)
            errs.append(float(gaussian_w2(st.mean, st.cov, ex.mean, ex.cov)))
        out["h"].append(h)
        out["max_w2_error"].append(max(errs))
        out["curves"][str(h)] = {"t": res.times.tolist(), "free_energy": res.free_energy.tolist()}
    ts = torch.linspace(0, t_max, 101, dtype=torch.float64).tolist()
    zero, eye = torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)

    def kl(t: float) -> float:
        g = ou_gaussian(init, target, t)
        return gaussian_kl(g.mean, g.cov, zero, eye)

    out["exact"] = {"t": ts, "free_energy": [kl(t) for t in ts]}
    lh = [math.log(h) for h in out["h"]]
    le = [math.log(max(e, 1e-300)) for e in out["max_w2_error"]]
    mx, my = sum(lh) / len(lh), sum(le) / len(le)
    den = sum((a - mx) ** 2 for a in lh)
    out["order"] = sum((a - mx) * (b - my) for a, b in zip(lh, le)) / den if den > 0 else None
    return out


def grid_jko_vs_fp(
    mix, hs: list[float], t_max: float, n_grid: int, half_width: float, g: torch.Generator
) -> dict:
    """Entropic grid JKO from the mixture's density: F(rho_k) against the exact KL(rho_kh)."""
    u = torch.linspace(-half_width, half_width, n_grid, dtype=torch.float64)
    X, Y = torch.meshgrid(u, u, indexing="ij")
    dens = mix.log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).exp().reshape(X.shape)
    out = {"h": [], "max_kl_error": [], "curves": {}, "seconds": [], "grid": n_grid}
    for h in hs:
        t0 = time.perf_counter()
        res = jko_grid([u, u], dens, standard_gaussian_potential(2), h, max(1, round(t_max / h)))
        F = res.free_energy.tolist()
        exact = kl_curve(mix, res.times.tolist(), 20000, g)["kl"]
        out["h"].append(h)
        out["max_kl_error"].append(max(abs(a - b) for a, b in zip(F, exact)))
        out["curves"][str(h)] = {"t": res.times.tolist(), "free_energy": F, "exact": exact}
        out["seconds"].append(time.perf_counter() - t0)
    return out


def run(ctx: Context) -> ExperimentResult:
    cfg = ctx.config["free-energy"]
    t0 = time.perf_counter()
    mix = get_mixture(cfg["mixture"])
    K = cfg["n_tau"] - 1
    taus = [cfg["tau_max"] * (k / K) ** 2 for k in range(K + 1)]  # dense near tau = 0
    ctx.report("KL and Fisher information along the OU flow", 0.1)
    curve = kl_curve(mix, taus, cfg["n"], ctx.generator(300))
    db = _debruijn(curve)
    ctx.report("JKO iterates against Fokker-Planck", 0.7)
    jko = jko_vs_fp(mix, list(cfg["h"]), cfg["jko_t_max"])
    numbers = {"mixture": cfg["mixture"], "curve": curve, "de_bruijn": db, "jko": jko}
    grid = cfg["grid_jko"]
    if grid and mix.dim == 2:
        ctx.report("entropic grid JKO on the mixture", 0.75)
        numbers["jko_grid"] = grid_jko_vs_fp(
            mix,
            list(grid["h"]),
            cfg["jko_t_max"],
            grid["n"],
            grid["half_width"],
            ctx.generator(301),
        )
    figs = [
        figures.curves(
            ctx.figures,
            "free-energy-kl",
            "KL(rho_tau || N(0, I)) and the relative Fisher information along the OU flow",
            [
                {"x": taus, "y": curve["kl"], "label": "KL (Monte Carlo)"},
                {"x": taus, "y": curve["fisher"], "label": "Fisher information I"},
            ],
            xlabel="tau (OU time)",
            ylabel="nats",
            logy=True,
        ),
        figures.curves(
            ctx.figures,
            "free-energy-debruijn",
            "de Bruijn: dKL/dtau (finite differences) against -I",
            [
                {"x": db["tau_mid"], "y": db["dkl_dtau"], "label": "dKL/dtau"},
                {"x": db["tau_mid"], "y": db["minus_fisher"], "label": "-I", "style": "--"},
            ],
            xlabel="tau",
            ylabel="rate",
        ),
    ]
    tables = [
        table(
            "de Bruijn identity",
            ["KL(0) - KL(tau_max)", "int I dtau", "relative error", "median pointwise rel. error"],
            [
                [
                    db["kl_drop"],
                    db["fisher_integral"],
                    db["integrated_relative_error"],
                    db["pointwise_median_relative_error"],
                ]
            ],
        )
    ]
    notes = []
    series = [
        {
            "x": jko["exact"]["t"],
            "y": jko["exact"]["free_energy"],
            "label": "Fokker-Planck (exact)",
            "style": "k-",
        }
    ]
    series += [
        {"x": c["t"], "y": c["free_energy"], "label": f"JKO h = {h}", "style": "o"}
        for h, c in jko["curves"].items()
    ]
    figs.append(
        figures.curves(
            ctx.figures,
            "free-energy-jko",
            "KL along JKO iterates and along the exact Fokker-Planck flow (Gaussian start)",
            series,
            xlabel="t",
            ylabel="KL",
            logy=True,
        )
    )
    tables.append(
        table(
            "JKO vs Fokker-Planck (max_k W2 to the exact marginal)",
            ["h", "max W2 error"],
            [[h, e] for h, e in zip(jko["h"], jko["max_w2_error"])],
        )
    )
    if "jko_grid" in numbers:
        gj = numbers["jko_grid"]
        series = [
            {
                "x": taus,
                "y": curve["kl"],
                "label": "Fokker-Planck (exact mixture, MC)",
                "style": "k-",
            }
        ]
        series += [
            {"x": c["t"], "y": c["free_energy"], "label": f"grid JKO h = {h}", "style": "o"}
            for h, c in gj["curves"].items()
        ]
        figs.append(
            figures.curves(
                ctx.figures,
                "free-energy-jko-grid",
                "KL along entropic "
                f"grid JKO iterates from the mixture {cfg['mixture']} and "
                "along the Fokker-Planck flow",
                series,
                xlabel="t",
                ylabel="KL",
                logy=True,
            )
        )
        tables.append(
            table(
                f"Entropic grid JKO ({gj['grid']}^2 grid) from the mixture: "
                "max_k |F(rho_k) - KL(rho_kh)|",
                ["h", "max KL error", "seconds"],
                [list(r) for r in zip(gj["h"], gj["max_kl_error"], gj["seconds"])],
            )
        )
        notes.append(
            "Grid JKO: Peyre's entropic scheme (eps = h^2 / 2) on the mixture's "
            "density itself; its error mixes the O(h) time step with the entropic blur "
            "(about eps / 2 of extra variance per step) and the grid."
        )
    return ExperimentResult(
        name="free-energy",
        title="Free-energy descent",
        claim=CLAIM,
        verdict=_verdict(db, jko, numbers.get("jko_grid")),
        numbers=numbers,
        tables=tables,
        figures=figs,
        notes=notes,
        seconds=time.perf_counter() - t0,
    )


def _verdict(db: dict, jko: dict, grid: dict | None = None) -> Verdict:
    ok_db = db["integrated_relative_error"] < DEBRUIJN_TOL and db["monotone"]
    text = (
        f"KL {'decreases' if db['monotone'] else 'does not decrease'} monotonically; "
        f"int I matches the KL drop to {100 * db['integrated_relative_error']:.1f}% "
        f"(tolerance {100 * DEBRUIJN_TOL:g}%)"
    )
    errs = jko["max_w2_error"]
    shrink = all(b < a for a, b in zip(errs, errs[1:]))
    order = jko["order"]
    ok_jko = shrink and order is not None and 0.7 < order < 1.3
    text += (
        f"; JKO error {'shrinks' if shrink else 'does not shrink'} with h, "
        f"{errs[0]:.2e} -> {errs[-1]:.2e}, fitted order {order:.2f}"
    )
    if grid is not None:
        ge = grid["max_kl_error"]
        ok_grid = all(b < a for a, b in zip(ge, ge[1:]))
        text += (
            f"; grid JKO on the mixture: max KL error {ge[0]:.3f} -> {ge[-1]:.3f} as h "
            f"goes {grid['h'][0]:g} -> {grid['h'][-1]:g}"
        )
        ok_jko = ok_jko and ok_grid
    holds = ok_db and ok_jko
    return Verdict(holds, f"{'holds' if holds else 'does not hold'}: {text}")
