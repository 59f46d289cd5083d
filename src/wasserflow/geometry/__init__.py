"""The Wasserstein manifold P2(R^d): OT distances, geodesics, path geometry, free energies and
gradient flows (torch, numpy, scipy and POT only).

geometry -> problem -> solver -> result: each solver takes point clouds (and weights), Gaussian
parameters or a grid density, and returns one typed result (:class:`OTResult`,
:class:`Gaussian`, :class:`AffineMap`, :class:`PathGeometry`, :class:`FreeEnergy`, ...).
This package imports no other wasserflow package.

* OT: :func:`exact_ot`, :func:`minibatch_ot_permutation`, :func:`sinkhorn`,
  :func:`sinkhorn_divergence`, :func:`w2` (any method), :func:`w2_1d`, :func:`sliced_w2`.
* Gaussians: :func:`gaussian_w2`, :func:`gaussian_map`, :func:`gaussian_geodesic`,
  :class:`GaussianMixture` (density, score, affine noising).
* Geodesics and paths: :func:`displacement_interpolation`, :func:`trajectory_geometry`.
* Free energy: :class:`Potential` targets pi ∝ exp(-V), :func:`gaussian_kl`,
  :func:`knn_entropy`, :func:`particle_free_energy`, grid free energy and Fisher information.
* Fokker-Planck: :class:`OrnsteinUhlenbeck` (closed form), :func:`ula`, :func:`mala`,
  :func:`solve_fokker_planck_grid` (Scharfetter-Gummel finite volumes).
* JKO: :func:`gaussian_jko` (closed form, any N(b, Sigma) target), :func:`jko_grid` (entropic,
  Peyre 2015), :func:`jko_particles` (mesh-free gradient maps with exact log-determinants),
  :func:`fit_ridge_jko_step` (one step by a :class:`RidgeMap`, a bijection of R^d).
"""

from .convex_maps import RidgeFit, RidgeMap, fit_ridge_jko_step
from .entropic import sinkhorn, sinkhorn_divergence
from .exact import exact_ot, squared_distances, w2
from .fokker_planck import OrnsteinUhlenbeck, euler_maruyama, mala, ou_to_target, ula
from .fp_grid import regular_grid, solve_fokker_planck_grid
from .free_energy import (
    FreeEnergy,
    gaussian_entropy,
    gaussian_fisher_information,
    gaussian_free_energy,
    gaussian_kl,
    grid_fisher_information,
    grid_free_energy,
    knn_entropy,
    particle_free_energy,
)
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
from .jko import JKOResult, gaussian_jko, gaussian_jko_step, ou_gaussian, symmetric_gaussian_kl
from .jko_grid import jko_grid
from .jko_particles import ParticleJKOResult, jko_particles
from .minibatch import minibatch_ot, minibatch_ot_permutation
from .mixture import GaussianMixture
from .one_dim import sliced_w2, w2_1d
from .potentials import (
    Potential,
    function_potential,
    gaussian_potential,
    mixture_potential,
    standard_gaussian_potential,
)
from .results import AffineMap, Gaussian, OTResult, PathGeometry
from .trajectory import trajectory_action, trajectory_geometry

__all__ = [
    "AffineMap", "FreeEnergy", "RidgeFit", "RidgeMap", "fit_ridge_jko_step", "JKOResult", "ParticleJKOResult", "gaussian_jko",
    "gaussian_jko_step", "jko_grid", "jko_particles", "ou_gaussian", "symmetric_gaussian_kl", "Gaussian", "GaussianMixture", "OTResult", "OrnsteinUhlenbeck",
    "PathGeometry", "Potential", "WeightedCloud", "bures_squared", "displacement_interpolation",
    "empirical_gaussian", "euler_maruyama", "exact_ot", "function_potential", "gaussian_entropy",
    "gaussian_fisher_information", "gaussian_free_energy", "gaussian_geodesic", "gaussian_kl",
    "gaussian_map", "gaussian_potential", "gaussian_w2", "gaussian_w2_empirical",
    "gaussian_w2_squared", "grid_fisher_information", "grid_free_energy", "knn_entropy", "mala",
    "minibatch_ot", "minibatch_ot_permutation", "mixture_potential", "ou_to_target",
    "particle_free_energy", "regular_grid", "sinkhorn", "sinkhorn_divergence", "sliced_w2",
    "solve_fokker_planck_grid", "squared_distances", "standard_gaussian_potential",
    "trajectory_action", "trajectory_geometry", "ula", "w2", "w2_1d",
]
