"""Toy 2-D data sets, drawn i.i.d. from their law with an explicit ``torch.Generator``.

Every sampler has the signature ``sampler(n, generator=None, dtype=torch.float32) -> (n, 2)``
and draws each point independently (no deterministic angle grids: TorchCFM's and scikit-learn's
moons place the angles on ``linspace(0, pi, n // 2)``, which makes a batch a quadrature rule
rather than a sample). The laws follow the usual references (TorchCFM, FFJORD), written out in
each docstring so that a test can check a sampler against its law:

* ``moons``: TorchCFM's convention (``torchcfm.utils.sample_moons``) with i.i.d. angles.
* ``8gaussians``: TorchCFM's ``sample_8gaussians``; also available as the exact
  :class:`~wasserflow.geometry.GaussianMixture` :func:`eight_gaussians_mixture`.
* ``checkerboard``, ``spirals``, ``circles``, ``swissroll``: FFJORD's toy sets
  (Grathwohl et al. 2019, ``lib/toy_data.py``), i.i.d.

Every set but the swiss roll is a mixture of pieces, and its ``*_labelled(n, generator) ->
(x, y)`` returns the points (float64) with the piece each was drawn from (int64): the moon, the
circle, the spiral arm, the board cell, the Gaussian (:data:`LABELLED`, with the class names).
The plain sampler is the labelled one without its labels: the same random numbers in the same
order.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from ..geometry import GaussianMixture
from .labels import sample_mixture_labelled


class Sampler2D(Protocol):
    """``sampler(n, generator=None, dtype=torch.float32) -> (n, 2)`` i.i.d. draws."""

    def __call__(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> Tensor: ...


class LabelledSampler2D(Protocol):
    """``sampler(n, generator=None) -> (x, y)``: (n, 2) float64 i.i.d. draws, (n,) int64 classes."""

    def __call__(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]: ...


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return n


def _rand(n: int, g: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64)


def moons_labelled(n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two interleaved half circles, TorchCFM's law with i.i.d. angles: (n, 2) float64, and the
    moon of each point (0 outer, 1 inner).

    n_out = n // 2 points on the outer moon (cos th, sin th), the other n - n_out on the inner
    moon (1 - cos th, 1/2 - sin th), th ~ U(0, pi) i.i.d.; then one u ~ U(0, 1) per point and
    0.2 u added to *both* coordinates; finally x -> 3 x - 1. The outer points come first.
    Mean (exact, n even): (0.8, 0.05).

    Reference: ``torchcfm.utils.sample_moons`` (which uses an angle grid instead of i.i.d. th).
    """
    n = _check_n(n)
    inner = torch.arange(n) >= n // 2
    th = math.pi * _rand(n, generator)
    c, s = torch.cos(th), torch.sin(th)
    x = torch.where(inner, 1.0 - c, c)
    y = torch.where(inner, 0.5 - s, s)
    u = 0.2 * _rand(n, generator)
    pts = torch.stack([x + u, y + u], dim=1)
    return 3.0 * pts - 1.0, inner.long()


def moons(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> Tensor:
    """The points of :func:`moons_labelled`, (n, 2) in ``dtype``."""
    return moons_labelled(n, generator)[0].to(dtype)


_EIGHT_SCALE = 5.0
_EIGHT_VAR = 0.1


def eight_gaussians_mixture() -> GaussianMixture:
    """TorchCFM's 8 Gaussians as an exact mixture: equal weights, means 5 (cos k pi/4, sin k pi/4),
    covariance sqrt(0.1) I (TorchCFM passes sqrt(var) as the covariance, so std = 0.1 ** 0.25).
    """
    k = torch.arange(8, dtype=torch.float64)
    means = _EIGHT_SCALE * torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1)
    return GaussianMixture.isotropic(means, std=_EIGHT_VAR**0.25)


def eight_gaussians_labelled(
    n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """n i.i.d. draws from :func:`eight_gaussians_mixture`, (n, 2) float64, and the component k
    (0..7, the Gaussian at angle k pi/4) of each.

    Reference: ``torchcfm.utils.sample_8gaussians`` (scale 5, var 0.1).
    """
    return sample_mixture_labelled(eight_gaussians_mixture(), _check_n(n), generator)


def eight_gaussians(
    n: int, generator: torch.Generator | None = None, dtype=torch.float32
) -> Tensor:
    """The points of :func:`eight_gaussians_labelled`, (n, 2) in ``dtype``."""
    return eight_gaussians_labelled(n, generator)[0].to(dtype)


def checkerboard_labelled(
    n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Uniform on the 8 'black' cells of a 4x4 board on [-4, 4]^2 with cells of side 2: (n, 2)
    float64, and the cell c (0..7) of each point.

    Cell c has column i = c // 2 and row j = 2 (c mod 2) + (i mod 2), and covers
    [2i - 4, 2i - 2) x [2j - 4, 2j - 2): the black cells are those with i + j even. Same law as
    FFJORD's ``checkerboard``.
    """
    n = _check_n(n)
    cell = torch.randint(0, 8, (n,), generator=generator)
    i = cell // 2
    j = 2 * (cell % 2) + (i % 2)  # i + j even
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return torch.stack([2 * i - 4 + 2 * u[:, 0], 2 * j - 4 + 2 * u[:, 1]], 1), cell


def checkerboard(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> Tensor:
    """The points of :func:`checkerboard_labelled`, (n, 2) in ``dtype``."""
    return checkerboard_labelled(n, generator)[0].to(dtype)


def spirals_labelled(n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two interleaved spirals (FFJORD's ``2spirals``) with a random arm per point: (n, 2)
    float64, and the arm of each point (0 for s = -1, 1 for s = +1).

    r = sqrt(U) * 3 pi (i.e. up to 540 degrees); p = (-r cos r + U1/2, r sin r + U2/2);
    the arm sign s = +-1 is a fair coin; x = s p / 3 + 0.1 Z, Z ~ N(0, I).
    """
    n = _check_n(n)
    g = generator
    r = torch.sqrt(_rand(n, g)) * 3 * math.pi
    p = torch.stack([-torch.cos(r) * r, torch.sin(r) * r], 1)
    p = p + 0.5 * torch.rand(n, 2, generator=g, dtype=torch.float64)
    arm = torch.randint(0, 2, (n, 1), generator=g, dtype=torch.float64)
    sign = 2.0 * arm - 1.0
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return sign * p / 3 + 0.1 * z, arm[:, 0].long()


def spirals(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> Tensor:
    """The points of :func:`spirals_labelled`, (n, 2) in ``dtype``."""
    return spirals_labelled(n, generator)[0].to(dtype)


def circles_labelled(n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two concentric circles (scikit-learn's ``make_circles(factor=0.5, noise=0.08)`` times 3):
    (n, 2) float64, and the circle of each point (0 outer, 1 inner).

    Radius R = 1 or 1/2 with probability 1/2 each, angle th ~ U(0, 2 pi), all i.i.d.:
    x = 3 (R (cos th, sin th) + 0.08 Z), Z ~ N(0, I).
    """
    n = _check_n(n)
    g = generator
    inner = torch.randint(0, 2, (n,), generator=g, dtype=torch.float64)
    R = 1.0 - 0.5 * inner
    th = 2 * math.pi * _rand(n, g)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    pts = R[:, None] * torch.stack([torch.cos(th), torch.sin(th)], 1) + 0.08 * z
    return 3.0 * pts, inner.long()


def circles(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> Tensor:
    """The points of :func:`circles_labelled`, (n, 2) in ``dtype``."""
    return circles_labelled(n, generator)[0].to(dtype)


def swiss_roll(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> Tensor:
    """2-D swiss roll (FFJORD's: scikit-learn's ``make_swiss_roll(noise=1)``, coords (x, z) / 5).

    t = 1.5 pi (1 + 2 U); x = (t cos t, t sin t) + Z, Z ~ N(0, I); returned x / 5.
    """
    n = _check_n(n)
    g = generator
    t = 1.5 * math.pi * (1.0 + 2.0 * _rand(n, g))
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) + z
    return (pts / 5.0).to(dtype)


DATASETS: dict[str, Sampler2D] = {
    "moons": moons,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "spirals": spirals,
    "circles": circles,
    "swissroll": swiss_roll,
}
"""Name -> 2-D sampler ``(n, generator=None, dtype=torch.float32) -> (n, 2)``."""

LABELLED: dict[str, tuple[LabelledSampler2D, tuple[str, ...]]] = {
    "moons": (moons_labelled, ("outer", "inner")),
    "8gaussians": (eight_gaussians_labelled, tuple(str(k) for k in range(8))),
    "checkerboard": (checkerboard_labelled, tuple(str(c) for c in range(8))),
    "spirals": (spirals_labelled, ("arm -", "arm +")),
    "circles": (circles_labelled, ("outer", "inner")),
}
"""Name -> (labelled sampler of the same draws as :data:`DATASETS`, class names)."""

ALIASES = {"eight_gaussians": "8gaussians", "2spirals": "spirals", "swiss_roll": "swissroll"}
"""Further names read by :func:`canonical_name` -> their :data:`DATASETS` key."""


def canonical_name(name: str) -> str | None:
    """The registry key for ``name`` (case-insensitive, '-' read as '_'), or None if unknown."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    return key if key in DATASETS else None


def get_dataset(name: str) -> Sampler2D:
    """The 2-D sampler registered under ``name`` (see :data:`DATASETS`)."""
    key = canonical_name(name)
    if key is None:
        raise ValueError(f"unknown 2-D data set {name!r}: choose one of {sorted(DATASETS)}")
    return DATASETS[key]
