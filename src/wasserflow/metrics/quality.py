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

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..data import make_source
from ..engine.model import GenerativeModel
from ..errors import InputError
from ..geometry import exact_ot
from ..samplers import adaptive_sampler
from .path_energy import path_energy_decomposition

ADAPTIVE = "adaptive"
Budget = int | str | None


@dataclass(frozen=True)
class Evaluation:
    """One budget's numbers. ``action`` is the path energy PE along the solved ODE (model
    space), ``straightness`` its curvature part (Liu et al. 2022), ``geodesic_gap`` PE - W2^2
    and ``coupling_gap`` E|x1 - x0|^2 - W2^2; all None for stochastic samplers. ``fd`` is the
    Frechet distance to the data in ``features``' space (None when not asked)."""

    sampler: str
    nfe_requested: int | None
    nfe: int
    w2: float
    action: float | None
    geodesic_gap: float | None
    normalized_path_energy: float | None
    straightness: float | None
    seconds: float
    coupling_gap: float | None = None
    chord_energy: float | None = None
    endpoint_w2_squared: float | None = None
    fd: float | None = None
    features: str | None = None
    n: int = 0
    n_data: int = 0

    @property
    def curvature(self) -> float | None:
        """PE - E|x1 - x0|^2 (= ``straightness``)."""
        return self.straightness

    def to_dict(self) -> dict:
        return asdict(self)


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
) -> list[Evaluation]:
    """Evaluate ``run`` (a trained run, or a model trained elsewhere:
    :class:`~wasserflow.engine.GenerativeModel`) at each NFE budget (module doc).

    ``features``: a feature extractor (``wasserflow.metrics.feature_extractor``) for the Frechet
    distance; ``data``: the reference set in data space (default :func:`reference_data` of the
    model's ``data_spec``);
    ``on_samples(row, x)`` receives each budget's samples in data space (e.g. to save them)."""
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
        w2 = exact_ot(x.reshape(n, -1), ref_flat).w2
        dec = None
        if geometry and out.energy is not None:
            dec = path_energy_decomposition(out.start, x_model, out.energy)
        fd = None
        if features is not None:
            from .frechet import frechet_distance

            fd = frechet_distance(features(x.to(torch.float32)), ref_features).value
        row = Evaluation(
            sampler=out.sampler,
            nfe_requested=k,
            nfe=out.nfe,
            w2=w2,
            action=dec.path_energy if dec else None,
            geodesic_gap=dec.geodesic_gap if dec else None,
            normalized_path_energy=dec.normalized_path_energy if dec else None,
            straightness=dec.curvature if dec else None,
            seconds=seconds,
            coupling_gap=dec.coupling_gap if dec else None,
            chord_energy=dec.chord_energy if dec else None,
            endpoint_w2_squared=dec.w2_squared if dec else None,
            fd=fd,
            features=getattr(features, "name", None) if features is not None else None,
            n=n,
            n_data=int(ref.shape[0]),
        )
        rows.append(row)
        if on_samples is not None:
            on_samples(row, x)
    return rows
