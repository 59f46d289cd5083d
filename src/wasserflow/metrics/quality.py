"""Sample quality and path geometry of a trained run at several NFE budgets.

For each budget: W2 (exact OT) between n generated points and the data (n fresh draws of an
i.i.d. law; a finite set such as the 8 x 8 digits is compared with the set itself), optionally
the Frechet distance in a feature network's space (images), the NFE the sampler used, and the
path-energy decomposition of the curves it solved (:mod:`.path_energy`): the kinetic energy
PE = E int |v|^2 dt integrated along the ODE itself (:mod:`wasserflow.samplers.kinetic`), its
geodesic gap PE - W2^2(noise, samples), split into path curvature and coupling sub-optimality,
and the normalized path energy. Stochastic samplers have no path energy (None).

A budget is an NFE count, None (the sampler's default, or a model's own fixed steps) or
:data:`ADAPTIVE` (the registered adaptive ODE solver, dopri5, whatever the run's sampler).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ..data import make_source
from ..engine.model import GenerativeModel
from ..errors import InputError
from ..geometry import exact_ot
from ..samplers import adaptive_sampler
from .coupling import CouplingGap
from .interval import Interval, bootstrap_interval, two_sided_z
from .path_energy import PathEnergyDecomposition, path_energy_decomposition

ADAPTIVE = "adaptive"
Budget = int | str | None


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
        for key in ("geometry", "w2_interval", "fd_interval"):
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
    geometry: bool = True,
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
    none); W2's interval is always given (:func:`w2_interval`, free); ``jacobian``: test the Brenier criterion of each deterministic sampler's map on this
    many points (:func:`~wasserflow.metrics.jacobian_symmetry`, two JVPs through the solve per
    point; 0: not tested)."""
    if n < 2:
        raise ValueError("n must be at least 2")
    ref = reference_data(data_of(run), n, seed + 1) if data is None else data.to(torch.float64)
    ref_flat = ref.reshape(ref.shape[0], -1)
    ref_features = None if features is None else features(ref.to(torch.float32))
    rows = []
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
        if geometry and out.energy is not None:
            mapping = _map_of(run, out.sampler, k) if jacobian > 0 else None
            dec = path_energy_decomposition(
                out.start,
                x_model,
                out.energy,
                map=mapping,
                generator=torch.Generator().manual_seed(seed),
                jacobian_points=max(jacobian, 10),
            )
        w2_iv = w2_interval(x.reshape(n, -1), ref_flat)
        fd, fd_iv = _fd(features, x, ref_features, resamples, seed)
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
        if on_samples is not None:
            on_samples(row, x)
    return rows


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
    W2 at equal n, as every table does."""
    res = exact_ot(x, ref, None, ref_weights)
    f, g = res.potentials
    se2 = float(f.var()) / f.numel()
    if ref_weights is None:
        se2 += float(g.var()) / g.numel()
    w2 = res.w2
    half = two_sided_z(level) * math.sqrt(se2) / (2 * max(w2, 1e-300))
    return Interval(w2, max(w2 - half, 0.0), w2 + half, level, "clt", x.shape[0])


def _fd(features, x: Tensor, ref_features, resamples: int, seed: int):
    """The Frechet distance in ``features``' space and its bootstrap interval (the reference
    statistics fixed) when ``resamples`` > 0."""
    if features is None:
        return None, None
    from .frechet import feature_stats, frechet_distance

    feats = features(x.to(torch.float32))
    ref_stats = feature_stats(ref_features)
    fd = frechet_distance(feats, ref_stats).value
    if resamples <= 0:
        return fd, None
    iv = bootstrap_interval(
        lambda i: frechet_distance(feats[i], ref_stats).value,
        feats.shape[0],
        resamples=resamples,
        generator=torch.Generator().manual_seed(seed + 3),
        value=fd,
    )
    return fd, iv


def nfe_to_converge(
    rows: Sequence[Evaluation],
    metric: Callable[[Evaluation], Interval | float | None],
    within: float = 0.10,
) -> Interval | None:
    """NFE*: the smallest fixed budget whose ``metric`` (W2, FD, ...) is within ``within`` of
    its value at the largest budget, as an :class:`Interval` whose ends are the range the
    metric's own intervals allow: ``lower`` the smallest budget whose interval's lower end is
    within of the converged interval's upper end (the most favourable reading), ``upper`` the
    smallest whose upper end is within of the converged lower end (the least; the largest
    budget when none is). None without fixed budgets. Adaptive rows are ignored."""
    fixed = sorted(
        (r for r in rows if r.nfe_requested is not None and metric(r) is not None),
        key=lambda r: r.nfe_requested,
    )
    if not fixed:
        return None
    ends = [_ends(metric(r)) for r in fixed]
    (c_lo, c, c_hi), last = ends[-1], fixed[-1].nfe

    def first(test) -> int:
        return next((r.nfe for r, e in zip(fixed, ends) if test(e)), last)

    point = first(lambda e: e[1] <= (1 + within) * c)
    low = first(lambda e: e[0] <= (1 + within) * c_hi)
    high = first(lambda e: e[2] <= (1 + within) * c_lo)
    iv = metric(fixed[-1])
    level = iv.level if isinstance(iv, Interval) else 1.0
    return Interval(
        float(point), float(min(low, point)), float(max(high, point)), level, "nfe", len(fixed)
    )


def _ends(v: Interval | float) -> tuple[float, float, float]:
    """(lower, value, upper) of a measured number (a float: all three the same)."""
    if not isinstance(v, Interval):
        return v, v, v
    value = v.value if v.value is not None else v.lower
    return v.lower, value, math.inf if v.upper is None else v.upper
