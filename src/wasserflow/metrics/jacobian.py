"""The Brenier criterion for a noise-to-sample map: is its Jacobian symmetric and PSD?

For a source rho_0 with a density on a convex support (N(0, s^2 I) included), a map Phi is the
optimal (Brenier) map from rho_0 to Phi # rho_0 iff Phi = grad u with u convex (Brenier 1991),
i.e., by the Poincare lemma on the convex support, iff its Jacobian J(x) = D Phi(x) is symmetric
and positive semi-definite for rho_0-almost every x. Both halves are means over x, estimated in
any dimension from Jacobian-vector products, with ordinary confidence intervals:

* for u, w ~ N(0, I_d) independent of x, E[(u^T J w - w^T J u)^2] = |J - J^T|_F^2 and
  E[(u^T J w)^2] = |J|_F^2, so

      asymmetry = E_x |J - J^T|_F^2 / (4 E_x |J|_F^2)   in [0, 1]

  is a ratio of means of per-point values from two JVPs (J u, J w) per point: 0 for a gradient
  map, sin^2 theta for a rotation by theta in coordinate planes, 1 for a skew map; its interval
  is the delta method's;
* the rate of u^T J u < 0 (negative curvature along a random direction; the same JVP), with a
  Wilson interval: 0 for the gradient of a convex function.

The JVPs go through the map with :func:`torch.func.jvp` (forward mode: the map may run under
``torch.no_grad``, as the engine's samplers do); a map forward mode cannot enter (an energy
model's -grad E takes autograd gradients inside) is differentiated by central differences. A symmetric positive-definite Jacobian says the
map is optimal; how far from optimal in transport cost is the coupling gap's bracket
(:func:`~wasserflow.metrics.coupling.coupling_gap`), which these numbers do not bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from statistics import NormalDist

import torch
from torch import Tensor
from torch.func import jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

_ROUND_OFF = {"forward-mode": 1e-8, "central-difference": 1e-5}
"""The asymmetry a symmetric Jacobian shows by its products' own error: (1e-7 relative float32
round-off)^2 in forward mode; differences' O(h^2) and round-off / h (measured 7e-7 on an
energy model's gradient flow) otherwise."""


@dataclass(frozen=True)
class JacobianSymmetry:
    """The Brenier-criterion estimates of one map (module doc), each as (estimate, lower, upper)
    at ``level``, over ``n`` points; ``method``: how the JVPs were taken ("forward-mode", or
    "central-difference" for a map forward mode cannot enter)."""

    asymmetry: float
    asymmetry_lower: float
    asymmetry_upper: float
    negative_curvature: float
    negative_curvature_lower: float
    negative_curvature_upper: float
    level: float
    n: int
    method: str = "forward-mode"

    @property
    def rejects_optimality(self) -> bool:
        """Whether the interval of the asymmetry (beyond what the products' own error shows,
        :data:`_ROUND_OFF`) or of the negative-curvature rate excludes 0."""
        return self.asymmetry_lower > _ROUND_OFF[self.method] or self.negative_curvature_lower > 0

    def to_dict(self) -> dict:
        return {**asdict(self), "rejects_optimality": self.rejects_optimality}


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _jvp(map: Callable[[Tensor], Tensor], x: Tensor, v: Tensor) -> tuple[Tensor, Tensor, str]:
    """(map(x), D map(x) v, how): forward mode, attention in its composite (math) kernel, the
    one with a forward-mode rule (the fused CPU kernel has none, pytorch#165530); a map that
    forward mode cannot enter (one taking autograd gradients inside, e.g. an energy model's
    -grad E) by central differences with step 1e-3 of the points' RMS instead (error
    O(h^2) + round-off / h: about 1e-4 relative for float32 networks)."""
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            y, jv = jvp(map, (x,), (v,))
        return y, jv, "forward-mode"
    except RuntimeError:
        pass
    h = 1e-3 * float(x.double().pow(2).mean().sqrt().clamp_min(1e-12))
    try:
        y = map(x)
        jv = (map(x + h * v) - map(x - h * v)) / (2 * h)
    except RuntimeError as e:
        raise ValueError(f"the map cannot be differentiated at x0: {e}") from None
    return y, jv, "central-difference"


def _checked_image(y: Tensor, x1: Tensor | None, idx: Tensor) -> None:
    if x1 is None:
        return
    want = x1[idx].to(y.dtype).reshape(y.shape)
    err = float((y - want).norm() / want.norm().clamp_min(1e-300))
    if not err < 1e-3:
        raise ValueError(
            f"x1 is not map(x0) (relative difference {err:.2g} on the first points): pass the "
            "map that produced the samples (a deterministic ODE), or no map"
        )


def jacobian_symmetry(
    map: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    x1: Tensor | None = None,
    n: int = 256,
    level: float = 0.95,
    generator: torch.Generator | None = None,
) -> JacobianSymmetry:
    """Estimate the asymmetry and the negative-curvature rate of D map at the first ``n``
    points of ``x0`` (module doc). ``x1``, when given, must equal map(x0) (checked there)."""
    if not 0.5 <= level < 1:
        raise ValueError(f"level must be in [0.5, 1), got {level}")
    m = min(n, x0.shape[0])
    if m < 10:
        raise ValueError(f"the Jacobian test needs at least 10 points, got {m}")
    idx = torch.arange(m)
    x = x0[:m].detach()
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    u = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)
    w = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)
    y, ju, how = _jvp(map, x, u)
    _, jw, _ = _jvp(map, x, w)
    _checked_image(y, x1, idx)
    ju, jw = ju.reshape(m, -1).double(), jw.reshape(m, -1).double()
    u, w = u.reshape(m, -1).double(), w.reshape(m, -1).double()
    ujw, wju, uju = (u * jw).sum(1), (w * ju).sum(1), (u * ju).sum(1)
    if not (torch.isfinite(ujw).all() and torch.isfinite(wju).all()):
        raise ValueError("the map's Jacobian-vector products hold NaN or inf values")
    if not (ju.abs().amax() > 0 or jw.abs().amax() > 0):
        raise ValueError(
            "the map's Jacobian-vector products are all zero: it detaches its output (forward-"
            "mode tangents are dropped by .detach()); pass a map that keeps them, e.g. "
            "GenerativeModel.transport"
        )
    a = (ujw - wju).pow(2)
    b = 2 * (ujw.pow(2) + wju.pow(2))  # E b = 4 |J|_F^2
    z = NormalDist().inv_cdf(0.5 + level / 2)
    ratio = float(a.mean() / b.mean().clamp_min(1e-300))
    infl = (a - ratio * b) / b.mean().clamp_min(1e-300)  # delta method for a ratio of means
    half = z * float(infl.std()) / math.sqrt(m)
    k = int((uju < 0).sum())
    lo, hi = _wilson(k, m, z)
    return JacobianSymmetry(
        asymmetry=ratio,
        asymmetry_lower=max(0.0, ratio - half),
        asymmetry_upper=min(1.0, ratio + half),
        negative_curvature=k / m,
        negative_curvature_lower=lo,
        negative_curvature_upper=hi,
        level=level,
        n=m,
        method=how,
    )
