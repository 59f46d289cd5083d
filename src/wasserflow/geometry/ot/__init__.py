"""Optimal transport for the squared-Euclidean cost: exact, entropic, one-dimensional and sliced
W2, Gaussian closed forms, geodesics and the geometry of sampled paths.

W2^2(mu, nu) = min over couplings P of mu and nu of E_P |x - y|^2; every solver takes point
clouds (and weights) or Gaussian parameters and returns one typed result (:class:`OTResult`,
:class:`AffineMap`, :class:`PathGeometry`, :class:`~wasserflow.geometry.measures.Gaussian`).

* :mod:`.solve`: :func:`w2` (x, y, method=...), the front door to all methods below.
* :mod:`.exact`: :func:`exact_ot` (network simplex), on :func:`squared_distances` (:mod:`.costs`).
* :mod:`.minibatch`: :func:`minibatch_ot_permutation`, :func:`minibatch_ot` (OT flow matching).
* :mod:`.entropic`: :func:`sinkhorn`, :func:`sinkhorn_divergence` (log-domain, eps-scaling).
* :mod:`.one_dim`: :func:`w2_1d` (quantiles), :func:`sliced_w2`.
* :mod:`.gaussian`: :func:`gaussian_w2`, :func:`bures_squared`, :func:`gaussian_map`,
  :func:`gaussian_geodesic` (exact between singular covariances too), :func:`empirical_gaussian`.
* :mod:`.interpolation`: :func:`displacement_interpolation` (McCann) of a coupling.
* :mod:`.trajectory`: :func:`trajectory_action`, :func:`trajectory_geometry` (action,
  geodesic gap, path energy, straightness).
* :mod:`.dynamic`: :func:`benamou_brenier`, the W2 geodesic between two densities on a 1-D or
  2-D grid (dynamic OT by proximal splitting, Papadakis, Peyre & Oudet 2014), a
  :class:`BenamouBrenierResult`; :func:`benamou_brenier_reference`, the same certified against
  a longer solve (operators in :mod:`._dynamic_ops`).

Imports only :mod:`wasserflow.geometry._checks` and :mod:`wasserflow.geometry.measures` besides
itself (never :mod:`wasserflow.geometry.flows`).
"""

from ..measures import Gaussian, WeightedCloud
from .costs import squared_distances
from .dynamic import BenamouBrenierResult, benamou_brenier, benamou_brenier_reference
from .entropic import sinkhorn, sinkhorn_divergence
from .exact import exact_ot
from .gaussian import (
    bures_squared,
    empirical_gaussian,
    gaussian_geodesic,
    gaussian_map,
    gaussian_w2,
    gaussian_w2_empirical,
    gaussian_w2_squared,
)
from .interpolation import displacement_interpolation
from .minibatch import minibatch_ot, minibatch_ot_permutation
from .one_dim import sliced_w2, w2_1d
from .results import AffineMap, OTResult, PathGeometry
from .solve import w2
from .trajectory import trajectory_action, trajectory_geometry

__all__ = [
    "AffineMap",
    "BenamouBrenierResult",
    "Gaussian",
    "OTResult",
    "PathGeometry",
    "WeightedCloud",
    "benamou_brenier",
    "benamou_brenier_reference",
    "bures_squared",
    "displacement_interpolation",
    "empirical_gaussian",
    "exact_ot",
    "gaussian_geodesic",
    "gaussian_map",
    "gaussian_w2",
    "gaussian_w2_empirical",
    "gaussian_w2_squared",
    "minibatch_ot",
    "minibatch_ot_permutation",
    "sinkhorn",
    "sinkhorn_divergence",
    "sliced_w2",
    "squared_distances",
    "trajectory_action",
    "trajectory_geometry",
    "w2",
    "w2_1d",
]
