"""Sample quality and path geometry of a trained run at several NFE budgets.

For each budget: W2 (exact OT) between n generated points and the data (n fresh draws of an
i.i.d. law; a finite set such as the 8 x 8 digits is compared with the set itself), optionally
the Frechet distance in a feature network's space (images), the NFE the sampler used, and the
path-energy decomposition of the curves it solved (:mod:`.path_energy`): the kinetic energy
PE = E int |v|^2 dt integrated along the ODE itself (:mod:`wasserflow.samplers.kinetic`), its
geodesic gap PE - W2^2(noise, samples), split into path curvature and coupling sub-optimality,
and the normalized path energy. Stochastic samplers have no path energy (None). Every budget
samples the same noise, so each fixed budget's samples are also compared with those of the
call's largest fixed budget pair by pair: ``to_converged`` (:func:`paired_distance`, an upper
bound on W2 between the two budgets' laws) and ``w2_ratio`` (W2 over the largest budget's W2,
:func:`paired_w2_ratio`), whose intervals are far narrower than two W2 intervals to the data
when the budgets are close; with features also ``fd_ratio`` (:func:`paired_fd_ratio`, a
paired bootstrap); :func:`nfe_to_converge` reads NFE* off these ratios.

A budget is an NFE count, None (the sampler's default, or a model's own fixed steps) or
:data:`ADAPTIVE` (the registered adaptive ODE solver, dopri5, whatever the run's sampler).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import Tensor

from ..data import make_source
from ..engine.model import GenerativeModel
from ..errors import InputError
from ..geometry import exact_ot
from ..samplers import adaptive_sampler
from .coupling import CouplingGap
from .frechet import feature_stats, frechet_distance
from .interval import Interval, mean_interval, resample_indices, resampled_interval, two_sided_z
from .path_energy import PathEnergyDecomposition, path_energy_decomposition

ADAPTIVE = "adaptive"
Budget = int | str | None


@dataclass(frozen=True)
class PairedDistance(Interval):
    """A number comparing one budget's samples with those of the budget ``against`` (its
    ``nfe_requested``) drawn from the same noise: :func:`paired_distance` (``to_converged``) or
    the ratio of their W2 (``w2_ratio``, :func:`paired_w2_ratio`) or FD (``fd_ratio``,
    :func:`paired_fd_ratio`) to the data."""

    against: int


@dataclass(frozen=True)
class Evaluation:
    """One budget's numbers: W2 (and ``fd``, the Frechet distance in ``features``' space, when
    asked) between ``n`` samples and ``n_data`` reference points, with their bootstrap intervals
    when asked; ``geometry``, the path-energy decomposition of the solved ODE (model space;
    None for stochastic samplers or when not asked), whose means ``action`` (PE),
    ``straightness`` (its curvature part, Liu et al. 2022) and ``chord_energy`` are also read
    off directly."""

    sampler: str
    nfe_requested: int | None
    nfe: int
    w2: float
    seconds: float
    fd: float | None = None
    features: str | None = None
    n: int = 0
    n_data: int = 0
    geometry: PathEnergyDecomposition | None = None
    w2_interval: Interval | None = None
    fd_interval: Interval | None = None
    to_converged: PairedDistance | None = None
    w2_ratio: PairedDistance | None = None
    fd_ratio: PairedDistance | None = None

    @property
    def action(self) -> float | None:
        """PE = E int |v|^2 dt along the solved ODE."""
        return None if self.geometry is None else self.geometry.path_energy.value

    @property
    def straightness(self) -> float | None:
        """PE - E|x1 - x0|^2, the curvature part of the geodesic gap."""
        return None if self.geometry is None else self.geometry.curvature.value

    curvature = straightness

    @property
    def chord_energy(self) -> float | None:
        """E|x1 - x0|^2."""
        return None if self.geometry is None else self.geometry.chord_energy.value

    @property
    def coupling_gap(self) -> CouplingGap | None:
        """E|x1 - x0|^2 - W2^2, bracketed."""
        return None if self.geometry is None else self.geometry.coupling_gap

    @property
    def geodesic_gap(self) -> Interval | None:
        """PE - W2^2, bracketed."""
        return None if self.geometry is None else self.geometry.geodesic_gap

    @property
    def normalized_path_energy(self) -> Interval | None:
        """(PE - W2^2) / W2^2, bracketed."""
        return None if self.geometry is None else self.geometry.normalized_path_energy

    @property
    def endpoint_w2_squared(self) -> Interval | None:
        """W2^2 between the starting noise and the samples, bracketed."""
        return None if self.geometry is None else self.geometry.w2_squared

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in (
            "geometry",
            "w2_interval",
            "fd_interval",
            "to_converged",
            "w2_ratio",
            "fd_ratio",
        ):
            d[key] = None if d[key] is None else d[key].to_dict()
        return {**d, "action": self.action, "straightness": self.straightness}


def data_of(run: GenerativeModel) -> str:
    """The data spec ``run``'s samples are compared with (refused in one line when it has
    none)."""
    if run.data_spec is None:
        raise InputError(
            f"this model ({run.method}) has no data to compare with: give a data spec "
            "(model.with_data('digits_images'), or --data SPEC on the command line)"
        )
    return run.data_spec


def fresh_data(run: GenerativeModel, n: int, seed: int) -> torch.Tensor:
    """n fresh draws of the run's data law, in data space, float64."""
    src = make_source(data_of(run))
    return src.sample(n, torch.Generator().manual_seed(seed)).to(torch.float64).reshape(n, -1)


def reference_data(spec: str, n: int, seed: int) -> Tensor:
    """What samples of the data ``spec`` are compared with, in data space, float64,
    (m, *shape): a finite set's points (all of them, or n drawn without replacement when it
    has more), else n fresh draws."""
    src = make_source(spec)
    g = torch.Generator().manual_seed(seed)
    if src.points is not None:
        pts = src.points
        if pts.shape[0] > n:
            pts = pts[torch.randperm(pts.shape[0], generator=g)[:n]]
        return pts.to(torch.float64)
    return src.sample(n, g).to(torch.float64)


def evaluate_run(
    run: GenerativeModel,
    nfes: list[Budget],
    *,
    n: int = 2000,
    seed: int = 0,
    sampler: str | None = None,
    geometry: bool | Sequence[Budget] = True,
    features: Callable[[Tensor], Tensor] | None = None,
    data: Tensor | None = None,
    on_samples: Callable[[Evaluation, Tensor], None] | None = None,
    resamples: int = 20,
    jacobian: int = 0,
) -> list[Evaluation]:
    """Evaluate ``run`` (a trained run, or a model trained elsewhere:
    :class:`~wasserflow.engine.GenerativeModel`) at each NFE budget (module doc).

    ``features``: a feature extractor (``wasserflow.metrics.feature_extractor``) for the Frechet
    distance; ``data``: the reference set in data space (default :func:`reference_data` of the
    model's ``data_spec``); ``on_samples(row, x)`` receives each budget's samples in data space
    (e.g. to save them); ``resamples``: bootstrap resamples for the interval of FD (0:
    none); W2's interval is always given (:func:`w2_interval`, free); ``geometry``: the path
    energy decomposition at every budget (True), none (False) or these budgets only;
    ``jacobian``: test the Brenier criterion of each deterministic sampler's map on this
    many points (:func:`~wasserflow.metrics.jacobian_symmetry`, two JVPs through the solve per
    point; 0: not tested). Each fixed budget's row has ``to_converged``: the paired distance
    (:func:`paired_distance`) of its samples to the largest fixed budget's, from the same
    noise."""
    if n < 2:
        raise ValueError("n must be at least 2")
    ref = reference_data(data_of(run), n, seed + 1) if data is None else data.to(torch.float64)
    ref_flat = ref.reshape(ref.shape[0], -1)
    ref_features = None if features is None else features(ref.to(torch.float32))
    rows, kept = [], []
    for nfe in nfes:
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        name, k = (adaptive_sampler(), None) if nfe == ADAPTIVE else (sampler, nfe)
        out = run.sample(n, sampler=name, nfe=k, generator=g, data_space=False)
        seconds = time.perf_counter() - t0
        x_model = out.x
        x = run.scaler.inverse(x_model.reshape(n, -1)).reshape(x_model.shape).to(torch.float64)
        if not torch.isfinite(x).all():
            raise ValueError(
                f"the sampler {out.sampler} diverged at nfe={nfe} (NaN or inf samples)"
            )
        dec = None
        wanted = geometry if isinstance(geometry, bool) else nfe in geometry
        if wanted and out.energy is not None:
            mapping = _map_of(run, out.sampler, k) if jacobian > 0 else None
            dec = path_energy_decomposition(
                out.start,
                x_model,
                out.energy,
                map=mapping,
                generator=torch.Generator().manual_seed(seed),
                jacobian_points=max(jacobian, 10),
            )
        dual = w2_dual(x.reshape(n, -1), ref_flat)
        w2_iv = dual.interval()
        fd, fd_iv, feats, boots = _fd(features, x, ref_features, resamples, seed)
        row = Evaluation(
            sampler=out.sampler,
            nfe_requested=k,
            nfe=out.nfe,
            w2=w2_iv.value,
            seconds=seconds,
            fd=fd,
            features=getattr(features, "name", None) if features is not None else None,
            n=n,
            n_data=int(ref.shape[0]),
            geometry=dec,
            w2_interval=w2_iv,
            fd_interval=fd_iv,
        )
        rows.append(row)
        kept.append(_Kept(x.reshape(n, -1), dual, fd, boots) if k is not None else None)
        if on_samples is not None:
            on_samples(row, x)
    return _with_paired_distances(rows, kept)


@dataclass(frozen=True)
class _Kept:
    """A fixed budget's samples (n, d), exact OT to the data, FD and FD's bootstrap replicates
    (None: no FD or no interval; the same index draws at every budget)."""

    x: Tensor
    dual: W2Dual
    fd: float | None
    boots: Tensor | None


def _with_paired_distances(rows: list[Evaluation], kept: list[_Kept | None]) -> list[Evaluation]:
    """``rows`` with ``to_converged``, ``w2_ratio`` and (with FD's replicates) ``fd_ratio`` set
    on the fixed budgets (``kept`` None for adaptive rows): each against the largest fixed
    budget, from the same noise. FD's replicates of every budget were drawn with the same
    indices, so their ratios are the paired bootstrap of FD(k) / FD(largest)."""
    fixed = [i for i, k in enumerate(kept) if k is not None]
    if not fixed:
        return rows
    i_top = max(fixed, key=lambda i: rows[i].nfe_requested)
    against, top = rows[i_top].nfe_requested, kept[i_top]

    def paired(iv: Interval | None) -> PairedDistance | None:
        return None if iv is None else PairedDistance(**asdict(iv), against=against)

    def fd_ratio(k: _Kept) -> Interval | None:
        if k.boots is None or top.boots is None or not top.fd:
            return None
        ratios = k.boots / top.boots.clamp_min(1e-300)
        return resampled_interval(k.fd / top.fd, ratios, 0.95, k.x.shape[0])

    return [
        replace(
            r,
            to_converged=paired(paired_distance(k.x, top.x)),
            w2_ratio=paired(paired_w2_ratio(k.dual, top.dual)),
            fd_ratio=paired(fd_ratio(k)),
        )
        if k is not None
        else r
        for r, k in zip(rows, kept, strict=True)
    ]


@dataclass(frozen=True)
class W2Dual:
    """Exact W2 between n points and m reference points with the optimal dual potentials
    (f (n,), g (m,)): W2^2 = mean f + mean g, and the empirical cost's fluctuation is that of
    those means (del Barrio & Loubes 2019). ``fixed_ref``: the reference is a fixed weighted
    measure, not a sample (only f's variance counts)."""

    w2: float
    f: Tensor
    g: Tensor
    fixed_ref: bool = False

    def interval(self, level: float = 0.95) -> Interval:
        """W2 with its normal interval (:func:`w2_interval`)."""
        se2 = float(self.f.var()) / self.f.numel()
        if not self.fixed_ref:
            se2 += float(self.g.var()) / self.g.numel()
        half = two_sided_z(level) * math.sqrt(se2) / (2 * max(self.w2, 1e-300))
        return Interval(
            self.w2, max(self.w2 - half, 0.0), self.w2 + half, level, "clt", self.f.numel()
        )


def w2_dual(x: Tensor, ref: Tensor, ref_weights: Tensor | None = None) -> W2Dual:
    """Exact W2 between ``x`` (n, d) and ``ref`` (m, d; ``ref_weights``: a fixed weighted
    measure) with its dual potentials (:class:`W2Dual`), for :func:`paired_w2_ratio`."""
    res = exact_ot(x, ref, None, ref_weights)
    f, g = res.potentials
    return W2Dual(res.w2, f, g, ref_weights is not None)


def paired_w2_ratio(a: W2Dual, b: W2Dual, level: float = 0.95) -> Interval:
    """W2(a) / W2(b) for two samples of one size drawn from the same noise (pair i: the same
    noise point), each against the same reference, with the interval of their joint central
    limit: both W2^2 are asymptotically the means of their potentials on the paired points
    and the shared reference (del Barrio & Loubes 2019), so by the delta method the ratio moves
    as the mean of f_a / (2 W_a W_b) - W_a f_b / (2 W_b^3) over the pairs plus that of the g's
    over the reference. Where the two samples are close the terms nearly cancel: the interval
    is far narrower than two W2 intervals (the reference's sampling error is shared, not
    added). Centred, like W2's own interval, on the empirical costs' expectations. Measured
    against the spread over replications (tests/metrics/test_paired.py, 2-D Gaussians): 1.09x
    the true standard error at n = 1,000, 1.56x at n = 300 (conservative: each problem's
    potentials are one vertex of a degenerate LP, and the two vertices cancel less)."""
    if a.f.shape != b.f.shape or a.g.shape != b.g.shape or a.fixed_ref != b.fixed_ref:
        raise ValueError("paired_w2_ratio needs two samples of one size against one reference")
    wa, wb = a.w2, max(b.w2, 1e-300)
    ratio = wa / wb

    def terms(fa: Tensor, fb: Tensor) -> Tensor:
        return fa / (2 * max(wa, 1e-300) * wb) - ratio * fb / (2 * wb**2)

    tx, ty = terms(a.f, b.f), terms(a.g, b.g)
    se2 = float(tx.var()) / tx.numel() + (0.0 if a.fixed_ref else float(ty.var()) / ty.numel())
    half = two_sided_z(level) * math.sqrt(se2)
    return Interval(ratio, max(ratio - half, 0.0), ratio + half, level, "paired-clt", tx.numel())


def paired_distance(x: Tensor, y: Tensor, level: float = 0.95) -> Interval:
    """sqrt(E|X - Y|^2) from n pairs (x_i, y_i), (n, ...) each, with its interval: the mean of
    |x_i - y_i|^2 and its normal interval (:func:`~wasserflow.metrics.mean_interval`), both
    ends square-rooted (the lower end clipped at 0).

    Any coupling bounds W2 from above, W2(law X, law Y) <= sqrt(E|X - Y|^2) (Villani 2009, the
    definition of W2), and for the empirical measures of the pairs exactly, W2(x_n, y_n) <=
    sqrt(mean |x_i - y_i|^2). With x_i and y_i two samplers' outputs from the same noise z_i the
    pairs are i.i.d., so the interval is an ordinary one, and its width shrinks with the
    distance itself (``0 +- 0`` for identical maps), where two W2 intervals to data each
    carry the sampling error of W2 near its floor."""
    if x.shape != y.shape or x.shape[0] < 2:
        raise ValueError(
            f"paired_distance needs two (n, ...) tensors of one shape with n >= 2, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    sq = (x.to(torch.float64) - y.to(torch.float64)).reshape(x.shape[0], -1).pow(2).sum(1)
    iv = mean_interval(sq, level)
    return Interval(
        math.sqrt(max(iv.value, 0.0)),
        math.sqrt(max(iv.lower, 0.0)),
        math.sqrt(max(iv.upper, 0.0)),
        level,
        "paired",
        iv.n,
    )


def _map_of(run: GenerativeModel, sampler: str, nfe: int | None) -> Callable[[Tensor], Tensor]:
    return lambda z: run.transport(z, sampler=sampler, nfe=nfe)


def w2_interval(
    x: Tensor, ref: Tensor, level: float = 0.95, *, ref_weights: Tensor | None = None
) -> Interval:
    """W2 between the n points ``x`` and the m points ``ref`` (exact OT, uniform weights) with
    the normal interval of the empirical transport cost's central limit theorem (del Barrio &
    Loubes 2019): W2^2_n fluctuates as (1/n) sum f(x_i) + (1/m) sum g(y_j) for the optimal dual
    potentials (f, g), so var W2^2_n ~ var f / n + var g / m, carried to W2 by the delta method.
    ``ref_weights`` (m,): ``ref`` is a fixed weighted measure (e.g. a grid density's cells),
    not a sample, and only var f / n counts. The interval is centred at the empirical cost's own
    expectation: its n^(-2/d) bias (upward for independent samples) is not covered, so compare
    W2 at equal n, as every table does.

    Near the floor (x drawn from nearly the reference's law) the interval is conservative: the
    plug-in variance of the empirical potentials, one vertex of a degenerate LP, exceeds the
    population one. Against the spread over independent draws it was 1.3-2.0x too wide for
    1,000 particles of a 2-D mixture's path marginals against the grid density (the ``paths``
    experiment) and 1.5x for 300 particles of a three-mode mixture
    (tests/metrics/test_interval.py). Where a comparison must resolve numbers near the floor,
    average independent draws (:func:`~wasserflow.metrics.replicate_interval`) or compare the
    samples paired (:func:`paired_distance`, :func:`paired_w2_ratio`)."""
    return w2_dual(x, ref, ref_weights).interval(level)


def _fd(features, x: Tensor, ref_features, resamples: int, seed: int):
    """The Frechet distance in ``features``' space, its bootstrap interval (the reference
    statistics fixed) when ``resamples`` > 1, the features and the bootstrap replicates (drawn
    with the same indices at every budget: :func:`paired_fd_ratio` reuses them)."""
    if features is None:
        return None, None, None, None
    feats = features(x.to(torch.float32))
    ref_stats = feature_stats(ref_features)
    fd = frechet_distance(feats, ref_stats).value
    if resamples <= 1:
        return fd, None, feats, None
    g = torch.Generator().manual_seed(seed + 3)
    boots = _fd_replicates(feats, ref_stats, resample_indices(feats.shape[0], resamples, g))
    return fd, resampled_interval(fd, boots, 0.95, feats.shape[0]), feats, boots


def _fd_replicates(feats: Tensor, ref_stats, draws: list[Tensor]) -> Tensor:
    return torch.tensor(
        [frechet_distance(feats[i], ref_stats).value for i in draws], dtype=torch.float64
    )


def paired_fd_ratio(
    feats: Tensor,
    top: Tensor,
    ref_features: Tensor,
    *,
    resamples: int = 20,
    generator: torch.Generator | None = None,
) -> Interval:
    """FD(feats) / FD(top) against one reference, for two (n, k) feature sets whose row i comes
    from the same noise, with a paired bootstrap interval: each resample draws one set of
    indices for both, so the sampling error the two share (the same noise points) cancels
    in the ratio (the reference's statistics are fixed, as in FD's own interval)."""
    if feats.shape != top.shape:
        raise ValueError("paired_fd_ratio needs two feature sets of one shape (the same noise)")
    ref = feature_stats(ref_features)
    draws = resample_indices(feats.shape[0], resamples, generator)
    value = frechet_distance(feats, ref).value / max(frechet_distance(top, ref).value, 1e-300)
    ratios = _fd_replicates(feats, ref, draws) / _fd_replicates(top, ref, draws).clamp_min(1e-300)
    return resampled_interval(value, ratios, 0.95, feats.shape[0])


def nfe_to_converge(
    rows: Sequence[Evaluation],
    metric: Callable[[Evaluation], Interval | float | None],
    within: float = 0.10,
    *,
    paired: Callable[[Evaluation], PairedDistance | None] | None = None,
) -> Interval | None:
    """NFE*: the smallest fixed budget whose ``metric`` (W2, FD, ...) is within ``within`` of
    its value at the largest budget, as an :class:`Interval` whose ends are the range the
    metric's own intervals allow: ``lower`` the smallest budget whose interval's lower end is
    within of the converged interval's upper end (the most favourable reading), ``upper`` the
    smallest whose upper end is within of the converged lower end (the least; the largest
    budget when none is). None without fixed budgets. Adaptive rows are ignored.

    ``paired``: the row's ratio of ``metric`` to its value at the largest budget with its
    paired interval (``lambda r: r.w2_ratio`` for W2, ``r.fd_ratio`` for FD). Where every row
    has it, against the largest budget (one :func:`evaluate_run` call, the same noise at every
    budget), the three readings come from the ratio instead: its value, lower and upper end at
    most 1 + ``within``. The two numbers share their reference and their noise, so the ratio's
    interval is far narrower than the overlap of their own intervals."""
    fixed = sorted(
        (r for r in rows if r.nfe_requested is not None and metric(r) is not None),
        key=lambda r: r.nfe_requested,
    )
    if not fixed:
        return None
    iv = metric(fixed[-1])
    level = iv.level if isinstance(iv, Interval) else 1.0
    ratios = _ratios(fixed, paired) if paired is not None else None
    if ratios is not None:
        ends = [_ends(r) for r in ratios]
        (c_lo, c, c_hi), level = (1.0, 1.0, 1.0), ratios[-1].level
    else:
        ends = [_ends(metric(r)) for r in fixed]
        c_lo, c, c_hi = ends[-1]
    last = fixed[-1].nfe

    def first(test) -> int:
        return next((r.nfe for r, e in zip(fixed, ends) if test(e)), last)

    point = first(lambda e: e[1] <= (1 + within) * c)
    low = first(lambda e: e[0] <= (1 + within) * c_hi)
    high = first(lambda e: e[2] <= (1 + within) * c_lo)
    return Interval(
        float(point), float(min(low, point)), float(max(high, point)), level, "nfe", len(fixed)
    )


def _ratios(fixed: list[Evaluation], paired) -> list[PairedDistance] | None:
    """Each row's ``paired`` ratio against the largest budget, or None where one lacks it."""
    top = fixed[-1].nfe_requested
    ratios = [paired(r) for r in fixed]
    if any(q is None or q.against != top for q in ratios):
        return None
    return ratios


def _ends(v: Interval | float) -> tuple[float, float, float]:
    """(lower, value, upper) of a measured number (a float: all three the same)."""
    if not isinstance(v, Interval):
        return v, v, v
    value = v.value if v.value is not None else v.lower
    return v.lower, value, math.inf if v.upper is None else v.upper
