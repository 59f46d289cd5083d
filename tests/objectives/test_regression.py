"""PathRegression in isolation, against closed forms of a Gaussian path.

Data x1 ~ N(m, s^2 I_d), noise x0 ~ N(0, I_d) independent, the linear path
x_t = (1 - t) x0 + t x1. Per coordinate x_t and any target linear in (x0, x1) are jointly
Gaussian, so E[target | x_t] is linear in x_t and the regression loss at that oracle is the
conditional variance. With D(t) = (1 - t)^2 + t^2 s^2 = Var(x_t):

* velocity u = x1 - x0: Var(u | x_t) = s^2 / D(t), and int_0^1 s^2 / D(t) dt = pi s / 2
  (D = (1 + s^2)(t - t*)^2 + s^2 / (1 + s^2), an arctan integral), so the expected loss
  under t ~ U[0, 1] is d pi s / 2;
* epsilon (x0): Var(x0 | x_t) = t^2 s^2 / D(t); x1: Var(x1 | x_t) = s^2 (1 - t)^2 / D(t),
  integrated by scipy's quad (times sigma_t^2 = (1 - t)^2 with the sigma2 weighting).

The loss is the expected squared error, so it is minimised by the conditional expectation:
at (1 + e) v* it exceeds the minimum by e^2 E|v*|^2 = e^2 (E|u|^2 - d pi s / 2), at v* + delta by
|delta|^2. Every number is a Monte Carlo mean compared within four standard errors.
"""

import math

import pytest
import torch
from scipy.integrate import quad
from torch import nn

from wasserflow.objectives import PAIRS, PathRegression, TimeDistribution
from wasserflow.paths import AffinePath, LinearSchedule

M = torch.tensor([1.0, -2.0], dtype=torch.float64)
S = 0.4
D = 2
B = 200_000
LINEAR = AffinePath(LinearSchedule())


class Closed(nn.Module):
    """A closed-form field as a float64 'network' (one unused float64 parameter sets the dtype
    the loss feeds it)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x, t):
        return self.fn(x, t)


def var_xt(t):
    return (1 - t) ** 2 + t**2 * S**2


def oracle_velocity(x, t):
    """E[x1 - x0 | x_t = x] = m + Cov(u, x_t) / Var(x_t) (x - t m)."""
    t = t[:, None]
    return M + (t * S**2 - (1 - t)) / var_xt(t) * (x - t * M)


def oracle_epsilon(x, t):
    """E[x0 | x_t = x] = (1 - t) / Var(x_t) (x - t m)."""
    t = t[:, None]
    return (1 - t) / var_xt(t) * (x - t * M)


def oracle_x1(x, t):
    """E[x1 | x_t = x] = m + t s^2 / Var(x_t) (x - t m)."""
    t = t[:, None]
    return M + t * S**2 / var_xt(t) * (x - t * M)


def losses(objective, fn, seed=0):
    x1 = M + S * torch.randn(B, D, generator=torch.Generator().manual_seed(100 + seed))
    x1 = x1.to(torch.float64)
    with torch.no_grad():
        return objective(Closed(fn), x1, torch.Generator().manual_seed(seed))


def assert_mean(per, exact):
    se = float(per.std()) / math.sqrt(per.numel())
    assert abs(float(per.mean()) - exact) < 4 * se, (float(per.mean()), exact, se)


def test_velocity_loss_at_the_oracle_is_the_conditional_variance():
    per = losses(PathRegression(LINEAR, "velocity"), oracle_velocity)
    assert per.shape == (B,)
    assert_mean(per, D * math.pi * S / 2)


@pytest.mark.parametrize(
    "prediction, oracle, variance",
    [
        ("epsilon", oracle_epsilon, lambda t: t**2 * S**2 / var_xt(t)),
        ("x1", oracle_x1, lambda t: S**2 * (1 - t) ** 2 / var_xt(t)),
    ],
)
@pytest.mark.parametrize("weighting", ["none", "sigma2"])
def test_other_targets_at_their_oracles(prediction, oracle, variance, weighting):
    weight = (lambda t: (1 - t) ** 2) if weighting == "sigma2" else (lambda t: 1.0)
    exact = D * quad(lambda t: weight(t) * variance(t), 0.0, 1.0, epsabs=1e-12)[0]
    per = losses(PathRegression(LINEAR, prediction, weighting=weighting), oracle)
    assert_mean(per, exact)


def test_the_conditional_expectation_minimises_the_loss():
    objective = PathRegression(LINEAR, "velocity")
    best = losses(objective, oracle_velocity)
    second_moment = D * (S**2 + 1) + float(M @ M)  # E|x1 - x0|^2
    excess = second_moment - D * math.pi * S / 2  # E|v*|^2
    for e in (-0.2, 0.2):
        scaled = losses(objective, lambda x, t, e=e: (1 + e) * oracle_velocity(x, t))
        assert_mean(scaled - best, e**2 * excess)  # the same draws: only the field differs
    delta = torch.tensor([0.3, -0.2], dtype=torch.float64)
    shifted = losses(objective, lambda x, t: oracle_velocity(x, t) + delta)
    assert_mean(shifted - best, float(delta @ delta))


def test_a_time_distribution_restricts_the_integral():
    # t ~ U[a, b]: the mean of s^2 / D(t) over [a, b], the arctan antiderivative of the module doc
    a, b = 0.2, 0.7
    r = 1 + S**2

    def F(t):
        return S * math.atan((r * t - 1) / S)

    objective = PathRegression(LINEAR, "velocity", times=TimeDistribution("uniform", a, b))
    assert_mean(losses(objective, oracle_velocity), D * (F(b) - F(a)) / (b - a))


def test_pairs_are_regressed_as_given():
    # batches of pairs (x0, x1 = x0 + m): the conditional velocity is m everywhere, so the
    # constant field m has zero loss (an independent coupling of the same points would not)
    x0 = torch.randn(512, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    batch = torch.stack([x0, x0 + M], dim=1)
    g = torch.Generator().manual_seed(4)
    per = PathRegression(LINEAR, "velocity", coupling=PAIRS)(
        Closed(lambda x, t: M.expand_as(x)), batch, g
    )
    assert float(per.abs().max()) < 1e-24
    with pytest.raises(ValueError, match=r"batches of shape \(B, 2, ...\)"):
        PathRegression(LINEAR, coupling=PAIRS)(Closed(oracle_velocity), x0, g)
