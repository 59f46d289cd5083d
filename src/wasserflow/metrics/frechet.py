r"""Frechet distance between Gaussians fitted to features (FD; FID with Inception features).

Fit N(mu_a, S_a) and N(mu_b, S_b) to two sets of feature vectors (sample mean, unbiased sample
covariance with 1 / (n - 1)); the Frechet distance between the two Gaussians is

.. math::
    \mathrm{FD} = \lVert \mu_a - \mu_b \rVert^2
        + \operatorname{tr}\bigl(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}\bigr),

the squared 2-Wasserstein distance between the two Gaussians (Dowson & Landau 1982), the
quantity Heusel et al. (2017) named FID with InceptionV3 pool3 features. Everything is
computed in float64. The trace term uses tr (S_a S_b)^{1/2} = sum_i sqrt(lambda_i), with
lambda_i the eigenvalues of the symmetric PSD matrix S_a^{1/2} S_b S_a^{1/2} (S_a^{1/2} from
a symmetric eigendecomposition, eigenvalues clipped at 0): no non-symmetric square root, so
no imaginary parts to discard, and singular covariances (fewer samples than features, dead
ReLU units) are handled exactly. The reported value is clipped at 0 (round-off can leave
-1e-12 for equal sets).

Sample-size bias. FD between samples is a biased estimate of FD between the laws, upward
at finite n: two samples of size n of one law N(mu, S) have E|mu_a - mu_b|^2 = 2 tr(S) / n,
and for S = I_k the trace term adds about k (k + 1) / (2 n) (leading order in 1/n), so
E[FD] ~ 2k/n + k(k+1)/(2n) where the laws' FD is 0. The bias depends on n and on the laws,
so FD values are comparable only at equal sample sizes (and the same feature network); Chong
& Forsyth (2020) show the bias is linear in 1/n and extrapolate FID to n = infinity. Every
result carries ``n_a`` and ``n_b`` so a table can state them.

References
----------
* D. C. Dowson, B. V. Landau (1982). The Frechet distance between multivariate normal
  distributions. Journal of Multivariate Analysis 12(3), 450-455.
* M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter (2017). GANs trained by a
  two time-scale update rule converge to a local Nash equilibrium. NeurIPS.
* M. J. Chong, D. Forsyth (2020). Effectively unbiased FID and Inception Score and where to
  find them. CVPR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["FeatureStats", "FrechetResult", "feature_stats", "frechet_distance"]


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of n feature vectors of width k (float64).

    ``mu`` (k,), ``sigma`` (k, k) symmetric PSD (unbiased, 1 / (n - 1)), ``n`` the number of
    vectors, ``feature`` the name of the feature network if known (e.g. "digits8").
    """

    mu: Tensor
    sigma: Tensor
    n: int
    feature: str | None = None

    def __post_init__(self) -> None:
        mu = torch.as_tensor(self.mu, dtype=torch.float64)
        sigma = torch.as_tensor(self.sigma, dtype=torch.float64)
        if mu.dim() != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise InputError(
                f"FeatureStats needs mu of shape (k,) and sigma of shape (k, k), got "
                f"{tuple(mu.shape)} and {tuple(sigma.shape)}"
            )
        if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
            raise InputError("FeatureStats holds NaN or inf: check the features")
        if int(self.n) < 2:
            raise InputError(f"FeatureStats needs n >= 2 samples, got n = {self.n}")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "sigma", (sigma + sigma.T) / 2)
        object.__setattr__(self, "n", int(self.n))

    @property
    def dim(self) -> int:
        """The feature width k."""
        return int(self.mu.shape[0])


def _as_features(x, what: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise InputError(f"{what}: expected a FeatureStats or an (n, k) array, got {type(x)}")
    x = x.detach().to("cpu", torch.float64)
    if x.dim() != 2:
        raise InputError(f"{what}: features must have shape (n, k), got {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise InputError(f"{what}: a covariance needs n >= 2 feature vectors, got {x.shape[0]}")
    if not torch.isfinite(x).all():
        raise InputError(f"{what}: the features hold NaN or inf")
    return x


def feature_stats(features, feature: str | None = None) -> FeatureStats:
    """Mean and unbiased covariance of ``features`` (n, k), n >= 2, in float64.

    mu = (1/n) sum_i f_i, S = (1/(n-1)) sum_i (f_i - mu)(f_i - mu)^T (as ``numpy.cov``).
    """
    x = _as_features(features, "feature_stats")
    mu = x.mean(dim=0)
    c = x - mu
    sigma = c.T @ c / (x.shape[0] - 1)
    return FeatureStats(mu=mu, sigma=sigma, n=int(x.shape[0]), feature=feature)


@dataclass(frozen=True)
class FrechetResult:
    """A Frechet distance and what it was computed from.

    ``value`` = ``mean_term`` + ``trace_term``: |mu_a - mu_b|^2 and
    tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2). ``n_a``, ``n_b``: the sample sizes (FD is
    comparable only at equal n); ``dim``: the feature width k; ``feature``: the feature
    network's name when known.
    """

    value: float
    n_a: int
    n_b: int
    dim: int
    feature: str | None
    mean_term: float
    trace_term: float

    def __float__(self) -> float:
        return self.value

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "dim": self.dim,
            "feature": self.feature,
            "mean_term": self.mean_term,
            "trace_term": self.trace_term,
        }


def _sqrt_trace(sa: Tensor, sb: Tensor) -> Tensor:
    """tr (S_a^1/2 S_b S_a^1/2)^1/2 for symmetric PSD S_a, S_b (float64)."""
    w, u = torch.linalg.eigh(sa)
    ra = (u * w.clamp_min(0.0).sqrt()) @ u.T
    mid = ra @ sb @ ra
    lam = torch.linalg.eigvalsh((mid + mid.T) / 2)
    return lam.clamp_min(0.0).sqrt().sum()


def frechet_distance(a, b, *, feature: str | None = None) -> FrechetResult:
    """Frechet distance between Gaussians fitted to ``a`` and ``b`` (module docstring).

    ``a``, ``b``: :class:`FeatureStats` or raw (n, k) feature arrays (torch or numpy; fitted
    with :func:`feature_stats`). ``feature`` names the feature network for raw arrays; stats
    that name different networks are refused.
    """
    sa = a if isinstance(a, FeatureStats) else feature_stats(_as_features(a, "a"), feature)
    sb = b if isinstance(b, FeatureStats) else feature_stats(_as_features(b, "b"), feature)
    if sa.dim != sb.dim:
        raise InputError(
            f"frechet_distance: feature widths differ ({sa.dim} vs {sb.dim}): compute both "
            "with the same feature network"
        )
    if sa.feature is not None and sb.feature is not None and sa.feature != sb.feature:
        raise InputError(
            f"frechet_distance: features of {sa.feature!r} and {sb.feature!r} are not "
            "comparable: compute both with the same feature network"
        )
    name = sa.feature or sb.feature or feature
    mean_term = float(((sa.mu - sb.mu) ** 2).sum())
    trace = torch.trace(sa.sigma) + torch.trace(sb.sigma) - 2.0 * _sqrt_trace(sa.sigma, sb.sigma)
    trace_term = max(float(trace), 0.0)
    return FrechetResult(
        value=mean_term + trace_term,
        n_a=sa.n,
        n_b=sb.n,
        dim=sa.dim,
        feature=name,
        mean_term=mean_term,
        trace_term=trace_term,
    )
