"""The measures shared by :mod:`.ot` and :mod:`.flows`: Gaussians, Gaussian mixtures and
weighted point clouds (all float64).

* :class:`Gaussian` N(mean, cov), the answer of every closed form (Bures geodesics, the
  Ornstein-Uhlenbeck marginal, the Gaussian JKO step); cov may be singular.
* :class:`GaussianMixture` p(x) = sum_k w_k N(x; m_k, S_k), with exact density, score and
  sampling, closed under affine noising: if X ~ p and Z ~ N(0, I) are independent,
  alpha X + sigma Z is the mixture with means alpha m_k and covariances alpha^2 S_k + sigma^2 I.
  This makes the score and the velocity of every affine Gaussian path closed-form (docs/design.md
  section 3), the oracle against which samplers and trained models are measured.
* :class:`WeightedCloud` sum_i w_i delta_{x_i}, e.g. a McCann interpolant of a coupling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import as_spd


@dataclass(frozen=True)
class Gaussian:
    """N(mean, cov) in float64."""

    mean: Tensor
    cov: Tensor


@dataclass(frozen=True)
class WeightedCloud:
    """sum_i weights_i delta_{points_i}: points (k, d), weights (k,) summing to one."""

    points: Tensor
    weights: Tensor


@dataclass(frozen=True)
class GaussianMixture:
    """sum_k weights_k N(means_k, covs_k); weights (K,), means (K, d), covs (K, d, d), float64.

    Build with :meth:`create`, which validates and normalises. A single Gaussian is K = 1.
    """

    weights: Tensor
    means: Tensor
    covs: Tensor

    @classmethod
    def create(cls, weights, means, covs) -> GaussianMixture:
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.dim() == 1:
            means = means[None]
        K, d = means.shape
        weights = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
        if weights.shape[0] != K:
            raise ValueError(f"{weights.shape[0]} weights for {K} components: give one per mean")
        if (weights < 0).any() or float(weights.sum()) <= 0 or not torch.isfinite(weights).all():
            raise ValueError("mixture weights must be finite, non-negative and not all zero")
        covs = torch.as_tensor(covs, dtype=torch.float64)
        if covs.dim() == 0:
            covs = covs * torch.eye(d, dtype=torch.float64).expand(K, d, d)
        elif covs.dim() == 2:
            covs = covs.expand(K, d, d)
        if covs.shape != (K, d, d):
            raise ValueError(f"covs has shape {tuple(covs.shape)}, expected ({K}, {d}, {d})")
        covs = torch.stack([as_spd(c, f"covs[{k}]") for k, c in enumerate(covs)])
        return cls(weights=weights / weights.sum(), means=means, covs=covs)

    @classmethod
    def isotropic(cls, means, std: float, weights=None) -> GaussianMixture:
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.dim() == 1:
            means = means[None]
        K, d = means.shape
        w = torch.ones(K) if weights is None else weights
        return cls.create(w, means, (std**2) * torch.eye(d, dtype=torch.float64).expand(K, d, d))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def mean(self) -> Tensor:
        return self.weights @ self.means

    @property
    def cov(self) -> Tensor:
        m = self.mean
        dm = self.means - m
        return (self.weights[:, None, None] * (self.covs + dm[:, :, None] * dm[:, None, :])).sum(0)

    def noised(self, alpha: float, sigma: float) -> GaussianMixture:
        """The law of alpha X + sigma Z, Z ~ N(0, I) independent of X."""
        eye = torch.eye(self.dim, dtype=torch.float64)
        return GaussianMixture(
            weights=self.weights,
            means=alpha * self.means,
            covs=alpha**2 * self.covs + sigma**2 * eye,
        )

    def _component_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """log(w_k N(x; m_k, S_k)) (n, K) and S_k^-1 (x - m_k) (n, K, d), float64."""
        x = torch.as_tensor(x).to(torch.float64)
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        L = torch.linalg.cholesky(self.covs)  # (K, d, d)
        diff = x[:, None, :] - self.means[None]  # (n, K, d)
        z = torch.linalg.solve_triangular(L[None], diff[..., None], upper=False)[..., 0]
        logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        logc = (
            torch.log(self.weights)[None]
            - 0.5 * (z**2).sum(-1)
            - 0.5 * logdet[None]
            - 0.5 * self.dim * math.log(2 * math.pi)
        )
        prec_diff = torch.cholesky_solve(diff[..., None], L[None])[..., 0]
        return logc, prec_diff

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x), shape (n,)."""
        logc, _ = self._component_terms(x)
        return torch.logsumexp(logc, dim=1)

    def score(self, x: Tensor) -> Tensor:
        """grad log p(x) = -sum_k r_k(x) S_k^-1 (x - m_k), shape (n, d)."""
        logc, prec_diff = self._component_terms(x)
        r = torch.softmax(logc, dim=1)
        return -(r[..., None] * prec_diff).sum(1)

    def posterior_mean(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """E[X | alpha X + sigma Z = x] for X ~ self, Z ~ N(0, I): (n, d) (Tweedie's formula)."""
        noised = self.noised(alpha, sigma)
        logc, _ = noised._component_terms(x)
        r = torch.softmax(logc, dim=1)  # (n, K)
        x = torch.as_tensor(x).to(torch.float64)
        # per component: m_k + alpha S_k (alpha^2 S_k + sigma^2 I)^-1 (x - alpha m_k)
        diff = x[:, None, :] - alpha * self.means[None]
        sol = torch.linalg.solve(noised.covs[None], diff[..., None])[..., 0]
        comp = self.means[None] + alpha * (self.covs[None] @ sol[..., None])[..., 0]
        return (r[..., None] * comp).sum(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n i.i.d. draws, (n, d) float64."""
        return self.sample_with_components(n, generator)[0]

    def sample_with_components(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """n i.i.d. draws (n, d) float64 and the component k of each (n,) int64:
        k ~ Categorical(weights), then x = m_k + L_k z with L_k L_k^T = S_k, z ~ N(0, I)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        L = torch.linalg.cholesky(self.covs)
        return self.means[k] + (L[k] @ z[..., None])[..., 0], k
