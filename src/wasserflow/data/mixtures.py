"""Named Gaussian-mixture data sets: data whose density, score and noised laws are exact.

Each built-in is a :class:`~wasserflow.geometry.GaussianMixture`
p(x) = sum_k w_k N(x; m_k, S_k) (float64), so ``log_prob``, ``score = grad log p``, ``sample``,
``noised(alpha, sigma)`` (the law of alpha X + sigma Z) and ``posterior_mean`` are closed-form:
the oracle against which samplers and trained models are measured (docs/design.md section 3).
All parameters are fixed numbers (no random construction), so a name always means one law.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..geometry import GaussianMixture
from .toy2d import eight_gaussians_mixture


def _rotated(angle: float, stds: tuple[float, float]) -> torch.Tensor:
    """R diag(stds^2) R^T with R the rotation by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return R @ torch.diag(torch.tensor(stds, dtype=torch.float64) ** 2) @ R.T


def gaussian2d() -> GaussianMixture:
    """A single anisotropic Gaussian in R^2: mean (1, -0.5), covariance [[1.5, 0.6], [0.6, 0.5]]."""
    return GaussianMixture.create([1.0], [[1.0, -0.5]], [[[1.5, 0.6], [0.6, 0.5]]])


def gmm2d() -> GaussianMixture:
    """Three anisotropic components in R^2 with unequal weights (0.5, 0.3, 0.2).

    Means (-2, 0), (2, 1), (0, -2.5); covariances R(a) diag(s)^2 R(a)^T with
    (a, s) = (pi/6, (0.8, 0.3)), (-pi/4, (0.5, 0.2)), (0, (0.3, 0.6)).
    """
    covs = torch.stack(
        [
            _rotated(math.pi / 6, (0.8, 0.3)),
            _rotated(-math.pi / 4, (0.5, 0.2)),
            _rotated(0.0, (0.3, 0.6)),
        ]
    )
    return GaussianMixture.create([0.5, 0.3, 0.2], [[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], covs)


def gmm8d() -> GaussianMixture:
    """Four components in R^8, weights (0.4, 0.3, 0.2, 0.1).

    Mean m_k = 3 (e_{2k} - e_{2k+1}) (k = 0..3, e_i the basis vectors); covariance
    S_k = diag(d_k) + 0.1 * 1 1^T with d_k[i] = 0.2 + 0.1 ((i + k) mod 4): anisotropic and
    correlated across all coordinates.
    """
    d = 8
    means = torch.zeros(4, d, dtype=torch.float64)
    covs = torch.empty(4, d, d, dtype=torch.float64)
    ones = torch.ones(d, d, dtype=torch.float64)
    for k in range(4):
        means[k, 2 * k] = 3.0
        means[k, 2 * k + 1] = -3.0
        diag = torch.tensor([0.2 + 0.1 * ((i + k) % 4) for i in range(d)], dtype=torch.float64)
        covs[k] = torch.diag(diag) + 0.1 * ones
    return GaussianMixture.create([0.4, 0.3, 0.2, 0.1], means, covs)


MIXTURES: dict[str, Callable[[], GaussianMixture]] = {
    "gaussian2d": gaussian2d,
    "gmm2d": gmm2d,
    "gmm8d": gmm8d,
    "8gaussians": eight_gaussians_mixture,
}
"""Name -> factory of the exact law (a fresh :class:`GaussianMixture` per call)."""


def get_mixture(name: str) -> GaussianMixture:
    """The named mixture (see :data:`MIXTURES`); names are case-insensitive."""
    key = name.strip().lower()
    if key not in MIXTURES:
        raise ValueError(f"unknown mixture {name!r}: choose one of {sorted(MIXTURES)}")
    return MIXTURES[key]()
