"""The Ornstein-Uhlenbeck process: the Fokker-Planck flow with a closed form.

The linear SDE dX = -B (X - b) dt + sqrt(2) dW with B stable (eigenvalues with positive real
part) keeps a Gaussian law Gaussian. From N(m0, S0):

    m(t) = b + e^{-Bt} (m0 - b),
    S(t) = Sinf + e^{-Bt} (S0 - Sinf) e^{-B^T t},   B Sinf + Sinf B^T = 2 I,

since dm/dt = -B (m - b) and dS/dt = -B S - S B^T + 2 I. Sinf is the stationary covariance.
B = Sigma^-1 is the reversible (gradient-flow) case with target N(b, Sigma)
(:func:`ou_to_target`): dX = -grad V dt + sqrt(2) dW with V(x) = (x - b)^T Sigma^-1 (x - b) / 2,
the W2 gradient flow of KL(. || N(b, Sigma)), whose marginal is then

    m(t) = b + e^{-tP} (m0 - b),   S(t) = e^{-tP} S0 e^{-tP} + Sigma (I - e^{-2tP}),   P = Sigma^-1.

Any B = (I + A) Sigma^-1 with A antisymmetric has the same target and the same dissipation
d/dt KL = -I(rho || pi) (the antisymmetric drift does no work on the free energy).
:meth:`OrnsteinUhlenbeck.marginal` is the one implementation of the marginal;
:func:`ou_gaussian` is the same for a Gaussian :class:`~.potentials.Potential`, the reference
of the JKO solvers (:mod:`.jko`).

References: Risken (1989) "The Fokker-Planck equation" ch. 3 and 6; Jordan, Kinderlehrer &
Otto (1998).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import solve_continuous_lyapunov
from torch import Tensor

from .._checks import as_spd, as_vector
from ..measures import Gaussian
from .potentials import Potential, gaussian_potential


@dataclass(frozen=True)
class OrnsteinUhlenbeck:
    """dX = -B (X - b) dt + sqrt(2) dW (float64). Build with :meth:`create` or
    :func:`ou_to_target`.

    Attributes:
        drift_matrix: B, (d, d), all eigenvalues with positive real part.
        center: b, (d,).
        stationary_cov: Sinf solving B Sinf + Sinf B^T = 2 I, (d, d).
    """

    drift_matrix: Tensor
    center: Tensor
    stationary_cov: Tensor

    @classmethod
    def create(cls, drift_matrix: Tensor, center: Tensor) -> OrnsteinUhlenbeck:
        B = torch.as_tensor(drift_matrix, dtype=torch.float64)
        if B.dim() == 0:
            B = B.reshape(1, 1)
        if B.dim() != 2 or B.shape[0] != B.shape[1] or not torch.isfinite(B).all():
            raise ValueError(f"drift_matrix must be a finite (d, d) matrix, got {tuple(B.shape)}")
        b = as_vector(center, "center", B.shape[0])
        if float(torch.linalg.eigvals(B).real.min()) <= 0:
            raise ValueError(
                "drift_matrix has an eigenvalue with non-positive real part: the OU process "
                "has no stationary law; use a stable B (e.g. B = Sigma^-1)"
            )
        eye2 = 2.0 * np.eye(B.shape[0])
        S = torch.from_numpy(solve_continuous_lyapunov(B.numpy(), eye2))
        return cls(drift_matrix=B, center=b, stationary_cov=(S + S.T) / 2)

    @property
    def dim(self) -> int:
        return self.center.shape[0]

    @property
    def is_reversible(self) -> bool:
        """True when B = Sinf^-1 (B symmetric): the flow is then the W2 gradient flow of KL."""
        B = self.drift_matrix
        return bool(torch.allclose(B, B.T, rtol=1e-10, atol=1e-12))

    def target(self) -> Potential:
        """The stationary law N(b, Sinf) as a :class:`Potential`."""
        return gaussian_potential(self.center, self.stationary_cov)

    def drift(self, x: Tensor) -> Tensor:
        """-B (x - b), shape (n, d), in x's dtype."""
        B, b = self.drift_matrix.to(x), self.center.to(x)
        return -(x - b) @ B.T

    def marginal(self, mean0: Tensor, cov0: Tensor, t: float) -> Gaussian:
        """The law at time t >= 0 from X_0 ~ N(mean0, cov0) (cov0 may be singular: 0 = Dirac)."""
        if not (math.isfinite(float(t)) and float(t) >= 0):
            raise ValueError(f"t = {t} must be a finite time >= 0")
        d = self.dim
        m0 = as_vector(mean0, "mean0", d)
        S0 = as_spd(cov0, "cov0")
        if S0.shape != (d, d):
            raise ValueError(f"cov0 has shape {tuple(S0.shape)}, expected ({d}, {d})")
        E = torch.linalg.matrix_exp(-float(t) * self.drift_matrix)
        Sinf = self.stationary_cov
        mean = self.center + E @ (m0 - self.center)
        cov = Sinf + E @ (S0 - Sinf) @ E.T
        return Gaussian(mean=mean, cov=(cov + cov.T) / 2)


def ou_to_target(
    mean: Tensor, cov: Tensor, antisymmetric: Tensor | None = None
) -> OrnsteinUhlenbeck:
    """The OU process with stationary law N(b, Sigma): B = (I + A) Sigma^-1.

    A = 0 (default) gives dX = -Sigma^-1 (X - b) dt + sqrt(2) dW = -grad V dt + sqrt(2) dW, the
    W2 gradient flow of KL(. || N(b, Sigma)); an antisymmetric A adds a divergence-free,
    non-reversible drift with the same target.
    """
    S = as_spd(cov, "cov")
    d = S.shape[0]
    L, info = torch.linalg.cholesky_ex(S)
    if int(info) != 0:
        raise ValueError("cov is singular: the target N(b, Sigma) needs Sigma positive definite")
    P = torch.cholesky_inverse(L)
    eye = torch.eye(d, dtype=torch.float64)
    if antisymmetric is None:
        B = (P + P.T) / 2
    else:
        A = torch.as_tensor(antisymmetric, dtype=torch.float64)
        scale = max(1.0, float(A.abs().max())) if A.numel() else 1.0
        if A.shape != (d, d) or float((A + A.T).abs().max()) > 1e-12 * scale:
            raise ValueError(f"antisymmetric must be a ({d}, {d}) matrix with A^T = -A")
        B = (eye + A) @ P
    return OrnsteinUhlenbeck.create(B, as_vector(mean, "mean", d))


def ou_gaussian(initial: Gaussian, target: Potential, t: float) -> Gaussian:
    """The exact Fokker-Planck (Ornstein-Uhlenbeck) marginal at time t for pi = N(b, Sigma).

    dX = -Sigma^-1 (X - b) dt + sqrt(2) dW from N(m_0, S_0) (module doc):
    m(t) = b + e^{-tP}(m_0 - b), S(t) = e^{-tP} S_0 e^{-tP} + Sigma (I - e^{-2tP}), P = Sigma^-1,
    i.e. ``ou_to_target(b, Sigma).marginal(m_0, S_0, t)``.
    """
    if not isinstance(target, Potential) or target.gaussian is None:
        raise ValueError(
            "the closed-form Ornstein-Uhlenbeck marginal needs a Gaussian target: build it with "
            "gaussian_potential(mean, cov)"
        )
    g = target.gaussian
    return ou_to_target(g.mean, g.cov).marginal(initial.mean, initial.cov, t)
