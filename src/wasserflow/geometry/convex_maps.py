"""JKO maps that are bijections of all of R^d: gradients of strongly convex ridge potentials.

A JKO step between absolutely continuous measures is realised by the gradient of a convex
potential (Brenier). The map family here is the gradient of a one-layer input-convex potential,

    psi(x) = 1/2 x^T A x + c.x + sum_j b_j softplus(w_j.x + beta_j),
    T(x)   = grad psi(x) = A x + c + sum_j b_j sigmoid(w_j.x + beta_j) w_j,
    DT(x)  = A + sum_j b_j s_j (1 - s_j) w_j w_j^T,      s_j = sigmoid(w_j.x + beta_j),

with A symmetric positive definite and every b_j >= 0. Then DT(x) >= A > 0 at *every* x, not
only at the particles the map was fitted on: T is a bijection of R^d, its log-determinant is
finite everywhere, and T^{-1}(y) is the unique minimiser of the strongly convex psi(x) - y.x,
found by Newton's method with a backtracking line search (globally convergent). This is what a
generative model needs: the flow is run backwards from fresh noise, far from any training point.

The fit minimises the JKO objective of F = KL(. || exp(-V)) over (A, c, w, beta, b) on
particles x_i of rho_k (Mokrov et al. 2021, "Large-scale Wasserstein gradient flows"; the
log-determinant carries the entropy, as in JKO-iFlow, Xu, Cheng & Xie 2023):

    J(T) = mean_i [ V(T x_i) - log det DT(x_i) + |T x_i - x_i|^2 / (2h) ],

a Monte Carlo estimate of F(T#rho_k) + W2^2(rho_k, T#rho_k) / (2h) minus the constant
mean log rho_k(x_i), so rho_k's density is never needed (T is the gradient of a convex function,
hence the optimal map from rho_k to T#rho_k, and E|T x - x|^2 is exactly that W2^2). A fit that does not beat J(id) = mean V(x_i) returns the identity.
:mod:`wasserflow.geometry.jko_particles` uses radial-basis gradient maps instead, whose Jacobian
is positive only where it is checked (enough to push particles forward).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_INFEASIBLE = 1e10


@dataclass(frozen=True)
class RidgeMap:
    """T = grad psi for the ridge potential of the module docstring (float64 tensors).

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
        return cls(torch.eye(dim, dtype=torch.float64), torch.zeros(dim, dtype=torch.float64),
                   torch.zeros(0, dim, dtype=torch.float64), z, z)

    @property
    def dim(self) -> int:
        return self.matrix.shape[0]

    def potential(self, x: Tensor) -> Tensor:
        """psi(x), (n,)."""
        u = x @ self.weights.T + self.biases
        return (0.5 * (x @ self.matrix * x).sum(-1) + x @ self.shift
                + (self.amplitudes * F.softplus(u)).sum(-1))

    def apply(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(T(x), DT(x)): (n, d) and (n, d, d)."""
        return _apply(self.matrix, self.shift, self.weights, self.biases, self.amplitudes, x)

    def __call__(self, x: Tensor) -> Tensor:
        return self.apply(x)[0]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(T(x), log det DT(x)): the change of variables log rho'(T x) = log rho(x) - logdet."""
        Tx, J = self.apply(x)
        return Tx, _log_det(J)

    def inverse(self, y: Tensor, *, tol: float = 1e-10, max_iter: int = 100
                ) -> tuple[Tensor, int]:
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
                worse = ((rn * rn).sum(-1) > (1 - 1e-4 * lam[:, 0]) * r0) & (r0.sqrt() > tol * scale)
                if not bool(worse.any()):
                    break
                lam[worse] *= 0.5
            x, J, res = xn, Jn, rn
        if bool(((res * res).sum(-1).sqrt() <= tol * scale).all()):
            return x, evals
        raise ValueError(f"RidgeMap.inverse did not reach |T(x) - y| <= {tol:g} in {max_iter} "
                         "Newton steps: raise max_iter or loosen tol")

    def tensors(self, prefix: str) -> dict[str, Tensor]:
        return {f"{prefix}.{k}": getattr(self, k) for k in _FIELDS}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> RidgeMap:
        try:
            return cls(**{k: tensors[f"{prefix}.{k}"].to(torch.float64) for k in _FIELDS})
        except KeyError as e:
            raise ValueError(f"no ridge map {prefix!r} in the tensors (missing {e})") from e


_FIELDS = ("matrix", "shift", "weights", "biases", "amplitudes")


def _apply(A, c, W, beta, b, x):
    s = torch.sigmoid(x @ W.T + beta)  # (n, m)
    Tx = x @ A + c + (b * s) @ W
    J = A + torch.einsum("nm,md,me->nde", b * s * (1 - s), W, W)
    return Tx, J


def _log_det(J: Tensor) -> Tensor:
    L = torch.linalg.cholesky(J)
    return 2 * torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1)


@dataclass(frozen=True)
class RidgeFit:
    """One fitted JKO step: the map, J(id) and J(T) on the particles, L-BFGS iterations,
    whether T was accepted (J(T) <= J(id); otherwise the identity is returned)."""

    map: RidgeMap
    objective_identity: float
    objective: float
    iterations: int
    accepted: bool


def fit_ridge_jko_step(
    x: Tensor,
    energy: Callable[[Tensor], Tensor],
    h: float,
    *,
    units: int = 64,
    init_scale: float = 6.0,
    max_iter: int = 100,
    tol: float = 1e-9,
    generator: torch.Generator | None = None,
) -> RidgeFit:
    """Fit the ridge map of one JKO step of KL(. || exp(-V)) from the particles x (module doc).

    Args:
        x: (n, d) particles of rho_k (float64 is used internally).
        energy: V, (n, d) -> (n,), differentiable in torch.
        h: the step, > 0.
        units: m, the number of ridge functions (0: affine maps).
        init_scale: initial |w_j| in units of the particles' spread (larger: sharper ridges).
        max_iter, tol: L-BFGS limits.
        generator: draws the initial ridge directions and the particles they pass through.
    """
    if not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise ValueError(f"the JKO step h must be a positive number, got {h!r}")
    x = torch.as_tensor(x).to(torch.float64)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"particles must have shape (n >= 2, d), got {tuple(x.shape)}")
    n, d = x.shape
    m = int(units)
    spread = float(x.std(0).mean()) or 1.0
    W0 = torch.randn(m, d, generator=generator, dtype=torch.float64) * (init_scale / spread)
    W0 = W0 / math.sqrt(d)
    through = x[torch.randint(0, n, (m,), generator=generator)]
    beta0 = -(W0 * through).sum(-1)
    iu = torch.triu_indices(d, d)
    nq = iu.shape[1]
    eye = torch.eye(d, dtype=torch.float64)
    theta = torch.cat([torch.zeros(nq + d, dtype=torch.float64), W0.reshape(-1), beta0,
                       torch.full((m,), -8.0, dtype=torch.float64)]).requires_grad_(True)

    def unpack(th):
        Q = torch.zeros(d, d, dtype=torch.float64).index_put((iu[0], iu[1]), th[:nq])
        A = eye + Q + Q.T - torch.diag(Q.diagonal())
        o = nq
        c = th[o:o + d]
        W = th[o + d:o + d + m * d].reshape(m, d)
        o += d + m * d
        return A, c, W, th[o:o + m], F.softplus(th[o + m:])

    def objective(th):
        A, c, W, beta, b = unpack(th)
        if int(torch.linalg.cholesky_ex(A.detach())[1]) != 0:
            return th.sum() * 0 + _INFEASIBLE  # DT >= A must stay positive definite
        Tx, J = _apply(A, c, W, beta, b, x)
        L, info = torch.linalg.cholesky_ex(J)
        if bool((info != 0).any()):  # round-off only: DT >= A > 0 in exact arithmetic
            return th.sum() * 0 + _INFEASIBLE
        log_det = 2 * torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1)
        return (energy(Tx) - log_det + ((Tx - x) ** 2).sum(-1) / (2 * h)).mean()

    with torch.no_grad():
        j_id = float(energy(x).mean())
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, tolerance_grad=tol,
                            tolerance_change=1e-12, history_size=50,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        val = objective(theta)
        val.backward()
        return val

    opt.step(closure)
    iters = int(opt.state[theta].get("n_iter", 0))
    with torch.no_grad():
        j = float(objective(theta))
        A, c, W, beta, b = (t.detach().clone() for t in unpack(theta.detach()))
    if not (math.isfinite(j) and j < _INFEASIBLE and j <= j_id):
        return RidgeFit(RidgeMap.identity(d), j_id, j_id, iters, False)
    return RidgeFit(RidgeMap(A, c, W, beta, b), j_id, j, iters, True)
