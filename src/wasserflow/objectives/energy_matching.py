"""Energy Matching (Balcerak et al. 2025, arXiv:2504.10612): one time-independent potential E(x).

The field is v(x) = -grad E(x). Training has two phases:

1. warm-up (``step < warmup_steps``): flow matching with OT coupling on the linear path,
   loss_OT = |-grad E(x_t) - (x1 - x0)|^2 (the field is curl-free by construction);
2. main: loss_OT, optionally weighted by w(t) = 1 for t < tau*, decaying linearly to 0 at t = 1,
   plus lambda_CD times the contrastive-divergence term E(x_data) - E(x_neg). Negatives start
   half at data points (clock t = 1) and half at noise (t = 0) and follow
   x <- x - dt grad E(x) + sqrt(2 eps(t) dt) xi over ``negative_steps`` steps, with the clock
   advancing from its start to 1 and the temperature eps(t) = 0 for t < tau*, rising linearly
   to eps_max at t = 1 and staying there; negatives carry no gradient.

Near the data the potential so becomes a Boltzmann energy, rho_eq ∝ exp(-E / eps_max); far from
it samples travel on OT-like straight paths. Sampling: gradient descent on E, then Langevin at
temperature eps_max (samplers.energy_langevin).

The objective kind "energy_matching" (:class:`EnergyMatchingObjective`, its config) builds a
scalar-head backbone inside :class:`~wasserflow.models.PotentialField`, couples each batch by
minibatch OT itself (no pair stream, one process), and is sampled as the field -grad E on the
linear path, with no score.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..geometry import energy_gradient
from ..models import PotentialField
from ..paths import AffinePath, LinearSchedule, get_coupling
from ..samplers import Field, SamplingContext
from .registry import LossSetup, ObjectiveSpec, register_objective
from .regression import PAIRS


def temperature(t: Tensor, tau_star: float, eps_max: float) -> Tensor:
    """eps(t): 0 for t < tau*, eps_max (t - tau*) / (1 - tau*) on [tau*, 1), eps_max for t >= 1."""
    ramp = eps_max * (t - tau_star) / (1.0 - tau_star)
    return torch.where(
        t < tau_star, torch.zeros_like(t), torch.where(t >= 1.0, torch.full_like(t, eps_max), ramp)
    )


def flow_weight(t: Tensor, tau_star: float) -> Tensor:
    """w(t) = 1 for t < tau*, 1 - (t - tau*) / (1 - tau*) after (phase 2's optional weighting)."""
    return torch.where(
        t < tau_star, torch.ones_like(t), (1.0 - (t - tau_star) / (1.0 - tau_star)).clamp_min(0.0)
    )


@dataclass(frozen=True)
class EnergyMatching:
    """The two-phase Energy Matching objective for a ``models.PotentialField`` model.

    The model is called as model(x, t) -> -grad E(x) and exposes ``model.energy(x)``.
    ``pairs``: batches hold (B, 2, ...) noise-data pairs coupled already (a class-conditional
    run couples them with their labels, :mod:`.conditional`); else the loss couples its data
    batches by minibatch OT itself.
    """

    warmup_steps: int = 1000
    tau_star: float = 0.9
    eps_max: float = 0.01
    cd_weight: float = 1e-3
    negative_steps: int = 100
    negative_dt: float = 0.01
    weight_flow: bool = True
    pairs: bool = False

    def __post_init__(self):
        if not 0.0 < self.tau_star < 1.0:
            raise ValueError("tau_star must lie in (0, 1)")
        if (
            self.eps_max < 0
            or self.cd_weight < 0
            or self.negative_steps < 1
            or self.negative_dt <= 0
        ):
            raise ValueError(
                "need eps_max >= 0, cd_weight >= 0, negative_steps >= 1, negative_dt > 0"
            )

    @property
    def path(self) -> AffinePath:
        return AffinePath(LinearSchedule())

    def negatives(self, model: nn.Module, x_data: Tensor, x_noise: Tensor, generator) -> Tensor:
        """Contrastive negatives: Langevin on E from data (clock 1) and from noise (clock 0)."""
        x = torch.cat([x_data, x_noise]).detach()
        t0 = torch.cat([torch.ones(len(x_data)), torch.zeros(len(x_noise))]).to(x.dtype)
        for k in range(self.negative_steps):
            t = t0 + (1.0 - t0) * (k + 1) / self.negative_steps
            eps = temperature(t, self.tau_star, self.eps_max).reshape(-1, *([1] * (x.dim() - 1)))
            grad = energy_gradient(model.energy, x)
            xi = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = (
                x - self.negative_dt * grad + torch.sqrt(2.0 * eps * self.negative_dt) * xi
            ).detach()
        return x

    def loss(
        self, model: nn.Module, x1: Tensor, generator: torch.Generator, step: int = 0
    ) -> Tensor:
        """Per-sample losses (B,): flow term, plus the CD term after the warm-up."""
        if self.pairs:  # the rows (labels) stay in place: data point i is pair i's
            x0, x1 = x1[:, 0], x1[:, 1]
            y0, y1 = x0, x1
        else:
            x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
            c = get_coupling("ot")(x0, x1, generator)
            y0, y1 = c.x0, c.x1
        t = torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype)
        s = self.path.sample(y0, y1, t)
        per = ((model(s.xt, t) - s.ut) ** 2).reshape(x1.shape[0], -1).sum(1)
        if step < self.warmup_steps:
            return per
        if self.weight_flow:
            per = per * flow_weight(t, self.tau_star)
        half = x1.shape[0] // 2
        noise = torch.randn(
            (x1.shape[0] - half, *x1.shape[1:]), generator=generator, dtype=x1.dtype
        )
        neg = self.negatives(model, x1[:half], noise, generator)
        cd = model.energy(x1) - model.energy(neg)
        return per + self.cd_weight * cd

    __call__ = loss


@dataclass(frozen=True)
class EnergyMatchingObjective:
    """Energy Matching (Balcerak et al. 2025): a scalar potential trained in two phases
    (:class:`EnergyMatching`); the warm-up is a fraction of the steps."""

    warmup_fraction: float = 0.7
    tau_star: float = 0.9
    eps_max: float = 0.01
    cd_weight: float = 1e-3
    negative_steps: int = 100
    negative_dt: float = 0.01
    kind: str = "energy_matching"

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise ValueError(f"warmup_fraction must lie in [0, 1], got {self.warmup_fraction}")
        self.build(1)  # validates the rest

    def build(self, total_steps: int) -> EnergyMatching:
        """The loss of a run of ``total_steps`` steps."""
        return EnergyMatching(
            warmup_steps=int(round(self.warmup_fraction * total_steps)),
            tau_star=self.tau_star,
            eps_max=self.eps_max,
            cd_weight=self.cd_weight,
            negative_steps=self.negative_steps,
            negative_dt=self.negative_dt,
        )


@register_objective("energy_matching", EnergyMatchingObjective)
class EnergyMatchingSpec(ObjectiveSpec):
    """Energy Matching: a scalar head, the field -grad E on the linear path, no score."""

    title = "Energy Matching"
    head = "scalar"
    data_parallel = False
    pair_batches = False

    def check(self, objective: EnergyMatchingObjective, run: Any) -> None:
        super().check(objective, run)
        if run.coupling.kind != "ot":
            raise ValueError(
                "Energy Matching couples noise and data by minibatch OT: coupling.kind must be ot"
            )

    def loss(self, objective: EnergyMatchingObjective, setup: LossSetup) -> EnergyMatching:
        loss = objective.build(setup.total_steps)
        return dataclasses.replace(loss, pairs=setup.coupling == PAIRS)

    def network(self, objective: EnergyMatchingObjective, backbone: nn.Module) -> nn.Module:
        return PotentialField(backbone)

    def field(self, objective: EnergyMatchingObjective, model: nn.Module, path: Any) -> Field:
        """-grad E as a velocity on the linear path, whatever the run's path says."""
        return Field.from_network(model, AffinePath(LinearSchedule()), "velocity", "t")

    def sampling_context(
        self, objective: EnergyMatchingObjective, base: SamplingContext, model: Any = None
    ) -> SamplingContext:
        """A potential: no path for the schedule samplers, no score, energy samplers allowed."""
        return dataclasses.replace(base, path=None, score_valid=False, energy=True)
