"""Pure conversions between the five parametrisations of one field (docs/design.md section 2).

On the path x = alpha x1 + sigma eps (eps the reference noise X_0), a model may predict the
noise eps, the data x1, the score s = grad log p_t or the velocity v. With coefficients
c = (alpha, sigma, d_alpha, d_sigma) at the same t:

    x1 = (x - sigma eps) / alpha,       eps = (x - alpha x1) / sigma,
    s  = -eps / sigma,                  v   = d_alpha x1 + d_sigma eps,

and, inverting the last relation together with x = alpha x1 + sigma eps (determinant
D = sigma d_alpha - alpha d_sigma, > 0 for every schedule here),

    x1 = (sigma v - d_sigma x) / D,     eps = (d_alpha x - alpha v) / D.

Salimans & Ho's "v-prediction" (2022, arXiv:2202.00512; diffusers' ``v_prediction``) is the
rate of x / r along the angle phi of (alpha, sigma) = r (cos phi, sin phi),

    v_pred = (alpha eps - sigma x1) / r,    x1 = (alpha x - sigma r v_pred) / r^2,
    eps = (sigma x + alpha r v_pred) / r^2,   r = sqrt(alpha^2 + sigma^2),

bounded at both ends of the path (unlike eps -> x1 at alpha = 0 and the velocity's sigma' on VP
paths); on variance-preserving paths (r = 1) it is alpha eps - sigma x1.

The score relation holds only when X_0 ~ N(0, I) is independent of X_1 (Tweedie; not for
OT-coupled paths). Coefficients are (n,) tensors (or scalars) broadcast against x (n, ...).
Each function is exact algebra; singular points (alpha = 0 for eps -> x1, sigma = 0 for
x1 -> eps and for scores) give inf/NaN, as the mathematics does.
"""

from __future__ import annotations

from torch import Tensor

from .schedules import ScheduleOutput

PREDICTIONS = ("epsilon", "x1", "score", "velocity", "v_prediction")


def _c(v: Tensor | float, x: Tensor) -> Tensor | float:
    if isinstance(v, Tensor) and v.dim() == 1 and x.dim() > 1:
        return v.reshape(v.shape[0], *([1] * (x.dim() - 1))).to(x.dtype)
    return v


def epsilon_to_x1(x: Tensor, eps: Tensor, c: ScheduleOutput) -> Tensor:
    """x1 = (x - sigma eps) / alpha."""
    return (x - _c(c.sigma, x) * eps) / _c(c.alpha, x)


def x1_to_epsilon(x: Tensor, x1: Tensor, c: ScheduleOutput) -> Tensor:
    """eps = (x - alpha x1) / sigma."""
    return (x - _c(c.alpha, x) * x1) / _c(c.sigma, x)


def epsilon_to_score(x: Tensor, eps: Tensor, c: ScheduleOutput) -> Tensor:
    """s = -eps / sigma (x unused; kept for one signature)."""
    return -eps / _c(c.sigma, x)


def score_to_epsilon(x: Tensor, score: Tensor, c: ScheduleOutput) -> Tensor:
    """eps = -sigma s."""
    return -_c(c.sigma, x) * score


def to_velocity(x1: Tensor, eps: Tensor, c: ScheduleOutput) -> Tensor:
    """v = d_alpha x1 + d_sigma eps."""
    return _c(c.d_alpha, x1) * x1 + _c(c.d_sigma, x1) * eps


def velocity_to_x1(x: Tensor, v: Tensor, c: ScheduleOutput) -> Tensor:
    """x1 = (sigma v - d_sigma x) / (sigma d_alpha - alpha d_sigma)."""
    det = _c(c.sigma * c.d_alpha - c.alpha * c.d_sigma, x)
    return (_c(c.sigma, x) * v - _c(c.d_sigma, x) * x) / det


def velocity_to_epsilon(x: Tensor, v: Tensor, c: ScheduleOutput) -> Tensor:
    """eps = (d_alpha x - alpha v) / (sigma d_alpha - alpha d_sigma)."""
    det = _c(c.sigma * c.d_alpha - c.alpha * c.d_sigma, x)
    return (_c(c.d_alpha, x) * x - _c(c.alpha, x) * v) / det


def _radius(c: ScheduleOutput, x: Tensor) -> Tensor | float:
    return (_c(c.alpha, x) ** 2 + _c(c.sigma, x) ** 2) ** 0.5


def to_v_prediction(x1: Tensor, eps: Tensor, c: ScheduleOutput) -> Tensor:
    """v_pred = (alpha eps - sigma x1) / sqrt(alpha^2 + sigma^2) (Salimans & Ho 2022)."""
    return (_c(c.alpha, x1) * eps - _c(c.sigma, x1) * x1) / _radius(c, x1)


def v_prediction_to_x1_and_epsilon(
    x: Tensor, v: Tensor, c: ScheduleOutput
) -> tuple[Tensor, Tensor]:
    """(x1, eps) = ((alpha x - sigma r v) / r^2, (sigma x + alpha r v) / r^2)."""
    a, s, r = _c(c.alpha, x), _c(c.sigma, x), _radius(c, x)
    return (a * x - s * r * v) / r**2, (s * x + a * r * v) / r**2


def x1_and_epsilon(
    x: Tensor, pred: Tensor, prediction: str, c: ScheduleOutput
) -> tuple[Tensor, Tensor]:
    """The pair (x1_hat, eps_hat) with x = alpha x1_hat + sigma eps_hat from any prediction."""
    if prediction == "epsilon":
        return epsilon_to_x1(x, pred, c), pred
    if prediction == "x1":
        return pred, x1_to_epsilon(x, pred, c)
    if prediction == "score":
        eps = score_to_epsilon(x, pred, c)
        return epsilon_to_x1(x, eps, c), eps
    if prediction == "velocity":
        return velocity_to_x1(x, pred, c), velocity_to_epsilon(x, pred, c)
    if prediction == "v_prediction":
        return v_prediction_to_x1_and_epsilon(x, pred, c)
    raise ValueError(f"unknown prediction {prediction!r}: choose one of {PREDICTIONS}")


def from_x1_and_epsilon(x1: Tensor, eps: Tensor, c: ScheduleOutput, target: str) -> Tensor:
    """The ``target`` parametrisation of the point x = alpha x1 + sigma eps (what a network of
    that kind should output there: the regression target of the training loss)."""
    if target == "x1":
        return x1
    if target == "epsilon":
        return eps
    if target == "score":
        return epsilon_to_score(x1, eps, c)
    if target == "v_prediction":
        return to_v_prediction(x1, eps, c)
    if target == "velocity":
        return to_velocity(x1, eps, c)
    raise ValueError(f"unknown prediction {target!r}: choose one of {PREDICTIONS}")


def convert(x: Tensor, pred: Tensor, c: ScheduleOutput, source: str, target: str) -> Tensor:
    """Convert a ``source`` prediction at x to the ``target`` one (names in PREDICTIONS).

    Direct formulas are used where they avoid a division (e.g. eps -> score needs only sigma).
    """
    for name in (source, target):
        if name not in PREDICTIONS:
            raise ValueError(f"unknown prediction {name!r}: choose one of {PREDICTIONS}")
    if source == target:
        return pred
    if source == "epsilon" and target == "score":
        return epsilon_to_score(x, pred, c)
    if source == "score" and target == "epsilon":
        return score_to_epsilon(x, pred, c)
    if target == "velocity" and source in ("epsilon", "score"):
        eps = pred if source == "epsilon" else score_to_epsilon(x, pred, c)
        # v = (d_alpha / alpha) x + (d_sigma - d_alpha sigma / alpha) eps
        a, s = _c(c.alpha, x), _c(c.sigma, x)
        da, ds = _c(c.d_alpha, x), _c(c.d_sigma, x)
        return (da / a) * x + (ds - da * s / a) * eps
    x1, eps = x1_and_epsilon(x, pred, source, c)
    if target == "x1":
        return x1
    if target == "epsilon":
        return eps
    if target == "score":
        return epsilon_to_score(x, eps, c)
    if target == "v_prediction":
        return to_v_prediction(x1, eps, c)
    return to_velocity(x1, eps, c)


def guide(
    x: Tensor,
    cond: Tensor,
    uncond: Tensor,
    scale: float,
    c: ScheduleOutput | None = None,
    prediction: str = "velocity",
    space: str | None = None,
) -> Tensor:
    """Classifier-free guidance of two ``prediction`` outputs at x, u + s (c - u), formed in the
    parametrisation ``space`` (None: ``prediction`` itself) and returned as a ``prediction``.

    Every conversion is affine in the output with an x term that does not depend on it,
    q = A_t x + B_t p, so guiding in q and converting back gives the same field as guiding in p:
    A x + B (u + s (c - u)) = (A x + B u) + s ((A x + B c) - (A x + B u)). The choice of
    ``space`` changes only round-off, except where a conversion is singular (x1 from eps or the
    velocity at alpha = 0, eps from x1 at sigma = 0): there only the network's own output stays
    finite, which is why :mod:`wasserflow.samplers.guidance` guides that.
    """
    if space is None or space == prediction:
        return uncond + scale * (cond - uncond)
    if c is None:
        raise ValueError(f"guiding a {prediction!r} output in {space!r} needs the schedule at t")
    a = convert(x, cond, c, prediction, space)
    b = convert(x, uncond, c, prediction, space)
    return convert(x, b + scale * (a - b), c, space, prediction)
