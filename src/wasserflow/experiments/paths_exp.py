"""Experiment ``paths``: same endpoints, different paths, with exact (oracle) fields.

From N(0, I) (the VE path: its own reference N(m, S + sigma_max^2 I)) to a Gaussian N(m, S)
(``gaussian2d``) and to a Gaussian mixture (``gmm2d``), particles are transported by the exact
marginal velocity of the VP and VE probability-flow paths and of the independent linear path
(I-CFM), integrated with RK4, and along the OT geodesic (Gaussian: McCann's interpolant via
:class:`GaussianGeodesicOracle`; mixture: displacement interpolation of exact OT between noise
and data samples). For each: discrete action A, geodesic gap A - W2^2(ends), W2 of the ends and
the marginal curves W2(rho_t, rho_0) and tr Cov(rho_t).

Closed forms (Gaussian target; docs/design.md section 3): the marginal of an affine path is
N(alpha m, alpha^2 S + sigma^2 I); along an eigenvector of S (eigenvalue s^2) its variance
c = alpha^2 s^2 + sigma^2 moves with the linear field v = (c' / 2c) x, so

    A = int_0^1 [ alpha'^2 |m|^2 + sum_eig c'^2 / (4 c) ] dt,

which for the linear path is |m|^2 + sum int (t s^2 - (1 - t))^2 / ((1 - t)^2 + t^2 s^2) dt;
W2^2 of the ends is the Bures formula; the geodesic's action is W2^2 (gap 0).

The reference path to the mixture is the Benamou-Brenier geodesic between the densities
of N(0, I) and ``gmm2d``, solved on a grid (:mod:`.paths_grid`), which every path's marginals
at t = 1/4, 1/2, 3/4 meet: the OT geodesic's particles should be the closest, at the floor. So
do trained models (:mod:`.paths_learned`: I-CFM, OT-CFM, rectified flow and DDPM trained on
``gmm2d``, sampled with their probability-flow ODE); the OT-coupled ones should be the closest.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import torch
from scipy.integrate import quad

from ..data import get_mixture
from ..geometry import (
    exact_ot,
    gaussian_geodesic,
    gaussian_w2_squared,
    trajectory_geometry,
)
from ..paths import (
    AffinePath,
    GaussianGeodesicOracle,
    LinearSchedule,
    MixtureOracle,
    VESchedule,
    VPSchedule,
    ve_sigma_max_from_data,
)
from ..samplers import Field, rk4, uniform_grid
from . import figures
from .context import Check, Context, ExperimentResult, Figure, Table, Verdict, table
from .paths_grid import (
    GRID_TIMES,
    GridComparison,
    GridPlot,
    GridProfile,
    frames_near,
    grid_figures,
    grid_geodesic_comparison,
    grid_tables,
    grid_verdict,
    learned_verdict,
)
from .paths_learned import PathsLearnedProfile, learned_trajectories
from .records import FLATTEN, OMIT_NONE, to_json
from .registry import Profile, register_experiment

CLAIM = (
    "Between the same endpoints the OT geodesic has the least action: its geodesic gap "
    "A - W2^2 is zero, while the diffusion (VP, VE) and independent-coupling (I-CFM) paths "
    "have a strictly positive gap; and to the mixture, the OT geodesic's marginals are the "
    "ones closest to the Benamou-Brenier geodesic computed on a grid, and of models "
    "trained on it the OT-coupled flows' ODE marginals stay closer to that geodesic than the "
    "independent-coupling flow's and the diffusion model's."
)
GEO_TOL = 1e-3  # |gap| / W2^2 below this: zero to discretisation error
POS_TOL = 1e-2  # gap / W2^2 above this: clearly positive


T_END = {"VP": 1.0 - 1e-4}  # the VP field has d sigma / dt -> inf at t = 1 (sigma = 0)
NAMES = ("VP", "VE", "I-CFM", "OT geodesic")
NOTES = [
    "VE starts from its own reference (data + sigma_max noise), so its endpoints "
    "differ; its gap is measured against the W2 of its own ends.",
    "Actions are discrete (frames of the RK4 grid); 'action s.e.' is the Monte Carlo "
    "standard error over particles.",
    "Grid geodesic: Douglas-Rachford proximal splitting on a staggered space-time grid "
    "(Papadakis, Peyre & Oudet 2014) between the two densities on [-5, 5]^2; W2 compares "
    "the first particles of each path with the cell centres weighted by the grid "
    "density (exact OT), L1 the grid density with the closed-form marginal density.",
    "Learned rows (dashed in the figure): the method trained on gmm2d with the profile's "
    "paths.learned budget, its ODE sampler's frame nearest each t; the same W2 and floor "
    "as the oracle paths'.",
]


@dataclass(frozen=True)
class PathsProfile(Profile):
    """n particles per path, n_steps RK4 steps, n_times frames of the marginal curves, the
    grid geodesic and the models trained on gmm2d."""

    n: int
    n_steps: int
    n_times: int
    grid: GridProfile
    learned: PathsLearnedProfile


PROFILES = {  # the learned models: trained on gmm2d, their ODE marginals against the grid geodesic
    "test": PathsProfile(
        n=300,
        n_steps=40,
        n_times=6,
        grid=GridProfile(n=24, n_times=8, iterations=200, n_w2=300, replicates=3),
        learned=PathsLearnedProfile(
            methods=("icfm", "otcfm", "ddpm"),
            steps=200,
            warmup=20,
            width=48,
            depth=3,
            batch_size=256,
            lr=2e-3,
            nfe=20,
            reflow_pairs=1024,
            reflow_nfe=20,
        ),
    ),
    "quick": PathsProfile(
        n=600,
        n_steps=50,
        n_times=11,
        grid=GridProfile(n=24, n_times=8, iterations=300, n_w2=400, replicates=4),
        learned=PathsLearnedProfile(
            methods=("icfm", "otcfm", "ddpm"),
            steps=800,
            warmup=50,
            width=64,
            depth=3,
            batch_size=256,
            lr=2e-3,
            nfe=50,
            reflow_pairs=2048,
            reflow_nfe=50,
        ),
    ),
    "default": PathsProfile(
        n=1000,
        n_steps=100,
        n_times=21,
        grid=GridProfile(n=32, n_times=16, iterations=500, n_w2=1000, replicates=10),
        learned=PathsLearnedProfile(
            methods=("icfm", "otcfm", "rectified-flow", "ddpm"),
            steps=1000,
            warmup=100,
            width=128,
            depth=3,
            batch_size=256,
            lr=2e-3,
            nfe=100,
            reflow_pairs=4096,
            reflow_nfe=100,
        ),
    ),
    "full": PathsProfile(
        n=4000,
        n_steps=400,
        n_times=41,
        grid=GridProfile(n=64, n_times=32, iterations=None, n_w2=1000, replicates=10),
        learned=PathsLearnedProfile(
            methods=("icfm", "otcfm", "sbcfm", "rectified-flow", "ddpm", "sde-vp"),
            steps=10000,
            warmup=500,
            width=256,
            depth=4,
            batch_size=512,
            lr=2e-3,
            nfe=200,
            reflow_pairs=16384,
            reflow_nfe=100,
        ),
    ),
}


@dataclass(frozen=True)
class Marginals:
    """W2(rho_t, rho_0) and tr Cov(rho_t) at frames t of a trajectory set."""

    t: list[float]
    w2_to_start: list[float]
    cov_trace: list[float]


@dataclass(frozen=True)
class PathRecord:
    """One path's particles: discrete action A, W2^2 of the ends, the gap A - W2^2 (absolute
    and relative), the action's Monte Carlo standard error, NFE, the marginal curves, 24
    particle paths and the schedule (the oracle paths)."""

    action: float
    endpoint_w2_squared: float
    geodesic_gap: float
    relative_gap: float
    action_std_error: float
    nfe: int
    marginals: Marginals
    sample: list[list[list[float]]]
    schedule: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class ClosedFormPath:
    """One path's action, W2^2 of the ends, gap and marginal curves in closed form (to the
    Gaussian), and for I-CFM the docs/design.md formula's action."""

    action: float
    endpoint_w2_squared: float
    geodesic_gap: float
    cov_trace: list[float]
    w2_to_start: list[float]
    design_formula_action: float | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class ClosedForms:
    """The closed forms of every path (keyed by path name) at the times t."""

    paths: dict[str, ClosedFormPath] = field(metadata=FLATTEN)
    t: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class PathsTarget:
    """Every path's record to one target (keyed by path name), with the closed forms
    (Gaussian target) or the grid geodesic comparison (mixture)."""

    paths: dict[str, PathRecord] = field(metadata=FLATTEN)
    closed_form: ClosedForms | None = field(default=None, metadata=OMIT_NONE)
    grid_geodesic: GridComparison | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class PathsNumbers:
    """The records by target ("gaussian2d", "gmm2d")."""

    targets: dict[str, PathsTarget] = field(metadata=FLATTEN)


def _paths(target_samples: torch.Tensor) -> dict[str, AffinePath]:
    sigma_max = ve_sigma_max_from_data(target_samples)
    return {
        "VP": AffinePath(VPSchedule()),
        "VE": AffinePath(VESchedule(0.01, sigma_max)),
        "I-CFM": AffinePath(LinearSchedule()),
    }


def closed_form_action(
    path: AffinePath, mean: torch.Tensor, cov: torch.Tensor, t_end: float = 1.0
) -> float:
    """A = int_0^t_end alpha'^2 |m|^2 + sum_eig c'^2 / (4c) dt for the affine path to N(m, S),
    times t_end (the action of the path reparametrised onto [0, 1])."""
    eig = torch.linalg.eigvalsh(cov.to(torch.float64)).clamp_min(0.0).tolist()
    m2 = float((mean.to(torch.float64) ** 2).sum())

    def integrand(t: float) -> float:
        c = path.coefficients(torch.tensor(t, dtype=torch.float64))
        a, s, da, ds = float(c.alpha), float(c.sigma), float(c.d_alpha), float(c.d_sigma)
        out = da**2 * m2
        for lam in eig:
            var = a * a * lam + s * s
            dvar = 2 * a * da * lam + 2 * s * ds
            out += dvar**2 / (4 * var)
        return out

    val, _ = quad(integrand, 0.0, t_end, limit=200, epsabs=1e-11, epsrel=1e-10)
    return float(val) * t_end


def icfm_action_formula(mean: torch.Tensor, cov: torch.Tensor) -> float:
    """docs/design.md section 3: |m|^2 + sum_eig int_0^1 (t s^2 - (1-t))^2 / ((1-t)^2 + t^2 s^2) dt."""
    total = float((mean.to(torch.float64) ** 2).sum())
    for lam in torch.linalg.eigvalsh(cov.to(torch.float64)).tolist():
        total += quad(
            lambda t, s2=lam: (t * s2 - (1 - t)) ** 2 / ((1 - t) ** 2 + t * t * s2),
            0.0,
            1.0,
            epsabs=1e-12,
            epsrel=1e-11,
        )[0]
    return total


def _marginal_curve(traj: torch.Tensor, times: torch.Tensor, n_times: int) -> Marginals:
    """W2(rho_t, rho_0) and tr Cov(rho_t) at about n_times frames of a trajectory set."""
    idx = torch.linspace(0, traj.shape[0] - 1, n_times).round().long().unique()
    sub = traj[:, :200]  # W2 of the marginals on 200 particles: cheap, ~5% error
    w2, tr = [], []
    for k in idx.tolist():
        w2.append(0.0 if k == 0 else exact_ot(sub[0], sub[k]).w2)
        tr.append(float(torch.trace(torch.cov(traj[k].mT))))
    return Marginals(times[idx].tolist(), w2, tr)


def _per_particle_se(traj: torch.Tensor, times: torch.Tensor) -> float:
    dt = torch.diff(times)
    per = ((torch.diff(traj, dim=0) ** 2).sum(-1) / dt[:, None]).sum(0)
    return float(per.std() / math.sqrt(per.shape[0]))


def _record(
    traj: torch.Tensor, times: torch.Tensor, n_times: int, nfe: int, schedule: str | None = None
) -> PathRecord:
    geo = trajectory_geometry(traj, times)
    return PathRecord(
        action=geo.action,
        endpoint_w2_squared=geo.endpoint_w2_squared,
        geodesic_gap=geo.geodesic_gap,
        relative_gap=geo.geodesic_gap / max(geo.endpoint_w2_squared, 1e-300),
        action_std_error=_per_particle_se(traj, times),
        nfe=nfe,
        marginals=_marginal_curve(traj, times, n_times),
        sample=traj[:, :24].tolist()[:: max(1, traj.shape[0] // 20)],
        schedule=schedule,
    )


def _oracle_traj(
    oracle: MixtureOracle, n: int, n_steps: int, g: torch.Generator, t_end: float = 1.0
):
    x0 = oracle.marginal(0.0).sample(n, g).to(torch.float64)
    res = rk4(
        Field.from_oracle(oracle), x0, uniform_grid(n_steps, 0.0, t_end), return_trajectory=True
    )
    return res.trajectory, res.times, res.nfe


def _ot_pairs(mix, n: int, g: torch.Generator, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n noises x0 ~ N(0, I) and n draws of ``mix`` matched by exact OT, in independent blocks
    of ``block`` (the last may be smaller): (x0, y) with y[i] the match of x0[i]."""
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = mix.sample(n, g).to(torch.float64)
    ends = []
    for a, b in zip(x0.split(block), y.split(block)):
        ends.append(b[exact_ot(a, b).plan.argmax(1)])  # uniform n-to-n: a permutation / n
    return x0, torch.cat(ends)


def _displace(x0: torch.Tensor, y: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """McCann's displacement interpolation of matched pairs: (1 - t) x0 + t y at each time."""
    return torch.stack([(1 - t) * x0 + t * y for t in times.tolist()])


def _ot_geodesic(target: str, mix, n: int, n_steps: int, g: torch.Generator):
    """The OT geodesic's particles from N(0, I): McCann's interpolant by its exact field (a
    Gaussian target) or displacement interpolation of exact OT between samples (a mixture)."""
    grid = uniform_grid(n_steps)
    if target == "gaussian2d":
        x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
        orc = GaussianGeodesicOracle(mix.means[0], mix.covs[0])
        r = rk4(orc.velocity, x0, grid, return_trajectory=True)
        return r.trajectory, grid, r.nfe
    return _displace(*_ot_pairs(mix, n, g, n), grid), grid, 0


def _target(ctx: Context, cfg: PathsProfile, j: int, target: str):
    """The target mixture, its data sample and every path's record to it."""
    mix = get_mixture(target)
    g = ctx.generator(100 + j)
    n = cfg.n
    data = mix.sample(n, g).to(torch.float64)
    res: dict[str, PathRecord] = {}
    for i, (name, path) in enumerate(_paths(data).items()):
        ctx.report(f"{target}: {name} path", (3 * j + i) / 9)
        oracle = MixtureOracle(mix, path)
        traj, times, nfe = _oracle_traj(oracle, n, cfg.n_steps, g, T_END.get(name, 1.0))
        res[name] = _record(traj, times, cfg.n_times, nfe, repr(path.schedule))
    ctx.report(f"{target}: OT geodesic", (3 * j + 3) / 9)
    traj, grid, nfe = _ot_geodesic(target, mix, n, cfg.n_steps, g)
    res["OT geodesic"] = _record(traj, grid, cfg.n_times, nfe)
    return mix, data, res


def _grid_particles(cfg: PathsProfile, mix, data, g: torch.Generator) -> dict:
    """The paths' particles at GRID_TIMES for the grid comparison (name -> (frames, times)),
    the ``cfg.grid.replicates`` independent draws of ``cfg.grid.n_w2`` side by side: the
    oracle paths' drawn from their closed-form marginals (the law their exact ODE carries
    N(0, I) to, without its integration error), the OT geodesic's displaced draw by draw."""
    n, times = cfg.grid.particles, torch.tensor(GRID_TIMES, dtype=torch.float64)

    def frames(path: AffinePath) -> torch.Tensor:
        marginal = MixtureOracle(mix, path).marginal
        return torch.stack([marginal(t).sample(n, g).to(torch.float64) for t in GRID_TIMES])

    trajs = {name: (frames(path), times) for name, path in _paths(data).items()}
    trajs["OT geodesic"] = (_displace(*_ot_pairs(mix, n, g, cfg.grid.n_w2), times), times)
    return trajs


def _grid_geodesic(ctx: Context, cfg: PathsProfile, target: str, mix, data):
    """Trained models' ODE trajectories beside the paths', all against the grid geodesic."""
    learned = learned_trajectories(ctx, cfg.learned, cfg.grid.particles, (7 / 9, 8 / 9))
    trajs = _grid_particles(cfg, mix, data, ctx.generator(310))
    trajs.update({p: (r.traj, r.times) for p, r in learned.items()})
    ctx.report(f"{target}: grid geodesic (Benamou-Brenier)", 8 / 9)
    gg, plot = grid_geodesic_comparison(mix, _paths(data), trajs, cfg.grid, ctx.generator(300))
    plot = replace(plot, learned={p: frames_near(r.traj, r.times) for p, r in learned.items()})
    return replace(gg, learned={p: r.info for p, r in learned.items()}), plot


def measure(ctx: Context, cfg: PathsProfile) -> tuple[PathsNumbers, GridPlot | None]:
    """Every path to gaussian2d (with closed forms) and to gmm2d (with the grid geodesic and
    the trained models); also the grid figure's arrays."""
    targets: dict[str, PathsTarget] = {}
    plot = None
    for j, target in enumerate(("gaussian2d", "gmm2d")):
        mix, data, res = _target(ctx, cfg, j, target)
        if target == "gaussian2d":
            targets[target] = PathsTarget(
                res, closed_form=_closed_forms(mix, _paths(data), cfg.n_times)
            )
        else:
            gg, plot = _grid_geodesic(ctx, cfg, target, mix, data)
            targets[target] = PathsTarget(res, grid_geodesic=gg)
    return PathsNumbers(targets), plot


@register_experiment(
    "paths",
    PathsProfile,
    title="Same endpoints, different paths (exact fields)",
    profiles=PROFILES,
    order=10,
)
def run(ctx: Context) -> ExperimentResult:
    t0 = time.perf_counter()
    numbers, plot = measure(ctx, ctx.config.of(PathsProfile))
    return ExperimentResult(
        name="paths",
        title="Same endpoints, different paths (exact fields)",
        claim=CLAIM,
        verdict=verdict(numbers),
        numbers=to_json(numbers),
        tables=tables(numbers),
        figures=_figures(ctx, numbers, plot),
        seconds=time.perf_counter() - t0,
        notes=NOTES,
    )


def _closed_form_path(path: AffinePath, m, S, t_end: float, ts: list[float]) -> ClosedFormPath:
    eye = torch.eye(2, dtype=torch.float64)

    def marg(t):
        c = path.coefficients(torch.tensor(float(t), dtype=torch.float64))
        return float(c.alpha) * m, float(c.alpha) ** 2 * S + float(c.sigma) ** 2 * eye

    m0, S0 = marg(0.0)
    m1, S1 = marg(t_end)
    w2sq = float(gaussian_w2_squared(m0, S0, m1, S1))
    action = closed_form_action(path, m, S, t_end)
    return ClosedFormPath(
        action=action,
        endpoint_w2_squared=w2sq,
        geodesic_gap=action - w2sq,
        cov_trace=[float(torch.trace(marg(t)[1])) for t in ts],
        w2_to_start=[float(gaussian_w2_squared(m0, S0, *marg(t)).sqrt()) for t in ts],
    )


def _closed_forms(mix, paths: dict[str, AffinePath], nt: int) -> ClosedForms:
    m, S = mix.means[0], mix.covs[0]
    eye, zero = torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    ts = torch.linspace(0, 1, nt, dtype=torch.float64)
    cf: dict[str, ClosedFormPath] = {}
    for name, path in paths.items():
        t_end = T_END.get(name, 1.0)
        cf[name] = _closed_form_path(path, m, S, t_end, (ts * t_end).tolist())
    cf["I-CFM"] = replace(cf["I-CFM"], design_formula_action=icfm_action_formula(m, S))
    w2sq = float(gaussian_w2_squared(zero, eye, m, S))
    geo = [gaussian_geodesic(zero, eye, m, S, float(t)) for t in ts.tolist()]
    cf["OT geodesic"] = ClosedFormPath(
        action=w2sq,
        endpoint_w2_squared=w2sq,
        geodesic_gap=0.0,
        cov_trace=[float(torch.trace(q.cov)) for q in geo],
        w2_to_start=[math.sqrt(w2sq) * float(t) for t in ts.tolist()],
    )
    return ClosedForms(cf, ts.tolist())


def verdict(n: PathsNumbers) -> Verdict:
    recs = [t.paths for t in n.targets.values()]
    geo = max(abs(r["OT geodesic"].relative_gap) for r in recs)
    others = min(r[p].relative_gap for r in recs for p in ("VP", "VE", "I-CFM"))
    checks = [
        Check("largest |gap| / W2^2 of the OT geodesic", geo, "<", GEO_TOL),
        Check("smallest gap / W2^2 of VP, VE and I-CFM", others, ">", POS_TOL),
    ]
    text = (
        f"the OT geodesic's relative gap is at most {geo:.1e} (tolerance {GEO_TOL:g}); the "
        f"smallest other gap is {others:.3f} W2^2 (> {POS_TOL:g} needed)"
    )
    for t, res in n.targets.items():
        if res.grid_geodesic is not None:
            grid_checks, grid_text = grid_verdict(res.grid_geodesic)
            learned_checks, learned_text = learned_verdict(res.grid_geodesic)
            checks += grid_checks + learned_checks
            text += f"; to {t}, {grid_text}; {learned_text}"
    return Verdict.judge(checks, text)


PATH_COLUMNS = ["path", "action", "action s.e.", "W2^2 ends", "gap", "gap / W2^2", "NFE"]
CLOSED_FORM_COLUMNS = ["action (closed form)", "W2^2 (Bures)", "gap (closed form)"]


def _path_table(target: str, res: PathsTarget) -> Table:
    """Every path's action, ends and gap to ``target``, beside the closed forms if any."""
    cf = res.closed_form
    rows = []
    for p in NAMES:
        r = res.paths[p]
        row = [
            p,
            r.action,
            r.action_std_error,
            r.endpoint_w2_squared,
            r.geodesic_gap,
            r.relative_gap,
            r.nfe,
        ]
        if cf is not None:
            c = cf.paths[p]
            row += [c.action, c.endpoint_w2_squared, c.geodesic_gap]
        rows.append(row)
    cols = PATH_COLUMNS + (CLOSED_FORM_COLUMNS if cf is not None else [])
    return table(f"N(0, I) to {target}", cols, rows)


def tables(n: PathsNumbers) -> list[Table]:
    out = []
    for target, res in n.targets.items():
        out.append(_path_table(target, res))
        if res.grid_geodesic is not None:
            ends = res.paths["OT geodesic"].endpoint_w2_squared
            out += grid_tables(target, res.grid_geodesic, ends)
    gauss = n.targets.get("gaussian2d")
    if gauss is not None and gauss.closed_form is not None:
        icfm = gauss.closed_form.paths["I-CFM"]
        out.append(
            table(
                "I-CFM action to gaussian2d: docs/design.md formula vs general closed form vs particles",
                ["docs/design.md 1-D integral", "general formula", "particles (RK4)"],
                [[icfm.design_formula_action, icfm.action, gauss.paths["I-CFM"].action]],
            )
        )
    return out


def _marginal_figures(ctx: Context, target: str, res: PathsTarget) -> list[Figure]:
    """tr Cov(rho_t) (particles, and closed forms if any) and normalised W2 to the start."""
    S = figures.Series
    cov = [
        S(res.paths[p].marginals.t, res.paths[p].marginals.cov_trace, f"{p} (particles)")
        for p in NAMES
    ]
    cf = res.closed_form
    if cf is not None:
        cov += [
            S(cf.t, cf.paths[p].cov_trace, f"{p} (closed form)", "--") for p in NAMES if p != "VE"
        ]
    w2 = []
    for p in NAMES:
        mg = res.paths[p].marginals
        w2.append(S(mg.t, [w / max(mg.w2_to_start[-1], 1e-300) for w in mg.w2_to_start], p))
    return [
        figures.curves(
            ctx.figures,
            f"paths-{target}-cov",
            f"tr Cov(rho_t) along each path to {target} "
            "(the I-CFM path contracts in the middle; VE starts far out)",
            cov,
            xlabel="t",
            ylabel="tr Cov(rho_t)",
            logy=True,
        ),
        figures.curves(
            ctx.figures,
            f"paths-{target}-w2",
            f"W2(rho_t, rho_0) / W2(rho_1, rho_0) to {target}: "
            "the geodesic is the diagonal (constant speed)",
            w2,
            xlabel="t",
            ylabel="normalised W2 to start",
        ),
    ]


def _figures(ctx: Context, n: PathsNumbers, plot: GridPlot | None) -> list[Figure]:
    out = []
    for target, res in n.targets.items():
        out += _marginal_figures(ctx, target, res)
        if res.grid_geodesic is not None:
            out += grid_figures(ctx, target, res.grid_geodesic, plot)
    panels = [
        figures.Panel(f"{t}: {p}", res.paths[p].sample)
        for t, res in n.targets.items()
        for p in NAMES
        if p != "VE"
    ]
    out.append(
        figures.trajectory_panels(
            ctx.figures,
            "paths-trajectories",
            "Particle paths (exact fields), noise (orange) to data (black)",
            panels,
        )
    )
    return out
