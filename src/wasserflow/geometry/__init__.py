"""The Wasserstein manifold P2(R^d): optimal transport and gradient flows (torch, numpy, scipy
and POT only).

geometry -> problem -> solver -> result: each solver takes point clouds (and weights), Gaussian
parameters or a grid density, and returns one typed result (:class:`OTResult`,
:class:`Gaussian`, :class:`AffineMap`, :class:`PathGeometry`, :class:`FreeEnergy`,
:class:`JKOResult`, ...). This package imports no other wasserflow package. It is two
libraries that do not import each other, and this module re-exports both:

:mod:`wasserflow.geometry.ot`, optimal transport for the cost |x - y|^2
  * W2: :func:`w2` (x, y, method=exact | sinkhorn | gaussian | sliced | 1d), :func:`exact_ot`,
    :func:`squared_distances`, :func:`minibatch_ot_permutation`, :func:`minibatch_ot`,
    :func:`sinkhorn`, :func:`sinkhorn_divergence`, :func:`w2_1d`, :func:`sliced_w2`.
  * Gaussians (Bures-Wasserstein): :func:`gaussian_w2`, :func:`gaussian_w2_squared`,
    :func:`bures_squared`, :func:`gaussian_map`, :func:`gaussian_geodesic`,
    :func:`empirical_gaussian`, :func:`gaussian_w2_empirical`.
  * Geodesics and paths: :func:`displacement_interpolation`, :func:`trajectory_action`,
    :func:`trajectory_geometry`; results :class:`OTResult`, :class:`AffineMap`,
    :class:`PathGeometry`.
  * Dynamic OT on grids: :func:`benamou_brenier` (the Benamou-Brenier geodesic between two
    densities by proximal splitting), :class:`BenamouBrenierResult`.

:mod:`wasserflow.geometry.flows`, the W2 gradient flow of F = KL(. || pi), pi ∝ exp(-V)
  * Targets and free energy: :class:`Potential` (:func:`gaussian_potential`,
    :func:`standard_gaussian_potential`, :func:`mixture_potential`, :func:`function_potential`),
    :class:`FreeEnergy`, :func:`gaussian_kl`, :func:`gaussian_entropy`,
    :func:`gaussian_fisher_information`, :func:`gaussian_free_energy`, :func:`knn_entropy`,
    :func:`particle_free_energy`, :func:`grid_free_energy`, :func:`grid_fisher_information`.
  * Fokker-Planck: :class:`OrnsteinUhlenbeck` (closed form, :func:`ou_to_target`,
    :func:`ou_gaussian`), particles :func:`langevin_particles`, :func:`ula`, :func:`mala`
    (:class:`ParticleFlow`), grids :class:`RegularGrid`, :func:`regular_grid`,
    :func:`solve_fokker_planck_grid` (Scharfetter-Gummel finite volumes).
  * JKO: :func:`gaussian_jko`, :func:`gaussian_jko_step` (closed form, any N(b, Sigma) target),
    :func:`jko_grid` (entropic, Peyre 2015), :func:`jko_particles` (mesh-free
    :class:`GradientMap` s with exact log-determinants), :func:`fit_ridge_jko_step` (one step by
    a :class:`RidgeMap`, a bijection of R^d), :func:`symmetric_gaussian_kl`.

Shared by both, at this level (and re-exported by both): :mod:`wasserflow.geometry.measures`
(:class:`Gaussian`, :class:`GaussianMixture` with exact density, score and affine noising,
:class:`WeightedCloud`) and the input checks of :mod:`wasserflow.geometry._checks`. This
module's ``__all__`` is the union of the two libraries' ``__all__``.
"""

from . import flows, ot
from .flows import *  # noqa: F403  (the names of flows.__all__)
from .ot import *  # noqa: F403  (the names of ot.__all__)

__all__ = list(dict.fromkeys([*ot.__all__, *flows.__all__]))
