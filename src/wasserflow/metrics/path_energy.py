"""The path-energy decomposition of a sampling ODE: how far its curves are from W2 geodesics.

With x0_i the starting noise, x1_i the sample and PE = E int_0^1 |v|^2 dt the kinetic energy
of the curves the sampler solved (:attr:`~wasserflow.samplers.SampleResult.energy`), and
D_i = x1_i - x0_i, the Benamou-Brenier gap PE - W2^2(law x0, law x1) splits exactly into

    PE - W2^2 = (PE - E|D|^2)          path curvature   = E int |v - D|^2 dt  >= 0
              + (E|D|^2 - W2^2)        coupling gap     >= 0

(on the unit clock: int |v|^2 - |D|^2 = int |v - D|^2 since int v dt = D). The curvature is
zero for straight constant-speed curves (Liu et al. 2022's straightness); the coupling gap is
zero when the noise-to-sample map is optimal (the Brenier map), here measured by exact OT
between the n starting noises and the n samples (POT's network simplex), which is <= the
sampler's own pairing's cost. Both vanish on the OT geodesic (Benamou & Brenier 2000), which
is what OT flow matching aims at; the normalized path energy of Tong et al. (2023) is the
total (PE - W2^2) / W2^2.

All quantities are computed in the space the ODE is solved in (the model's, where the
reference is N(0, sigma_ref^2 I)); for data scaled by one scalar s (images) multiply by s^2 to
read them in data space. W2^2 of finite samples is biased (upward for independent samples): the
numbers are comparable at equal n, which every table states.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..geometry import exact_ot


@dataclass(frozen=True)
class PathEnergyDecomposition:
    """PE = E int |v|^2 dt, chord = E|x1 - x0|^2, the exact-OT W2^2 between the starting
    noises and the samples, and the two non-negative parts of PE - W2^2 (module doc)."""

    path_energy: float
    chord_energy: float
    w2_squared: float
    curvature: float
    coupling_gap: float
    n: int

    @property
    def geodesic_gap(self) -> float:
        """PE - W2^2 = curvature + coupling gap."""
        return self.path_energy - self.w2_squared

    @property
    def normalized_path_energy(self) -> float:
        """(PE - W2^2) / W2^2 (Tong et al. 2023)."""
        return self.geodesic_gap / max(self.w2_squared, 1e-300)

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "geodesic_gap": self.geodesic_gap,
            "normalized_path_energy": self.normalized_path_energy,
        }


def path_energy_decomposition(
    x0: Tensor, x1: Tensor, energy: Tensor, *, w2_squared: float | None = None
) -> PathEnergyDecomposition:
    """Decompose the path energy of the curves x0_i -> x1_i whose kinetic energies are
    ``energy`` (n,) (module doc). ``w2_squared`` skips the exact OT solve when known."""
    if x0.shape != x1.shape or x0.dim() < 2:
        raise ValueError(
            f"x0 and x1 must be (n, ...) of one shape, got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    n = x0.shape[0]
    e = torch.as_tensor(energy, dtype=torch.float64).reshape(-1)
    if e.shape[0] != n:
        raise ValueError(f"energy has {e.shape[0]} entries for {n} curves")
    a = x0.reshape(n, -1).to(torch.float64).cpu()
    b = x1.reshape(n, -1).to(torch.float64).cpu()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all() and torch.isfinite(e).all()):
        raise ValueError("the curves hold NaN or inf values (a diverged sampler?)")
    pe = float(e.cpu().mean())
    chord = float((b - a).pow(2).sum(-1).mean())
    w2sq = float(exact_ot(a, b).cost) if w2_squared is None else float(w2_squared)
    return PathEnergyDecomposition(
        path_energy=pe,
        chord_energy=chord,
        w2_squared=w2sq,
        curvature=pe - chord,
        coupling_gap=chord - w2sq,
        n=n,
    )
