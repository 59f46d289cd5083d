"""Gradient flows on P2(R^d): free energies, the Fokker-Planck equation and the JKO scheme.

For a target pi = exp(-V) / Z, the Fokker-Planck equation d_t rho = div(rho grad V) + Laplace(rho)
is the W2 gradient flow of F(rho) = KL(rho || pi) (Jordan, Kinderlehrer & Otto 1998), with
d/dt F = -I(rho || pi). Each module discretises one side of that picture:

* :mod:`.potentials`: :class:`Potential` (V, grad V, log Z), :func:`gaussian_potential`,
  :func:`standard_gaussian_potential`, :func:`mixture_potential`, :func:`function_potential`.
* :mod:`.free_energy`: :class:`FreeEnergy`; closed forms for Gaussians (:func:`gaussian_kl`,
  :func:`gaussian_entropy`, :func:`gaussian_fisher_information`, :func:`gaussian_free_energy`),
  particles (:func:`knn_entropy`, :func:`particle_free_energy`) and grids
  (:func:`grid_free_energy`, :func:`grid_fisher_information`).
* :mod:`.ornstein_uhlenbeck`: :class:`OrnsteinUhlenbeck` and its closed-form marginal,
  :func:`ou_to_target`, :func:`ou_gaussian`.
* :mod:`.particles`: :func:`langevin_particles` (Euler-Maruyama), :func:`ula`, :func:`mala`,
  each a :class:`ParticleFlow`.
* :mod:`.fp_grid`: :class:`RegularGrid`, :func:`regular_grid`, :func:`solve_fokker_planck_grid`
  (Scharfetter-Gummel finite volumes, :class:`FPGridResult`).
* :mod:`.jko`: :class:`JKOResult`, :func:`gaussian_jko_step`, :func:`gaussian_jko` (closed form
  for any N(b, Sigma) target), :func:`symmetric_gaussian_kl`.
* :mod:`.jko_grid`: :func:`jko_grid` (entropic, Peyre 2015) on a :class:`RegularGrid`.
* :mod:`.gradient_maps` and :mod:`.jko_particles`: :class:`GradientMap` and :class:`RidgeMap`;
  :func:`jko_particles` (mesh-free, exact log-determinants, :class:`ParticleJKOResult`) and
  :func:`fit_ridge_jko_step` (one step by a bijection of R^d, :class:`RidgeFit`).

Imports only :mod:`wasserflow.geometry._checks` and :mod:`wasserflow.geometry.measures` besides
itself (never :mod:`wasserflow.geometry.ot`).
"""

from ..measures import Gaussian, GaussianMixture
from .fp_grid import FPGridResult, RegularGrid, regular_grid, solve_fokker_planck_grid
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
from .gradient_maps import GradientMap, RidgeMap
from .jko import JKOResult, gaussian_jko, gaussian_jko_step, symmetric_gaussian_kl
from .jko_grid import jko_grid
from .jko_particles import ParticleJKOResult, RidgeFit, fit_ridge_jko_step, jko_particles
from .ornstein_uhlenbeck import OrnsteinUhlenbeck, ou_gaussian, ou_to_target
from .particles import ParticleFlow, langevin_particles, mala, ula
from .potentials import (
    Potential,
    energy_gradient,
    function_potential,
    gaussian_potential,
    mixture_potential,
    standard_gaussian_potential,
)

__all__ = [
    "FPGridResult",
    "FreeEnergy",
    "Gaussian",
    "GaussianMixture",
    "GradientMap",
    "JKOResult",
    "OrnsteinUhlenbeck",
    "ParticleFlow",
    "ParticleJKOResult",
    "Potential",
    "RegularGrid",
    "RidgeFit",
    "RidgeMap",
    "energy_gradient",
    "fit_ridge_jko_step",
    "function_potential",
    "gaussian_entropy",
    "gaussian_fisher_information",
    "gaussian_free_energy",
    "gaussian_jko",
    "gaussian_jko_step",
    "gaussian_kl",
    "gaussian_potential",
    "grid_fisher_information",
    "grid_free_energy",
    "jko_grid",
    "jko_particles",
    "knn_entropy",
    "langevin_particles",
    "mala",
    "mixture_potential",
    "ou_gaussian",
    "ou_to_target",
    "particle_free_energy",
    "regular_grid",
    "solve_fokker_planck_grid",
    "standard_gaussian_potential",
    "symmetric_gaussian_kl",
    "ula",
]
