"""Gradient maps T = grad psi for the particle JKO steps: two families, shared fitting tools.

A JKO step between absolutely continuous measures is realised by the gradient of a convex
potential psi (Brenier). For T = grad psi the Jacobian DT = Hess psi is symmetric, and where it
is positive definite the change of variables carries log-densities along the map:

    log (T#rho)(T(x)) = log rho(x) - log det DT(x).

Two parametrisations (float64; both give T(x) and DT(x) by ``apply``, and invert by Newton):

* :class:`GradientMap`, an affine map plus radial-basis bumps,

      psi(x) = 1/2 x^T (I + Q) x + c.x + l^2 sum_j a_j exp(-|x - z_j|^2 / (2 l^2)),
      T(x)   = (I + Q) x + c - sum_j a_j (x - z_j) k_j(x),   k_j(x) = exp(-|x - z_j|^2 / (2 l^2)),
      DT(x)  = I + Q - sum_j a_j k_j(x) I + sum_j a_j k_j(x) (x - z_j)(x - z_j)^T / l^2,

  Q symmetric, centres z_j, bandwidth l. DT is positive definite only where it is checked (on
  the particles of the fit): enough to push particles forward (:mod:`.jko_particles`).
* :class:`RidgeMap`, the gradient of a one-layer input-convex (ridge) potential,

      psi(x) = 1/2 x^T A x + c.x + sum_j b_j softplus(w_j.x + beta_j),
      T(x)   = A x + c + sum_j b_j sigmoid(w_j.x + beta_j) w_j,
      DT(x)  = A + sum_j b_j s_j (1 - s_j) w_j w_j^T,      s_j = sigmoid(w_j.x + beta_j),

  with A symmetric positive definite and every b_j >= 0. Then DT(x) >= A > 0 at *every* x: T is
  a bijection of R^d, its log-determinant is finite everywhere, and T^{-1}(y) is the unique
  minimiser of the strongly convex psi(x) - y.x, found by Newton's method with a backtracking
  line search (globally convergent). This is what a generative model needs: the flow is run
  backwards from fresh noise, far from any training point.

Both are fitted by the same tools (:mod:`.jko_particles`): :func:`log_det` (Cholesky; None
where DT is not positive definite), the objective value :data:`INFEASIBLE` returned there, and
:func:`fit_lbfgs` (L-BFGS with a strong-Wolfe line search, in place).

References: Brenier (1991); Amos, Xu & Kolter (2017), "Input convex neural networks";
Mokrov et al. (2021), "Large-scale Wasserstein gradient flows"; Xu, Cheng & Xie (2023),
JKO-iFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

INFEASIBLE = 1e10  # objective value of parameters whose DT is not positive definite somewhere


def log_det(J: Tensor) -> Tensor | None:
    """log det J for symmetric J (..., d, d) by Cholesky, or None when some J is not positive
    definite."""
    L, info = torch.linalg.cholesky_ex(J)
    if bool((info != 0).any()):
        return None
    return 2 * torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1)


def infeasible(theta: Tensor) -> Tensor:
    """The objective value :data:`INFEASIBLE`, kept in theta's autograd graph (zero gradient)."""
    return theta.sum() * 0 + INFEASIBLE


def fit_lbfgs(
    theta: Tensor, objective: Callable[[Tensor], Tensor], max_iter: int, tol: float
) -> int:
    """Minimise objective(theta) over the leaf tensor theta in place by L-BFGS (strong-Wolfe line
    search, history 50, gradient tolerance ``tol``); returns the iterations used."""
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-12,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        val = objective(theta)
        val.backward()
        return val

    opt.step(closure)
    return int(opt.state[theta].get("n_iter", 0))


# ----------------------------------------------------------------------------- radial basis


@dataclass(frozen=True)
class GradientMap:
    """T(x) = grad psi(x) = (I + Q) x + c - sum_j a_j (x - z_j) exp(-|x - z_j|^2 / (2 l^2)).

    Attributes: matrix (d, d) = I + Q (symmetric); shift c (d,); centers z (m, d);
    weights a (m,); bandwidth l > 0. All float64.
    """

    matrix: Tensor
    shift: Tensor
    centers: Tensor
    weights: Tensor
    bandwidth: float

    def apply(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(T(x), DT(x)): (n, d) and (n, d, d), DT = Hess psi symmetric."""
        return _rbf_apply(self.matrix, self.shift, self.centers, self.weights, self.bandwidth, x)

    def __call__(self, x: Tensor) -> Tensor:
        return self.apply(x)[0]

    def jacobian(self, x: Tensor) -> Tensor:
        """DT(x) = Hess psi(x), (n, d, d), symmetric."""
        return self.apply(x)[1]

    def inverse(self, y: Tensor, tol: float = 1e-11, max_iter: int = 50) -> Tensor:
        """x with T(x) = y by damped Newton steps x <- x - DT(x)^-1 (T(x) - y)."""
        x = torch.linalg.solve(self.matrix, (y - self.shift).T).T
        for _ in range(max_iter):
            Tx, J = self.apply(x)
            res = Tx - y
            if float(res.abs().max()) < tol:
                return x
            x = x - torch.linalg.solve(J, res[..., None])[..., 0]
        if float((self(x) - y).abs().max()) > 1e3 * tol:
            raise ValueError(
                "GradientMap.inverse did not converge: the map is not invertible there"
            )
        return x


def _rbf_apply(matrix, shift, centers, weights, bw, x):
    r = x[:, None, :] - centers[None]  # (n, m, d)
    k = torch.exp(-(r * r).sum(-1) / (2 * bw * bw)) * weights  # (n, m)
    Tx = x @ matrix + shift - (k[..., None] * r).sum(1)
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    J = matrix - k.sum(1)[:, None, None] * eye + torch.einsum("nm,nmd,nme->nde", k, r, r) / bw**2
    return Tx, J


def push_forward(maps, x: Tensor, log_p: Tensor) -> tuple[Tensor, Tensor]:
    """Push points x with log-densities log_p through the :class:`GradientMap` s in order."""
    for T in maps:
        if not bool((T.weights != 0).any()):  # affine map: DT is constant
            log_p = log_p - torch.linalg.slogdet(T.matrix)[1]
            x = x @ T.matrix + T.shift
            continue
        Tx, J = T.apply(x)
        log_p = log_p - torch.linalg.slogdet(J)[1]
        x = Tx
    return x, log_p


# ----------------------------------------------------------------------------- ridge


@dataclass(frozen=True)
class RidgeMap:
    """T = grad psi for the ridge potential psi of the module docstring (float64 tensors).

    Attributes: matrix A (d, d) symmetric positive definite; shift c (d,); weights w (m, d);
    biases beta (m,); amplitudes b (m,) >= 0.
    """

    matrix: Tensor
    shift: Tensor
    weights: Tensor
    biases: Tensor
    amplitudes: Tensor

    @classmethod
    def identity(cls, dim: int) -> RidgeMap:
        z = torch.zeros(0, dtype=torch.float64)
        return cls(
            torch.eye(dim, dtype=torch.float64),
            torch.zeros(dim, dtype=torch.float64),
            torch.zeros(0, dim, dtype=torch.float64),
            z,
            z,
        )

    @property
    def dim(self) -> int:
        return self.matrix.shape[0]

    def potential(self, x: Tensor) -> Tensor:
        """psi(x), (n,)."""
        u = x @ self.weights.T + self.biases
        return (
            0.5 * (x @ self.matrix * x).sum(-1)
            + x @ self.shift
            + (self.amplitudes * F.softplus(u)).sum(-1)
        )

    def apply(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(T(x), DT(x)): (n, d) and (n, d, d)."""
        return _ridge_apply(self.matrix, self.shift, self.weights, self.biases, self.amplitudes, x)

    def __call__(self, x: Tensor) -> Tensor:
        return self.apply(x)[0]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(T(x), log det DT(x)): the change of variables log rho'(T x) = log rho(x) - logdet."""
        Tx, J = self.apply(x)
        ld = log_det(J)
        if ld is None:  # DT >= A > 0 by construction: only a map built with A not PD gets here
            raise ValueError("RidgeMap: DT(x) is not positive definite (is the matrix A PD?)")
        return Tx, ld

    def inverse(self, y: Tensor, *, tol: float = 1e-10, max_iter: int = 100) -> tuple[Tensor, int]:
        """(x with T(x) = y, number of map evaluations).

        Damped Newton x <- x - lam DT(x)^{-1} (T(x) - y), halving lam until |T(x) - y| falls
        (a descent direction for it since DT is positive definite), from the affine inverse.
        Raises ValueError if |T(x) - y| is not below ``tol`` (relative to 1 + |y|) in time.
        """
        x = torch.linalg.solve(self.matrix, (y - self.shift).T).T
        evals = 0
        if self.weights.shape[0] == 0:
            return x, evals
        scale = 1.0 + y.abs().amax(-1)
        Tx, J = self.apply(x)
        evals += 1
        res = Tx - y
        for _ in range(max_iter):
            r0 = (res * res).sum(-1)
            if bool((r0.sqrt() <= tol * scale).all()):
                return x, evals
            step = torch.linalg.solve(J, res[..., None])[..., 0]
            lam = torch.ones(x.shape[0], 1, dtype=x.dtype)
            for _ in range(40):
                xn = x - lam * step
                Tn, Jn = self.apply(xn)
                evals += 1
                rn = Tn - y
                worse = ((rn * rn).sum(-1) > (1 - 1e-4 * lam[:, 0]) * r0) & (
                    r0.sqrt() > tol * scale
                )
                if not bool(worse.any()):
                    break
                lam[worse] *= 0.5
            x, J, res = xn, Jn, rn
        if bool(((res * res).sum(-1).sqrt() <= tol * scale).all()):
            return x, evals
        raise ValueError(
            f"RidgeMap.inverse did not reach |T(x) - y| <= {tol:g} in {max_iter} "
            "Newton steps: raise max_iter or loosen tol"
        )

    def tensors(self, prefix: str) -> dict[str, Tensor]:
        return {f"{prefix}.{k}": getattr(self, k) for k in _FIELDS}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> RidgeMap:
        try:
            return cls(**{k: tensors[f"{prefix}.{k}"].to(torch.float64) for k in _FIELDS})
        except KeyError as e:
            raise ValueError(f"no ridge map {prefix!r} in the tensors (missing {e})") from e


_FIELDS = ("matrix", "shift", "weights", "biases", "amplitudes")


def _ridge_apply(A, c, W, beta, b, x):
    s = torch.sigmoid(x @ W.T + beta)  # (n, m)
    Tx = x @ A + c + (b * s) @ W
    J = A + torch.einsum("nm,md,me->nde", b * s * (1 - s), W, W)
    return Tx, J
