"""What classifier-free guidance does to the path, measured with exact fields on a grid.

For a labelled Gaussian mixture (:class:`~wasserflow.paths.ClassOracle`: class c the component
c, the unconditional law the mixture) every quantity is closed form on the affine path:
p_t(x | c), p_t(x), their velocities v_c, v_u, and the guided field v_s = v_u + s (v_c - v_u).
Two questions (Bradley & Nakkiran 2024; Zheng & Lan 2024, "characteristic guidance"):

* **Does CFG sample the tilted law** q_s(x) ∝ p(x | c)^s p(x)^(1 - s)? :func:`tilted_target`
  draws from q_s normalised on a :class:`~wasserflow.geometry.RegularGrid` (cells drawn by
  their mass, a uniform point inside), and :func:`tilt_gap` compares the end points of the
  guided ODE (exact fields) with it by exact W2, beside the W2 of two independent draws of q_s
  (the noise floor at that n).
* **Does the guided field transport the tilted marginals** q_{s,t} ∝ p_t(x | c)^s p_t(x)^(1 - s)
  (which go from N(0, I) at t = 0 to q_s at t = 1)? :func:`continuity_residual` evaluates
  d_t q + div(q v_s) on the grid (central differences in t and x, q normalised on the grid at
  each time) and returns its L1 norm relative to |d_t q|. At s = 1 and s = 0 it is the
  discretisation error (q is then the marginal the field transports); in between and beyond, a
  residual above that floor says v_s is not the velocity of the tilted path.

For Gaussian classes and a Gaussian unconditional law the answer to the first question is
closed form (tests/samplers/test_guidance.py): the guided ODE's end law has std
s_c^s s_u^(1 - s) per direction of a diagonal covariance, the tilted law
(s / s_c^2 + (1 - s) / s_u^2)^(-1/2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..geometry import RegularGrid, exact_ot
from ..paths import ClassOracle
from ..samplers import get_sampler, guided_field, oracle_labelled, uniform_grid


def tilted_log_density(
    oracle: ClassOracle, label: int, scale: float, t: float, x: Tensor
) -> Tensor:
    """s log p_t(x | c) + (1 - s) log p_t(x), unnormalised, for x (n, d)."""
    cond = oracle.oracle(label).log_prob(x, t)
    if scale == 1.0:
        return cond
    return scale * cond + (1.0 - scale) * oracle.oracle(oracle.num_classes).log_prob(x, t)


def _grid_density(oracle, label, scale, t, grid: RegularGrid) -> np.ndarray:
    """q_{s,t} at the cell centres, normalised so that sum q |cell| = 1."""
    lp = tilted_log_density(oracle, label, scale, t, grid.points()).numpy().reshape(grid.shape)
    q = np.exp(lp - lp.max())
    return q / (q.sum() * grid.cell_volume)


def tilted_target(
    oracle: ClassOracle,
    label: int,
    scale: float,
    n: int,
    grid: RegularGrid,
    generator: torch.Generator,
) -> Tensor:
    """n draws (n, d) float64 of q_s ∝ p(x | c)^s p(x)^(1 - s) restricted to ``grid``: a cell
    drawn by its mass, then a uniform point inside it."""
    q = torch.from_numpy(_grid_density(oracle, label, scale, 1.0, grid).reshape(-1))
    cells = torch.multinomial(q / q.sum(), n, replacement=True, generator=generator)
    centres = grid.points()[cells]
    h = torch.tensor(grid.spacing, dtype=torch.float64)
    return centres + (torch.rand(n, grid.dim, generator=generator, dtype=torch.float64) - 0.5) * h


def exact_cfg(
    oracle: ClassOracle, label: int, scale: float, x0: Tensor, steps: int = 200
) -> Tensor:
    """The end points (n, d) of the guided ODE of the exact fields of class ``label`` at scale
    s from the noise x0 (n, d): RK4 with ``steps`` uniform steps (what CFG samples when the
    network is exact)."""
    y = torch.full((x0.shape[0],), int(label))
    f = guided_field(oracle_labelled(oracle), y, oracle.num_classes, float(scale))
    return get_sampler("rk4")(f, x0, uniform_grid(steps)).x


@dataclass(frozen=True)
class TiltGap:
    """W2 of CFG's samples (exact fields) to the tilted target, the floor (W2 between two draws
    of the target at the same n), and W2 of CFG's samples to the class law p(x | c)."""

    scale: float
    w2_to_tilted: float
    floor: float
    w2_to_class: float
    n: int


def tilt_gap(
    oracle: ClassOracle,
    label: int,
    scales: list[float],
    grid: RegularGrid,
    *,
    n: int = 2000,
    steps: int = 200,
    seed: int = 0,
) -> list[TiltGap]:
    """For each s: the guided ODE of the exact fields (RK4, ``steps`` uniform steps, the same
    noise for every s) against q_s (module doc)."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, oracle.mixture.dim, generator=g, dtype=torch.float64)
    cls = oracle.oracle(label).mixture.sample(n, torch.Generator().manual_seed(seed + 1))
    out = []
    for s in scales:
        x = exact_cfg(oracle, label, s, x0, steps)
        a = tilted_target(oracle, label, s, n, grid, torch.Generator().manual_seed(seed + 2))
        b = tilted_target(oracle, label, s, n, grid, torch.Generator().manual_seed(seed + 3))
        out.append(TiltGap(float(s), exact_ot(x, a).w2, exact_ot(a, b).w2, exact_ot(x, cls).w2, n))
    return out


def continuity_residual(
    oracle: ClassOracle,
    label: int,
    scale: float,
    t: float,
    grid: RegularGrid,
    dt: float = 1e-3,
) -> float:
    """sum |d_t q + div(q v_s)| / sum |d_t q| on ``grid`` at time t (module doc), q the tilted
    marginal q_{s,t} normalised on the grid, v_s the guided exact field."""
    if not dt < t < 1.0 - dt:
        raise ValueError(f"t must lie in (dt, 1 - dt) for central differences, got {t}")
    dq = (
        _grid_density(oracle, label, scale, t + dt, grid)
        - _grid_density(oracle, label, scale, t - dt, grid)
    ) / (2 * dt)
    q = _grid_density(oracle, label, scale, t, grid)
    pts = grid.points()
    y = torch.full((pts.shape[0],), int(label))
    f = guided_field(oracle_labelled(oracle), y, oracle.num_classes, float(scale))
    v = f.velocity(pts, torch.full((pts.shape[0],), float(t), dtype=torch.float64)).numpy()
    div = np.zeros(grid.shape)
    for axis, h in enumerate(grid.spacing):
        flux = q * v[:, axis].reshape(grid.shape)
        div += np.gradient(flux, h, axis=axis)
    return float(np.abs(dq + div).sum() / np.abs(dq).sum())


__all__ = [
    "TiltGap",
    "continuity_residual",
    "exact_cfg",
    "tilt_gap",
    "tilted_log_density",
    "tilted_target",
]
