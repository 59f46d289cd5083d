"""The path-energy decomposition of a sampling ODE: how far its curves are from W2 geodesics.

With x0_i the starting noise, x1_i the sample and PE = E int_0^1 |v|^2 dt the kinetic energy
of the curves the sampler solved (:attr:`~wasserflow.samplers.SampleResult.energy`), and
D_i = x1_i - x0_i, the Benamou-Brenier gap PE - W2^2(law x0, law x1) splits exactly into

    PE - W2^2 = (PE - E|D|^2)          path curvature   = E int |v - D|^2 dt  >= 0
              + (E|D|^2 - W2^2)        coupling gap     >= 0

(on the unit clock: int |v|^2 - |D|^2 = int |v - D|^2 since int v dt = D). The curvature is
zero for straight constant-speed curves (Liu et al. 2022's straightness); the coupling gap is
zero when the noise-to-sample map is optimal (the Brenier map). Both vanish on the OT geodesic
(Benamou & Brenier 2000), which is what OT flow matching aims at; the normalized path energy of
Tong et al. (2023) is the total (PE - W2^2) / W2^2.

PE, the chord E|D|^2 and the curvature are means of per-curve terms, each given with its
normal interval (:func:`~wasserflow.metrics.interval.mean_interval`). The coupling gap is not:
in high dimension the exact assignment of the n noises to the n samples is their own pairing
whatever the map, so it is bracketed instead (:func:`~wasserflow.metrics.coupling_gap`), and so
are W2^2 = chord - gap, the geodesic gap and the normalized path energy, which depend on it.

All quantities are computed in the space the ODE is solved in (the model's, where the
reference is N(0, sigma_ref^2 I)); for data scaled by one scalar s (images) multiply by s^2 to
read them in data space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .coupling import MIN_PAIRS, CouplingGap, coupling_gap
from .interval import Interval, mean_interval


@dataclass(frozen=True)
class PathEnergyDecomposition:
    """PE = E int |v|^2 dt, the chord E|x1 - x0|^2 and the curvature PE - chord with their
    intervals; the coupling gap E|x1 - x0|^2 - W2^2 bracketed (module doc)."""

    path_energy: Interval
    chord_energy: Interval
    curvature: Interval
    coupling_gap: CouplingGap
    n: int

    @property
    def w2_squared(self) -> Interval:
        """W2^2(law x0, law x1) = chord - gap, bracketed by the gap's bounds."""
        c, g = self.chord_energy.value, self.coupling_gap
        low = 0.0 if g.upper is None else max(c - g.upper, 0.0)
        return Interval(None, low, c - g.lower, g.level, g.method, self.n)

    @property
    def geodesic_gap(self) -> Interval:
        """PE - W2^2 = curvature + coupling gap, bracketed by the gap's bounds."""
        k, g = self.curvature.value, self.coupling_gap
        up = None if g.upper is None else k + g.upper
        return Interval(None, k + g.lower, up, g.level, g.method, self.n)

    @property
    def normalized_path_energy(self) -> Interval:
        """(PE - W2^2) / W2^2 (Tong et al. 2023), bracketed."""
        geo, w = self.geodesic_gap, self.w2_squared
        hi = geo.upper / w.lower if geo.upper is not None and w.lower > 0 else None
        return Interval(None, geo.lower / max(w.upper, 1e-300), hi, w.level, w.method, self.n)

    def to_dict(self) -> dict:
        return {
            "path_energy": self.path_energy.to_dict(),
            "chord_energy": self.chord_energy.to_dict(),
            "curvature": self.curvature.to_dict(),
            "coupling_gap": self.coupling_gap.to_dict(),
            "w2_squared": self.w2_squared.to_dict(),
            "geodesic_gap": self.geodesic_gap.to_dict(),
            "normalized_path_energy": self.normalized_path_energy.to_dict(),
            "n": self.n,
        }


def path_energy_decomposition(
    x0: Tensor,
    x1: Tensor,
    energy: Tensor,
    *,
    source: str | None = "normal",
    map: Callable[[Tensor], Tensor] | None = None,
    level: float = 0.95,
    generator: torch.Generator | None = None,
    jacobian_points: int = 256,
) -> PathEnergyDecomposition:
    """Decompose the path energy of the curves x0_i -> x1_i whose kinetic energies are
    ``energy`` (n,) (module doc). ``source``, ``map``: as in :func:`coupling_gap` (x0 drawn from
    N(0, s^2 I), the sampler's differentiable map for the Brenier-criterion test on
    ``jacobian_points`` of the curves)."""
    if x0.shape != x1.shape or x0.dim() < 2:
        raise ValueError(
            f"x0 and x1 must be (n, ...) of one shape, got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    n = x0.shape[0]
    e = torch.as_tensor(energy, dtype=torch.float64).reshape(-1).cpu()
    if e.shape[0] != n:
        raise ValueError(f"energy has {e.shape[0]} entries for {n} curves")
    a = x0.reshape(n, -1).detach().to("cpu", torch.float64)
    b = x1.reshape(n, -1).detach().to("cpu", torch.float64)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all() and torch.isfinite(e).all()):
        raise ValueError("the curves hold NaN or inf values (a diverged sampler?)")
    chord = (b - a).pow(2).sum(-1)
    if n < MIN_PAIRS:
        gap = CouplingGap.unresolved(n, float(chord.mean()), level)
    else:
        flat = None if map is None else _flattened(map, tuple(x0.shape[1:]))
        gap = coupling_gap(
            a,
            b,
            source=source,
            map=flat,
            level=level,
            generator=generator,
            jacobian_points=jacobian_points,
        )
    return PathEnergyDecomposition(
        path_energy=mean_interval(e, level),
        chord_energy=mean_interval(chord, level),
        curvature=mean_interval(e - chord, level),
        coupling_gap=gap,
        n=n,
    )


def _flattened(map: Callable[[Tensor], Tensor], shape: tuple[int, ...]):
    """``map`` on flattened points: (m, prod(shape)) -> (m, prod(shape))."""
    return lambda z: map(z.reshape(z.shape[0], *shape)).reshape(z.shape[0], -1)
