"""EnergyMatching in isolation, against closed forms of quadratic potentials.

With data at one point m (every coupling of a batch is then optimal, so the OT coupling pairs
each noise draw with m) and E(x) = a |x|^2 / 2 (field -grad E = -a x), the warm-up loss of a
sample is |-a x_t - (m - x0)|^2 with x_t = (1 - t) x0 + t m, i.e.
|x0 (1 - a (1 - t)) - m (1 + a t)|^2, whose expectation over x0 ~ N(0, I_d), t ~ U[0, 1] is

    d (1 - (1 - a)^3) / (3 a) + |m|^2 ((1 + a)^3 - 1) / (3 a).

After the warm-up the flow term is weighted by w(t) (1 before tau*, then linear to 0 at t = 1,
E w = tau* + (1 - tau*) / 2) and the contrastive term is cd_weight (E(data) - E(negatives)),
zero for a = 0. The negatives follow x <- x - dt grad E + sqrt(2 eps dt) xi: on E = a|x|^2 / 2
without noise x_K = (1 - a dt)^K x_0; from data (clock 1, temperature eps_max) this is the
unadjusted Langevin chain of N(0, eps/a), whose variance after K steps from 0 is
eps (1 - (1 - dt)^(2K)) / (1 - dt / 2) for a = 1.
"""

import math

import pytest
import torch
from torch import nn

from wasserflow.models import PotentialField
from wasserflow.objectives import EnergyMatching

M = torch.tensor([1.0, -2.0], dtype=torch.float64)
D = 2


class Quadratic(nn.Module):
    """E(x) = a |x|^2 / 2, float64."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a), dtype=torch.float64))

    def forward(self, x, t=None):
        return 0.5 * self.a * (x * x).reshape(x.shape[0], -1).sum(1)


def point_batches(objective, a, step, batches=8, n=1024):
    """The per-sample losses of ``batches`` batches of n copies of m (seeded), concatenated."""
    model = PotentialField(Quadratic(a))
    out = []
    for k in range(batches):
        x1 = M.expand(n, D).clone()
        out.append(objective(model, x1, torch.Generator().manual_seed(k), step).detach())
    return torch.cat(out)


def assert_mean(per, exact):
    se = float(per.std()) / math.sqrt(per.numel())
    assert abs(float(per.mean()) - exact) < 4 * se, (float(per.mean()), exact, se)


@pytest.mark.parametrize("a", [0.5, 2.0])
def test_warm_up_is_flow_matching_of_the_potentials_field(a):
    objective = EnergyMatching(warmup_steps=10)
    per = point_batches(objective, a, step=0)
    m2 = float(M @ M)
    exact = D * (1 - (1 - a) ** 3) / (3 * a) + m2 * ((1 + a) ** 3 - 1) / (3 * a)
    assert_mean(per, exact)


def test_main_phase_weights_the_flow_term():
    # a = 0: the field is 0, the flow term |m - x0|^2 w(t), the contrastive term E - E = 0
    tau = 0.6
    objective = EnergyMatching(warmup_steps=0, tau_star=tau, negative_steps=1, cd_weight=0.5)
    per = point_batches(objective, 0.0, step=5)
    assert_mean(per, (tau + (1 - tau) / 2) * (float(M @ M) + D))


def test_negatives_descend_the_energy_without_noise():
    a, dt, K = 1.5, 0.05, 7
    objective = EnergyMatching(eps_max=0.0, negative_steps=K, negative_dt=dt)
    model = PotentialField(Quadratic(a))
    g = torch.Generator().manual_seed(0)
    x_data = torch.randn(5, D, generator=g, dtype=torch.float64)
    x_noise = torch.randn(3, D, generator=g, dtype=torch.float64)
    neg = objective.negatives(model, x_data, x_noise, g)
    want = (1 - a * dt) ** K * torch.cat([x_data, x_noise])
    torch.testing.assert_close(neg, want, rtol=1e-12, atol=1e-14)


def test_negatives_from_data_are_langevin_at_eps_max():
    eps, dt, K, n = 0.1, 0.05, 40, 40_000
    objective = EnergyMatching(eps_max=eps, negative_steps=K, negative_dt=dt)
    model = PotentialField(Quadratic(1.0))
    zeros = torch.zeros(n, 1, dtype=torch.float64)
    neg = objective.negatives(model, zeros, zeros[:1], torch.Generator().manual_seed(1))
    data_half = neg[:n, 0]
    var = eps * (1 - (1 - dt) ** (2 * K)) / (1 - dt / 2)
    assert abs(float(data_half.mean())) < 4 * math.sqrt(var / n)
    # the sample variance of n Gaussians has relative standard error sqrt(2 / n)
    assert abs(float(data_half.var()) / var - 1) < 4 * math.sqrt(2 / n)
