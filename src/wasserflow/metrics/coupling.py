"""How far a noise-to-sample coupling is from optimal: the coupling gap as a confidence interval.

A sampler pairs each starting noise x0_i ~ rho_0 with its sample x1_i = Phi(x0_i). The pairing is
one coupling of rho_0 and nu = Phi # rho_0; its cost exceeds the optimal one by the coupling gap

    G = C - W,   C = E|Phi(X) - X|^2 (the chord),   W = W2^2(rho_0, nu),

zero iff Phi is the Brenier map (the gradient of a convex function). Neither W nor G can be read
off n samples in high dimension: the plug-in gap C_n - OT_n (the pairs' cost minus the exact
assignment of the same 2n points) is >= 0 and E[C_n - OT_n] <= G (W2^2 is jointly convex and the
empirical measures are unbiased), but in d = 64 or 784 the sample's own pairing is the optimal
assignment for any map that moves points less than the distance between samples, so it reads 0
whatever the map. This module brackets G from both sides with estimators whose bias has a known
sign and whose noise is an ordinary mean's:

* **lower bounds: other couplings of the same two laws** (an upper bound on W).
  - ``rotation`` (``source="normal"``): rho_0 = N(0, s^2 I) is rotation-invariant, so for any
    orthogonal R, (R X, Phi(X)) couples rho_0 and nu and G >= C - E|Phi(X) - R X|^2
    = E[|Phi(X) - X|^2 - |Phi(X) - R X|^2]. R is the Procrustes rotation (the polar factor of
    sum_i x1_i x0_i^T + lambda I, lambda chosen on a validation part of the fitting folds)
    fitted on the other folds and the mean is taken over held-out pairs (cross-fitting), so its
    expectation is a valid lower bound. Exact for rotations (R = R_theta) and, in the
    population, for every linear map A = Q S (polar factorisation; R = Q gives cost W).
  - ``plugin``: C_n - OT_n over all n pairs (exact assignment, POT's network simplex), whose
    expectation is <= G, with the standard error of its n per-pair terms given the assignment
    (measured conservative: 0.011 against the 0.0044 spread over 40 replications of a 2-D map
    at n = 1,000, because the assignment adapts to each sample). Strong in d <= 3, 0 in high
    dimension (above).
* **upper bounds: dual potentials** (a lower bound on W). For every convex f, Fenchel-Young gives
  W >= E|X|^2 + E|Y|^2 - 2 (E f(X) + E f*(Y)), so

      G <= 2 E[f(X) + f*(Phi(X)) - <X, Phi(X)>],

  a mean of non-negative Fenchel-Young gaps of the pairs (zero iff Phi(x) = grad f(x)).
  ``gaussian-dual``: f quadratic, grad f(x) = m1 + A (x - m0) the Bures map between the Gaussians
  of the fitting folds' moments (covariances shrunk towards a multiple of I by an amount chosen
  on a validation part: A must be invertible), evaluated on held-out pairs, where the gap is
  (Phi(x) - T(x))^T A^-1 (Phi(x) - T(x)) per pair. In the population it is C minus the Gelbrich
  bound (exact when nu is Gaussian); fitted on other folds it is never the biased-upward plug-in
  Gelbrich bound.

Each bound is one-sided at level 1 - (1 - level) / k for the k bounds combined (Bonferroni), so
the bracket [lower, upper] holds with probability >= level; ``lower`` is clipped at 0 (G >= 0).
With the map itself (``map=``) the Brenier criterion is also tested
(:func:`~wasserflow.metrics.jacobian.jacobian_symmetry`).

Tried and not kept (benchmarks/README.md, "Coupling gap"): a piecewise-quadratic dual
(f = max_k of K Bures potentials of k-means clusters, offsets balanced by stochastic dual
ascent, the smoothed semi-discrete potential: the plain semi-discrete pair is -inf off the
convex hull of the fitting samples, which held-out samples in d = 64 never enter) was looser
than the one quadratic at n = 4,000 in d = 64 for every K in 5..20 on the trained digit models;
cyclical-monotonicity (2-cycle) violations: none for a rotation by theta < pi / 2, nor for any
trained model, so they resolve nothing the bounds above do not.

References: Brenier (1991); Gelbrich (1990); Villani, *Topics in Optimal Transport* (2003),
ch. 2 (Kantorovich duality); Chernozhukov et al. (2018) (cross-fitting); Manole & Niles-Weed
(2024) (plug-in rates n^(-2/d)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import torch
from torch import Tensor

from ..geometry import exact_ot
from .interval import Interval
from .jacobian import JacobianSymmetry, jacobian_symmetry

Side = Literal["lower", "upper"]
SOURCES = ("normal",)
MIN_PAIRS = 20
"""The fewest pairs a bracket is computed from (five folds of four)."""
_SHRINK = (1e-6, 1e-3, 1e-2, 0.1, 0.5, 1.0)
_PROCRUSTES_LAMBDA = (0.0, 0.3, 3.0, math.inf)  # inf: R = I, a gain of exactly 0


@dataclass(frozen=True)
class GapBound:
    """One estimator's one-sided bound on G: ``bound`` = ``estimate`` -+ z ``stderr`` at
    ``level`` (``side`` says which way), over ``n`` held-out pairs."""

    method: str
    side: Side
    bound: float
    estimate: float
    stderr: float
    level: float
    n: int


@dataclass(frozen=True)
class CouplingGap(Interval):
    """The coupling gap G = E|x1 - x0|^2 - W2^2 as an :class:`Interval` (module doc):
    [``lower``, ``upper``] holds jointly with probability >= ``level`` (``lower`` >= 0; ``upper``
    None when no upper bound applies), ``method`` the bounds combined (e.g.
    "rotation+gaussian-dual"), ``n`` the pairs, ``value`` a point estimate where the method has
    one (``plugin`` alone), ``chord`` E|x1 - x0|^2 over the pairs, ``bounds`` each estimator's
    bound and ``jacobian`` the Brenier-criterion test when a map was given."""

    chord: float = 0.0
    bounds: tuple[GapBound, ...] = ()
    jacobian: JacobianSymmetry | None = None

    @property
    def estimate(self) -> float | None:
        return self.value

    @classmethod
    def unresolved(cls, n: int, chord: float, level: float = 0.95) -> CouplingGap:
        """The bracket [0, inf) of too few pairs (fewer than :data:`MIN_PAIRS`)."""
        return cls(None, 0.0, None, level, f"unresolved (n < {MIN_PAIRS})", n, chord)

    def __str__(self) -> str:
        return f"{self.bracket()} ({self.method}, n = {self.n}, {self.level:.0%})"


@dataclass(frozen=True)
class _Pairs:
    x0: Tensor  # (n, d) float64
    x1: Tensor
    generator: torch.Generator


@dataclass(frozen=True)
class _Estimate:
    """A bound's point estimate and its standard error."""

    mean: float
    stderr: float

    @classmethod
    def of(cls, values: Tensor) -> _Estimate:
        """The mean of per-pair values and its standard error."""
        return cls(float(values.mean()), float(values.std()) / math.sqrt(values.numel()))


Estimator = Callable[[_Pairs, int], _Estimate]
"""``fn(pairs, folds) -> _Estimate`` of the bound."""


@dataclass(frozen=True)
class GapEstimator:
    """A registered bound: its side, whether it needs ``source="normal"``, and its function."""

    name: str
    side: Side
    needs_source: bool
    fn: Estimator = field(repr=False)


GAP_BOUNDS: dict[str, GapEstimator] = {}


def register_gap_bound(name: str, side: Side, *, needs_source: bool = False):
    """Decorator: register ``fn(pairs, folds) -> _Estimate`` as a bound on G."""

    def deco(fn: Estimator) -> Estimator:
        if name in GAP_BOUNDS:
            raise ValueError(f"coupling-gap bound {name!r} is registered twice")
        GAP_BOUNDS[name] = GapEstimator(name, side, needs_source, fn)
        return fn

    return deco


def _fold_indices(n: int, k: int, g: torch.Generator) -> list[Tensor]:
    perm = torch.randperm(n, generator=g)
    return [perm[i::k] for i in range(k)]


def _cross_fit(pairs: _Pairs, folds: int, fit_and_eval) -> _Estimate:
    """The mean of per-pair values, each from a fit on the other folds:
    ``fit_and_eval(train, test)`` (Chernozhukov et al. 2018)."""
    n = pairs.x0.shape[0]
    out = torch.empty(n, dtype=torch.float64)
    for test in _fold_indices(n, folds, pairs.generator):
        train = torch.ones(n, dtype=torch.bool)
        train[test] = False
        out[test] = fit_and_eval(train.nonzero().squeeze(1), test)
    return _Estimate.of(out)


def _validated(pairs: _Pairs, train: Tensor, grid, family, evaluate, better: str):
    """The grid value whose fit on 80 % of ``train`` scores best on the other 20 %:
    ``family(idx)`` fits what the values share and returns ``param -> model``."""
    perm = train[torch.randperm(train.numel(), generator=pairs.generator)]
    cut = max(1, int(0.8 * perm.numel()))
    inner, val = perm[:cut], perm[cut:]
    fit = family(inner)
    scores = [float(evaluate(fit(p), val).mean()) for p in grid]
    pick = max if better == "max" else min
    return grid[scores.index(pick(scores))]


def _procrustes(pairs: _Pairs, idx: Tensor, lam: float) -> Tensor:
    """The orthogonal R maximising sum_i <x1_i, R x0_i> + lambda n tr(R) (polar factor)."""
    x, y = pairs.x0[idx], pairs.x1[idx]
    d = x.shape[1]
    if math.isinf(lam):
        return torch.eye(d, dtype=x.dtype)
    m = y.T @ x
    scale = float(torch.linalg.matrix_norm(m, ord=2)) / d
    u, _, vh = torch.linalg.svd(m + lam * scale * torch.eye(d, dtype=m.dtype))
    return u @ vh


def _rotation_gain(pairs: _Pairs, r: Tensor, idx: Tensor) -> Tensor:
    x, y = pairs.x0[idx], pairs.x1[idx]
    return (y - x).pow(2).sum(1) - (y - x @ r.T).pow(2).sum(1)


@register_gap_bound("rotation", "lower", needs_source=True)
def _rotation(pairs: _Pairs, folds: int) -> _Estimate:
    """|x1 - x0|^2 - |x1 - R x0|^2 with R fitted on the other folds (module doc)."""

    def family(idx):
        return lambda lam: _procrustes(pairs, idx, lam)

    def gain(r, idx):
        return _rotation_gain(pairs, r, idx)

    def fit_eval(train, test):
        lam = _validated(pairs, train, _PROCRUSTES_LAMBDA, family, gain, "max")
        return gain(_procrustes(pairs, train, lam), test)

    return _cross_fit(pairs, folds, fit_eval)


def _eigh(s: Tensor) -> tuple[Tensor, Tensor]:
    lam, u = torch.linalg.eigh((s + s.T) / 2)
    return lam.clamp_min(0.0), u


def _cov(x: Tensor) -> Tensor:
    return torch.cov(x.T).reshape(x.shape[1], x.shape[1])


@dataclass(frozen=True)
class _BuresPotential:
    """f(x) = 1/2 (x - m0)^T A (x - m0) + <m1, x>: grad f = T(x) = m1 + A (x - m0), A > 0."""

    m0: Tensor
    m1: Tensor
    a: Tensor
    a_inv: Tensor

    @staticmethod
    def family(x: Tensor, y: Tensor) -> Callable[[float], _BuresPotential]:
        """``alpha -> potential``: the Bures map between N(m0, S0) and N(m1, S1), the fitting
        pairs' moments, each covariance shrunk towards tr(S) / d I by alpha (Ledoit & Wolf
        2004's target). The sample's own S0 (not the source's known s^2 I) makes the fit exact
        for a linear map: S1 = A S0 A for the fitted pairs."""
        d = x.shape[1]
        m0, m1, s1 = x.mean(0), y.mean(0), _cov(y)
        lam0, u0 = _eigh(_cov(x))
        mu0, mu1 = float(lam0.mean()), float(torch.trace(s1)) / d
        eye = torch.eye(d, dtype=x.dtype)

        def fit(alpha: float) -> _BuresPotential:
            w0 = ((1 - alpha) * lam0 + alpha * mu0).clamp_min(1e-300)
            r, ri = (u0 * w0.sqrt()) @ u0.T, (u0 * w0.rsqrt()) @ u0.T  # S0^(1/2), S0^(-1/2)
            lam, u = _eigh(r @ ((1 - alpha) * s1 + alpha * mu1 * eye) @ r)
            lam = lam.clamp_min(1e-300)
            a = ri @ ((u * lam.sqrt()) @ u.T) @ ri  # S0^-1/2 (S0^1/2 S1 S0^1/2)^1/2 S0^-1/2
            a_inv = r @ ((u * lam.rsqrt()) @ u.T) @ r
            return _BuresPotential(m0, m1, (a + a.T) / 2, (a_inv + a_inv.T) / 2)

        return fit

    def fenchel_young(self, x: Tensor, y: Tensor) -> Tensor:
        """2 (f(x) + f*(y) - <x, y>) = (y - T(x))^T A^-1 (y - T(x)) >= 0, per pair."""
        res = y - self.m1 - (x - self.m0) @ self.a
        return ((res @ self.a_inv) * res).sum(1)


@register_gap_bound("gaussian-dual", "upper")
def _gaussian_dual(pairs: _Pairs, folds: int) -> _Estimate:
    """The pairs' Fenchel-Young gaps under the Bures potential of the other folds."""
    x0, x1 = pairs.x0, pairs.x1

    def family(idx):
        return _BuresPotential.family(x0[idx], x1[idx])

    def evaluate(pot, idx):
        return pot.fenchel_young(x0[idx], x1[idx])

    def fit_eval(train, test):
        alpha = _validated(pairs, train, _SHRINK, family, evaluate, "min")
        return evaluate(family(train)(alpha), test)

    return _cross_fit(pairs, folds, fit_eval)


def _plugin_terms(x0: Tensor, x1: Tensor) -> Tensor:
    """|x1_i - x0_i|^2 - |x1_s(i) - x0_i|^2 per pair, s the exact optimal assignment of the
    2n points (POT's network simplex, :func:`~wasserflow.geometry.exact_ot`): their mean is
    C_n - OT_n."""
    res = exact_ot(x0, x1)
    if not res.converged:
        raise ValueError(f"the exact assignment of {x0.shape[0]} pairs did not converge")
    s = res.plan.argmax(1)
    return (x1 - x0).pow(2).sum(1) - (x1[s] - x0).pow(2).sum(1)


def plugin_gap(x0: Tensor, x1: Tensor) -> float:
    """C_n - OT_n: the pairs' mean cost minus the exact assignment's (>= 0; its mean <= G)."""
    return float(_plugin_terms(x0.to(torch.float64), x1.to(torch.float64)).mean())


@register_gap_bound("plugin", "lower")
def _plugin(pairs: _Pairs, folds: int) -> _Estimate:
    """The plug-in gap of all n pairs with the standard error of its per-pair terms given the
    assignment (module doc)."""
    terms = _plugin_terms(pairs.x0, pairs.x1)
    if float(terms.mean()) <= _round_off(pairs):  # the sample's own pairing is optimal
        return _Estimate(0.0, 0.0)
    return _Estimate.of(terms)


def _round_off(pairs: _Pairs) -> float:
    """What float64 sums of the pairs' costs cannot resolve (1e-9 of the chord)."""
    return 1e-9 * float((pairs.x1 - pairs.x0).pow(2).sum(1).mean())


def _checked_pairs(x0: Tensor, x1: Tensor, source: str | None) -> tuple[Tensor, Tensor]:
    if not isinstance(x0, Tensor) or not isinstance(x1, Tensor):
        raise TypeError("x0 and x1 must be torch tensors")
    if x0.shape != x1.shape or x0.dim() < 2:
        raise ValueError(
            f"x0 and x1 must be (n, ...) of one shape (paired), got {tuple(x0.shape)} and "
            f"{tuple(x1.shape)}"
        )
    n = x0.shape[0]
    if n < MIN_PAIRS:
        raise ValueError(f"the coupling gap needs at least {MIN_PAIRS} pairs, got {n}")
    a = x0.reshape(n, -1).detach().to("cpu", torch.float64)
    b = x1.reshape(n, -1).detach().to("cpu", torch.float64)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("x0 or x1 holds NaN or inf values (a diverged sampler?)")
    if source is not None and source not in SOURCES:
        raise ValueError(f"source must be None or one of {SOURCES}, got {source!r}")
    if source == "normal":
        _check_isotropic(a)
    return a, b


def _check_isotropic(x: Tensor) -> None:
    """Refuse x0 that cannot be draws of N(0, s^2 I) (the rotation bound relies on it)."""
    n, d = x.shape
    s2 = float(x.pow(2).mean())
    mean_z = float(x.mean(0).norm()) / math.sqrt(s2 * d / n)  # ~ chi_d / sqrt(d) ~ 1
    var = x.pow(2).mean(0) / s2  # each ~ 1 +- sqrt(2 / n)
    spread = float((var - 1).abs().max()) / math.sqrt(2 / n)
    if s2 <= 0 or mean_z > 1 + 6 / math.sqrt(d) or spread > 6 + math.sqrt(2 * math.log(d + 1)):
        raise ValueError(
            "source='normal' needs x0 drawn from N(0, s^2 I) (centred, isotropic), but its mean "
            "or per-coordinate variances are off by more than sampling error; pass source=None"
        )


def _default_methods(source: str | None, n: int) -> list[str]:
    names = [e.name for e in GAP_BOUNDS.values() if source is not None or not e.needs_source]
    return [m for m in names if m != "plugin" or n <= 5000]


def _one_sided(name: str, pairs: _Pairs, folds: int, level: float) -> GapBound:
    spec = GAP_BOUNDS[name]
    est = spec.fn(pairs, folds)
    z = NormalDist().inv_cdf(level)
    bound = est.mean - z * est.stderr if spec.side == "lower" else est.mean + z * est.stderr
    return GapBound(name, spec.side, bound, est.mean, est.stderr, level, pairs.x0.shape[0])


def coupling_gap(
    x0: Tensor,
    x1: Tensor,
    *,
    source: str | None = None,
    map: Callable[[Tensor], Tensor] | None = None,
    method: str | None = None,
    level: float = 0.95,
    folds: int = 5,
    generator: torch.Generator | None = None,
    jacobian_points: int = 256,
) -> CouplingGap:
    """Bracket G = E|x1 - x0|^2 - W2^2(law x0, law x1) for the pairs (x0_i, x1_i) (module doc).

    Args:
        x0, x1: (n, ...) paired starting points and their images (any shape; flattened).
        source: "normal" when x0 are draws of N(0, s^2 I) (any s): enables the ``rotation``
            bound; checked against the sample.
        map: the differentiable map with x1 = map(x0) (a model's ODE); adds the Brenier-criterion
            test (:attr:`CouplingGap.jacobian`) on the first ``jacobian_points`` points.
        method: one registered bound (:data:`GAP_BOUNDS`: "rotation", "gaussian-dual",
            "plugin"), a "+"-joined list, or None for every one that applies (``plugin`` only
            up to n = 5,000, where its exact assignment is affordable).
        level: the joint confidence of the bracket; folds: cross-fitting folds.

    Returns:
        :class:`CouplingGap` with ``lower`` >= 0 and ``upper`` (None without an upper bound).
    """
    a, b = _checked_pairs(x0, x1, source)
    if not 0.5 <= level < 1:
        raise ValueError(f"level must be in [0.5, 1), got {level}")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    names = _default_methods(source, a.shape[0]) if method is None else method.split("+")
    for name in names:
        if name not in GAP_BOUNDS:
            raise ValueError(
                f"unknown coupling-gap method {name!r}; choose from {list(GAP_BOUNDS)}"
            )
        if GAP_BOUNDS[name].needs_source and source is None:
            raise ValueError(
                f"the {name!r} bound needs source='normal' (x0 drawn from N(0, s^2 I))"
            )
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    pairs = _Pairs(a, b, g)
    each = 1 - (1 - level) / len(names)
    bounds = tuple(_one_sided(nm, pairs, folds, each) for nm in names)
    lows = [bd.bound for bd in bounds if bd.side == "lower" and bd.bound > _round_off(pairs)]
    ups = [bd.bound for bd in bounds if bd.side == "upper"]
    jac = None
    if map is not None:
        jac = jacobian_symmetry(map, x0, x1=x1, n=jacobian_points, level=level, generator=g)
    return CouplingGap(
        value=bounds[0].estimate if names == ["plugin"] else None,
        lower=max([0.0, *lows]),
        upper=min(ups) if ups else None,
        level=level,
        method="+".join(names),
        n=a.shape[0],
        chord=float((b - a).pow(2).sum(1).mean()),
        bounds=bounds,
        jacobian=jac,
    )
