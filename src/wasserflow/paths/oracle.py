"""Exact ("oracle") fields: the marginal score and velocity of an affine path in closed form.

For data X_1 ~ p = sum_k w_k N(m_k, S_k) and X_0 ~ N(0, I) independent, the marginal of
X_t = alpha_t X_1 + sigma_t X_0 is the mixture sum_k w_k N(alpha m_k, alpha^2 S_k + sigma^2 I)
(:meth:`GaussianMixture.noised`). Its score is closed form, and so is the marginal velocity of
the path (the field conditional flow matching regresses onto, Lipman et al. 2023, eq. 8):

    v_t(x) = d_alpha E[X_1 | X_t = x] + d_sigma E[X_0 | X_t = x],
    E[X_0 | X_t = x] = -sigma_t grad log p_t(x)     (Tweedie),

both finite at t = 0 and t = 1 for non-degenerate components. Sampling with this field
separates discretisation error from learning error.

:class:`GaussianGeodesicOracle` is the W2 geodesic (McCann interpolant) between N(0, I) and
N(m, S): x_t = ((1 - t) I + t A) x_0 + t m with A the Brenier map's matrix, whose Eulerian
field is v_t(x) = m + (A - I) ((1 - t) I + t A)^{-1} (x - t m).

**Flow maps** X(x, t, s) (the ODE's state at s started at (t, x)), in closed form:

* :class:`GaussianFlowMap`, the probability-flow ODE of any affine path from N(0, I) to
  N(m, S) with the independent coupling: the marginals N(alpha_t m, V_t), V_t = alpha_t^2 S +
  sigma_t^2 I, share S's eigenvectors, the marginal field is linear,
  v_t(x) = alpha'_t m + (V'_t / 2) V_t^{-1} (x - alpha_t m) (Cov(u_t, x_t) = V'_t / 2), and
  z = x - alpha_t m solves dz/dt = (V'_t / 2) V_t^{-1} z, so per eigenvalue s_i^2 of S
  z_i(s) = sqrt(V_i(s) / V_i(t)) z_i(t) with V_i = alpha^2 s_i^2 + sigma^2:

      X(x, t, s) = alpha_s m + V_s^{1/2} V_t^{-1/2} (x - alpha_t m).

  At (0, 1) on the linear path it is m + S^{1/2} x, the Brenier map, reached along curved
  paths (docs/design.md section 3: the path's action exceeds W2^2).
* :meth:`GaussianGeodesicOracle.flow_map`: X(x, t, s) = M_s M_t^{-1} (x - t m) + s m with
  M_t = (1 - t) I + t A; its average velocity T(x_0) - x_0 does not depend on s (a straight path).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wasserflow.geometry.measures import GaussianMixture
from wasserflow.geometry.ot.gaussian import gaussian_map

from .affine import AffinePath, broadcast_time


def _groups(t: Tensor):
    """Yield (value, mask) over the distinct times of a per-sample time vector."""
    for u in torch.unique(t):
        yield float(u), t == u


def _check_x(x: Tensor, d: int) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != d:
        raise ValueError(f"x must be a tensor of shape (n, {d})")


@dataclass(frozen=True)
class MixtureOracle:
    """Exact marginal quantities of ``path`` when the data law is ``mixture`` and the coupling is
    independent with X_0 ~ N(0, I). All methods take x (n, d) and t (scalar or (n,)) and return
    x's dtype."""

    mixture: GaussianMixture
    path: AffinePath

    def __post_init__(self) -> None:
        if self.path.bridge_sigma > 0:
            raise ValueError("the oracle covers paths without bridge noise (bridge_sigma = 0)")

    def marginal(self, t: float) -> GaussianMixture:
        """The law of X_t at one time t (a Gaussian mixture)."""
        c = self.path.coefficients(torch.tensor(float(t), dtype=torch.float64))
        return self.mixture.noised(float(c.alpha), float(c.sigma))

    def _per_time(self, x: Tensor, t, fn) -> Tensor:
        _check_x(x, self.mixture.dim)
        t = broadcast_time(t, x)
        out = torch.empty(x.shape, dtype=torch.float64, device=x.device)
        for u, mask in _groups(t):
            c = self.path.coefficients(torch.tensor(u, dtype=torch.float64))
            out[mask] = fn(x[mask].to(torch.float64), c)
        return out.to(x.dtype)

    def log_prob(self, x: Tensor, t) -> Tensor:
        """log p_t(x), shape (n,)."""
        _check_x(x, self.mixture.dim)
        t = broadcast_time(t, x)
        out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
        for u, mask in _groups(t):
            out[mask] = self.marginal(u).log_prob(x[mask].to(torch.float64))
        return out.to(x.dtype)

    def score(self, x: Tensor, t) -> Tensor:
        """grad_x log p_t(x), (n, d)."""
        return self._per_time(
            x, t, lambda xx, c: self.mixture.noised(float(c.alpha), float(c.sigma)).score(xx)
        )

    def posterior_x1(self, x: Tensor, t) -> Tensor:
        """E[X_1 | X_t = x], (n, d)."""
        return self._per_time(
            x, t, lambda xx, c: self.mixture.posterior_mean(xx, float(c.alpha), float(c.sigma))
        )

    def epsilon(self, x: Tensor, t) -> Tensor:
        """E[X_0 | X_t = x] = -sigma_t score_t(x), (n, d)."""

        def f(xx, c):
            return -float(c.sigma) * self.mixture.noised(float(c.alpha), float(c.sigma)).score(xx)

        return self._per_time(x, t, f)

    def velocity(self, x: Tensor, t) -> Tensor:
        """v_t(x) = d_alpha E[X_1 | x] + d_sigma E[X_0 | x], (n, d)."""

        def f(xx, c):
            a, s = float(c.alpha), float(c.sigma)
            ex1 = self.mixture.posterior_mean(xx, a, s)
            v = float(c.d_alpha) * ex1
            if float(c.d_sigma) != 0.0:
                v = v - float(c.d_sigma) * s * self.mixture.noised(a, s).score(xx)
            return v

        return self._per_time(x, t, f)


@dataclass(frozen=True)
class ClassOracle:
    """The exact class-conditional fields of a labelled mixture: class c is component c (its
    own Gaussian, p(x | c) = N(m_c, S_c)) and the null class K = the number of components is
    the whole mixture (the unconditional law). Methods take x (n, d), t and labels y (n,) (or
    one int) in [0, K] and evaluate each row with its own class."""

    mixture: GaussianMixture
    path: AffinePath

    @property
    def num_classes(self) -> int:
        return int(self.mixture.weights.shape[0])

    def oracle(self, label: int) -> MixtureOracle:
        """The :class:`MixtureOracle` of class ``label`` (K: the whole mixture)."""
        k = int(label)
        if not 0 <= k <= self.num_classes:
            raise ValueError(f"class {k} outside [0, {self.num_classes}]")
        m = self.mixture
        if k < self.num_classes:
            m = GaussianMixture.create([1.0], m.means[k : k + 1], m.covs[k : k + 1])
        return MixtureOracle(m, self.path)

    def _by_class(self, x: Tensor, t, labels, what: str) -> Tensor:
        _check_x(x, self.mixture.dim)
        t = broadcast_time(t, x)
        y = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        y = y.expand(x.shape[0]) if y.shape[0] == 1 else y
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{y.shape[0]} labels for a batch of {x.shape[0]}")
        out = torch.empty_like(x)
        for k in torch.unique(y).tolist():
            rows = y == k
            out[rows] = getattr(self.oracle(k), what)(x[rows], t[rows])
        return out

    def velocity(self, x: Tensor, t, labels) -> Tensor:
        """v_t(x | y) (n, d)."""
        return self._by_class(x, t, labels, "velocity")

    def score(self, x: Tensor, t, labels) -> Tensor:
        """grad log p_t(x | y) (n, d)."""
        return self._by_class(x, t, labels, "score")


@dataclass(frozen=True)
class GaussianFlowMap:
    """The exact flow map of ``path``'s probability-flow ODE from N(0, I) to N(mean, cov)
    (independent coupling, no bridge noise; module doc). Methods take x (n, d) and times (a
    scalar or (n,)) and return float64 of x's shape."""

    mean: Tensor
    cov: Tensor
    path: AffinePath

    def _parts(self, x: Tensor, t):
        m = torch.as_tensor(self.mean, dtype=torch.float64).reshape(-1)
        _check_x(x, m.shape[0])
        c = self.path.coefficients(broadcast_time(t, x).to(torch.float64))
        vals, vecs = torch.linalg.eigh(torch.as_tensor(self.cov, dtype=torch.float64))
        return m, c, vals, vecs

    def _variances(self, c, vals: Tensor) -> Tensor:
        """V_t per eigenvalue, (n, d)."""
        return c.alpha[:, None] ** 2 * vals[None] + c.sigma[:, None] ** 2

    def flow_map(self, x: Tensor, t, s) -> Tensor:
        """X(x, t, s) = alpha_s m + V_s^{1/2} V_t^{-1/2} (x - alpha_t m)."""
        m, ct, vals, vecs = self._parts(x, t)
        cs = self._parts(x, s)[1]
        ratio = (self._variances(cs, vals) / self._variances(ct, vals)).sqrt()  # (n, d)
        z = (x.to(torch.float64) - ct.alpha[:, None] * m) @ vecs
        return cs.alpha[:, None] * m + (ratio * z) @ vecs.T

    def average_velocity(self, x: Tensor, t, s) -> Tensor:
        """u(x, t, s) = (X(x, t, s) - x) / (s - t); the velocity v(x, t) where s = t."""
        tt, ss = broadcast_time(t, x).double(), broadcast_time(s, x).double()
        same = tt == ss
        h = torch.where(same, torch.ones_like(tt), ss - tt)
        u = (self.flow_map(x, tt, ss) - x.to(torch.float64)) / h[:, None]
        return torch.where(same[:, None], self.velocity(x, tt), u)

    def velocity(self, x: Tensor, t) -> Tensor:
        """v_t(x) = alpha'_t m + (V'_t / 2) V_t^{-1} (x - alpha_t m)."""
        m, c, vals, vecs = self._parts(x, t)
        v = self._variances(c, vals)
        dv = c.alpha[:, None] * c.d_alpha[:, None] * vals[None] + (c.sigma * c.d_sigma)[:, None]
        z = (x.to(torch.float64) - c.alpha[:, None] * m) @ vecs
        return c.d_alpha[:, None] * m + (dv / v * z) @ vecs.T


def gaussian_oracle(mean: Tensor, cov: Tensor, path: AffinePath) -> MixtureOracle:
    """The oracle of a single Gaussian N(mean, cov) (a one-component mixture)."""
    return MixtureOracle(GaussianMixture.create([1.0], mean, cov), path)


@dataclass(frozen=True)
class GaussianGeodesicOracle:
    """The OT geodesic from N(0, I) to N(mean, cov): McCann's interpolant and its field."""

    mean: Tensor
    cov: Tensor

    @property
    def matrix(self) -> Tensor:
        """A with T(x) = mean + A x the optimal (Brenier) map from N(0, I) (symmetric PSD)."""
        d = self.mean.reshape(-1).shape[0]
        eye = torch.eye(d, dtype=torch.float64)
        return gaussian_map(
            torch.zeros(d, dtype=torch.float64),
            eye,
            torch.as_tensor(self.mean, dtype=torch.float64).reshape(-1),
            torch.as_tensor(self.cov, dtype=torch.float64),
        ).matrix

    def transport(self, x0: Tensor, t) -> Tensor:
        """x_t = (1 - t) x0 + t T(x0) for reference points x0 (n, d)."""
        A = self.matrix
        m = torch.as_tensor(self.mean, dtype=torch.float64).reshape(-1)
        _check_x(x0, m.shape[0])
        tt = broadcast_time(t, x0).to(torch.float64)[:, None]
        x = x0.to(torch.float64)
        return ((1 - tt) * x + tt * (m + x @ A.T)).to(x0.dtype)

    def flow_map(self, x: Tensor, t, s) -> Tensor:
        """X(x, t, s) = M_s M_t^{-1} (x - t m) + s m, M_t = (1 - t) I + t A (module doc)."""
        return self.transport(self._start(x, t), s)

    def _start(self, x: Tensor, t) -> Tensor:
        """The reference point x0 whose geodesic passes x at t: M_t^{-1} (x - t m)."""
        A = self.matrix
        m = torch.as_tensor(self.mean, dtype=torch.float64).reshape(-1)
        d = m.shape[0]
        _check_x(x, d)
        tt = broadcast_time(t, x).to(torch.float64)
        eye = torch.eye(d, dtype=torch.float64)
        M = (1 - tt)[:, None, None] * eye + tt[:, None, None] * A
        y = x.to(torch.float64) - tt[:, None] * m
        return torch.linalg.solve(M, y[..., None])[..., 0]

    def velocity(self, x: Tensor, t) -> Tensor:
        """v_t(x) = m + (A - I) ((1 - t) I + t A)^{-1} (x - t m), (n, d)."""
        A = self.matrix
        m = torch.as_tensor(self.mean, dtype=torch.float64).reshape(-1)
        x0 = self._start(x, t)
        return (m + x0 @ (A - torch.eye(m.shape[0], dtype=torch.float64)).T).to(x.dtype)
