"""The Wasserstein manifold P2(R^d): OT distances, geodesics, path geometry (torch + POT only).

geometry -> problem -> solver -> result: each solver takes point clouds (and weights) or
Gaussian parameters and returns one typed result (:class:`OTResult`, :class:`Gaussian`,
:class:`AffineMap`, :class:`PathGeometry`). This package imports no other wasserflow package.
"""

from .exact import exact_ot, squared_distances, w2
from .gaussian import (
    bures_squared,
    empirical_gaussian,
    gaussian_geodesic,
    gaussian_map,
    gaussian_w2,
    gaussian_w2_empirical,
    gaussian_w2_squared,
)
from .interpolation import WeightedCloud, displacement_interpolation
from .mixture import GaussianMixture
from .one_dim import sliced_w2, w2_1d
from .results import AffineMap, Gaussian, OTResult, PathGeometry
from .trajectory import trajectory_action, trajectory_geometry

__all__ = [
    "AffineMap", "Gaussian", "GaussianMixture", "OTResult", "PathGeometry", "WeightedCloud",
    "bures_squared", "displacement_interpolation", "empirical_gaussian", "exact_ot",
    "gaussian_geodesic", "gaussian_map", "gaussian_w2", "gaussian_w2_empirical",
    "gaussian_w2_squared", "sliced_w2", "squared_distances", "trajectory_action",
    "trajectory_geometry", "w2", "w2_1d",
]
