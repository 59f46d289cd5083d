"""One front door to W2 between point clouds: :func:`w2` dispatches to every method of
:mod:`wasserflow.geometry.ot` and returns one :class:`~.results.OTResult`.

* "exact": W2^2 = min_P <P, C> exactly (:func:`~.exact.exact_ot`, network simplex);
* "sinkhorn": the debiased Sinkhorn divergence S_eps = W2^2 + O(eps^2)
  (:func:`~.entropic.sinkhorn_divergence`);
* "gaussian": the Bures W2^2 of the moment-matched Gaussians, a lower bound (Gelbrich)
  (:func:`~.gaussian.gaussian_w2_empirical`);
* "sliced": SW2^2 = E_theta W2^2(theta#mu, theta#nu) <= W2^2 (:func:`~.one_dim.sliced_w2`);
* "1d": exact W2^2 on the line by quantile functions (:func:`~.one_dim.w2_1d`).

It lives in its own module so that the solvers need not import each other.
"""

from __future__ import annotations

from torch import Tensor

from .._checks import as_points, within_range
from .entropic import sinkhorn_divergence
from .exact import exact_ot
from .gaussian import gaussian_w2_empirical
from .one_dim import sliced_w2, w2_1d
from .results import OTResult


def w2(
    x: Tensor,
    y: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    method: str = "exact",
    **options,
) -> OTResult:
    """W2 between two point clouds by any method of the toolkit, one typed result.

    ``method`` is one of "exact" (network simplex), "sinkhorn" (debiased Sinkhorn divergence,
    options ``epsilon``, ...), "gaussian" (Bures distance of the moment-matched Gaussians),
    "sliced" (sliced W2, options ``n_projections``, ``generator``) or "1d" (quantiles, d = 1).
    Coordinates whose squared distances could overflow float64 are refused (ValueError) for
    every method.
    """
    if isinstance(x, Tensor) and isinstance(y, Tensor):
        within_range(as_points(x, "x"), as_points(y, "y"))
    if method == "exact":
        return exact_ot(x, y, a, b, **options)
    if method == "sinkhorn":
        return sinkhorn_divergence(x, y, a, b, **options)
    if method == "gaussian":
        return gaussian_w2_empirical(x, y, a, b)
    if method == "sliced":
        return sliced_w2(x, y, a, b, **options)
    if method == "1d":
        return w2_1d(x, y, a, b)
    raise ValueError(
        f"unknown method {method!r}: choose one of exact, sinkhorn, gaussian, sliced, 1d"
    )
