"""Targets pi(x) = exp(-V(x)) / Z given by their potential V: R^d -> R.

The Fokker-Planck equation d_t rho = div(rho grad V) + Laplace(rho) is the W2 gradient flow of
KL(rho || pi), and every solver in this package only needs V, grad V and, for absolute values
of the KL, log Z = log int exp(-V). A :class:`Potential` carries these three things; the
constructors below build it for

* a Gaussian N(b, Sigma):  V(x) = (x - b)^T Sigma^-1 (x - b) / 2,
  log Z = d/2 log(2 pi) + 1/2 log det Sigma;
* a Gaussian mixture p:    V = -log p, log Z = 0;
* a user function V (torch, batched), with grad V by autograd unless given; log Z unknown
  unless given, and then only F up to that constant is available.

Shapes: points x are (n, d); V(x) is (n,); grad(x) is (n, d). Values are computed in float64
and returned in x's floating dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import as_spd
from ..measures import Gaussian, GaussianMixture

Field = Callable[[Tensor], Tensor]


def _points(x: Tensor, dim: int | None) -> Tensor:
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    if x.dim() == 1 and dim == 1:
        x = x[:, None]
    if x.dim() != 2:
        raise ValueError(f"x must have shape (n, d), got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"x has d = {x.shape[1]} but the potential lives in R^{dim}")
    if not torch.is_floating_point(x):
        x = x.to(torch.get_default_dtype())
    return x


def energy_gradient(
    energy: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    create_graph: bool = False,
    through_input: bool = False,
) -> Tensor:
    """grad_x of sum_i E(x_i), x's shape: the one autograd gradient of a scalar energy.

    Taken under ``torch.enable_grad()`` so it works inside ``torch.no_grad()`` sampling loops.
    ``create_graph`` keeps the graph (a loss on -grad E trains E, second order);
    ``through_input`` differentiates at x itself (x requires grad and the caller's graph
    continues through it) instead of a detached copy.
    """
    with torch.enable_grad():
        xg = x if through_input else x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(xg).sum(), xg, create_graph=create_graph)
    return g


@dataclass(frozen=True)
class Potential:
    """A target pi = exp(-V) / Z, described by V, grad V and (when known) log Z.

    Attributes:
        energy: batched V, (n, d) -> (n,).
        gradient: batched grad V, (n, d) -> (n, d); None means autograd through ``energy``.
        dim: the dimension d, or None when the function accepts any d.
        log_normalizer: log Z = log int exp(-V(x)) dx, or None when unknown.
        gaussian: N(b, Sigma) when the target is Gaussian (enables closed forms), else None.
        mixture: the GaussianMixture when the target is one (V = -log p), else None.
        name: a short description for reports.

    Build with :func:`gaussian_potential`, :func:`mixture_potential` or
    :func:`function_potential` rather than directly.
    """

    energy: Field
    gradient: Field | None
    dim: int | None
    log_normalizer: float | None
    gaussian: Gaussian | None = None
    mixture: GaussianMixture | None = None
    name: str = "potential"

    def V(self, x: Tensor) -> Tensor:
        """The potential V(x), shape (n,)."""
        x = _points(x, self.dim)
        v = self.energy(x)
        if v.shape != (x.shape[0],):
            raise ValueError(
                f"the energy function returned shape {tuple(v.shape)} for {x.shape[0]} points: "
                "it must return one value per point, shape (n,)"
            )
        return v.to(x.dtype)

    def grad(self, x: Tensor) -> Tensor:
        """grad V(x), shape (n, d) (autograd through ``energy`` when no gradient was given)."""
        x = _points(x, self.dim)
        g = self.gradient(x) if self.gradient is not None else energy_gradient(self.energy, x)
        if g.shape != x.shape:
            raise ValueError(f"grad V returned shape {tuple(g.shape)}, expected {tuple(x.shape)}")
        return g.to(x.dtype)

    def score(self, x: Tensor) -> Tensor:
        """grad log pi(x) = -grad V(x), shape (n, d)."""
        return -self.grad(x)

    def log_prob(self, x: Tensor) -> Tensor:
        """log pi(x) = -V(x) - log Z, shape (n,); needs a known log Z."""
        if self.log_normalizer is None:
            raise ValueError(
                f"log Z of {self.name} is unknown: pass log_normalizer= when building the "
                "potential, or use V(x) (log pi up to a constant)"
            )
        return -self.V(x) - self.log_normalizer

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact draws from pi, (n, d) float64 (Gaussian and mixture targets only)."""
        if self.mixture is not None:
            return self.mixture.sample(n, generator=generator)
        if self.gaussian is not None:
            L = torch.linalg.cholesky(self.gaussian.cov)
            z = torch.randn(n, L.shape[0], generator=generator, dtype=torch.float64)
            return self.gaussian.mean + z @ L.T
        raise ValueError(f"{self.name} has no exact sampler: use flows.particles.mala to sample it")


def gaussian_potential(mean: Tensor, cov: Tensor) -> Potential:
    """pi = N(b, Sigma): V(x) = (x - b)^T Sigma^-1 (x - b) / 2, grad V = Sigma^-1 (x - b).

    log Z = d/2 log(2 pi) + 1/2 log det Sigma. Sigma must be positive definite.

    Args:
        mean: b, shape (d,).
        cov: Sigma, shape (d, d) (a scalar is read as Sigma = cov * I_1 only for d = 1).
    """
    b = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
    S = as_spd(torch.as_tensor(cov, dtype=torch.float64), "cov")
    d = b.shape[0]
    if S.shape != (d, d):
        raise ValueError(f"cov has shape {tuple(S.shape)} but the mean has d = {d}")
    L, info = torch.linalg.cholesky_ex(S)
    if int(info) != 0:
        raise ValueError("cov is singular: a Gaussian target exp(-V) needs Sigma positive definite")
    P = torch.cholesky_inverse(L)
    P = (P + P.T) / 2
    logdet = 2.0 * float(torch.log(torch.diagonal(L)).sum())

    def grad(x: Tensor) -> Tensor:
        return (x.to(torch.float64) - b) @ P

    def energy(x: Tensor) -> Tensor:
        diff = x.to(torch.float64) - b
        return 0.5 * ((diff @ P) * diff).sum(-1)

    return Potential(
        energy=energy,
        gradient=grad,
        dim=d,
        log_normalizer=0.5 * d * math.log(2 * math.pi) + 0.5 * logdet,
        gaussian=Gaussian(mean=b, cov=S),
        name=f"Gaussian N(b, Sigma) in R^{d}",
    )


def standard_gaussian_potential(dim: int) -> Potential:
    """pi = N(0, I_d): V(x) = |x|^2 / 2 (the VP diffusion's target)."""
    if dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim}")
    return gaussian_potential(torch.zeros(dim), torch.eye(dim))


def mixture_potential(mixture: GaussianMixture) -> Potential:
    """pi = sum_k w_k N(m_k, S_k): V = -log pi, grad V = -score, log Z = 0."""
    if not isinstance(mixture, GaussianMixture):
        raise ValueError("mixture must be a GaussianMixture (build it with GaussianMixture.create)")

    def energy(x: Tensor) -> Tensor:
        return -mixture.log_prob(x)

    def grad(x: Tensor) -> Tensor:
        return -mixture.score(x)

    gauss = None
    if mixture.weights.shape[0] == 1:
        gauss = Gaussian(mean=mixture.means[0], cov=mixture.covs[0])
    return Potential(
        energy=energy,
        gradient=grad,
        dim=mixture.dim,
        log_normalizer=0.0,
        gaussian=gauss,
        mixture=mixture,
        name=f"Gaussian mixture with {mixture.weights.shape[0]} components in R^{mixture.dim}",
    )


def function_potential(
    energy: Field,
    gradient: Field | None = None,
    dim: int | None = None,
    log_normalizer: float | None = None,
    name: str = "user potential",
) -> Potential:
    """pi proportional to exp(-V) for a user torch function V: (n, d) -> (n,).

    grad V is taken by autograd through ``energy`` unless ``gradient`` is given. Without
    ``log_normalizer`` the free energies are reported up to the constant log Z.
    """
    if not callable(energy):
        raise ValueError("energy must be a callable V(x) mapping (n, d) points to (n,) values")
    if gradient is not None and not callable(gradient):
        raise ValueError("gradient must be a callable (n, d) -> (n, d) or None for autograd")
    if log_normalizer is not None and not math.isfinite(float(log_normalizer)):
        raise ValueError("log_normalizer must be finite (or None when unknown)")
    return Potential(
        energy=energy,
        gradient=gradient,
        dim=dim,
        log_normalizer=None if log_normalizer is None else float(log_normalizer),
        name=name,
    )
