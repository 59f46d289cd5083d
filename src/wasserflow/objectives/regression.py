"""Path regression: every diffusion and flow-matching loss is a time distribution, a weighting
and a target (EDM's view, Karras et al. 2022).

    loss_i = w(t_i) |net(x_t, t_i) - target_i|^2,   x_t = alpha_t x1 + sigma_t x0 (+ bridge),

with (x0, x1) drawn from a coupling of N(0, I) and the data. The target is what the network
predicts: the noise x0 ("epsilon": DDPM, and NCSN / score-SDE, whose sigma^2-weighted denoising
score matching |sigma s + eps|^2 is this same loss), the clean data ("x1"), the conditional
velocity u_t = alpha'_t x1 + sigma'_t x0 ("velocity": I-CFM, OT-CFM, SB-CFM, rectified flow),
the conditional score -x0 / sigma_t ("score", weight sigma^2 recommended) or Salimans & Ho's
(alpha x0 - sigma x1) / sqrt(alpha^2 + sigma^2) ("v_prediction", bounded at both ends).

The objective kind "regression" (:class:`RegressionObjective`, its config) trains a vector-head
network on the run's path and samples it as ``Field.from_network(net, path, prediction,
time_input)``, the wrapper the loss itself calls; its time distribution says where samplers
stop (``t_end``, the last trained time, NCSN's levels).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..paths import PREDICTIONS, TIME_INPUTS, AffinePath, from_x1_and_epsilon, get_coupling
from ..samplers import Field, SamplingContext
from .registry import LossSetup, ObjectiveSpec, register_objective
from .times import TimeDistribution


def check_options(prediction: str, time_input: str, weighting: str) -> None:
    """Refuse an unknown prediction, time input or weighting, naming the valid ones."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction {prediction!r}: choose one of {', '.join(PREDICTIONS)}")
    if time_input not in TIME_INPUTS:
        raise ValueError(f"time_input {time_input!r}: choose one of {', '.join(TIME_INPUTS)}")
    if weighting not in ("none", "sigma2"):
        raise ValueError(f"weighting {weighting!r}: choose none or sigma2")


PAIRS = "pairs"
"""Coupling name for batches that already hold pairs, shape (B, 2, ...): x0 = [:, 0], x1 = [:, 1]
(reflow: the pairs (noise, model sample) of a trained flow)."""


def couple(
    batch: Tensor, generator: torch.Generator, coupling: str, sigma: float | None = None
) -> tuple[Tensor, Tensor]:
    """(x0, x1): the noise and data of each sample of a batch, coupled by ``coupling``
    (independent, ot, entropic with ``sigma``), or the pairs of a (B, 2, ...) batch of
    :data:`PAIRS`. The noise is drawn from ``generator`` in the batch's dtype."""
    if coupling == PAIRS:
        if batch.dim() < 3 or batch.shape[1] != 2:
            raise ValueError("a 'pairs' objective needs batches of shape (B, 2, ...)")
        return batch[:, 0], batch[:, 1]
    x1 = batch
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
    if coupling == "independent":
        return x0, x1
    if coupling == "entropic":
        c = get_coupling("entropic")(x0, x1, generator, sigma=sigma)
    else:
        c = get_coupling(coupling)(x0, x1, generator)
    return c.x0, c.x1


@dataclass(frozen=True)
class PathRegression:
    """A regression objective on an affine path.

    Attributes:
        path: the affine path (schedule and optional bridge noise).
        prediction: what the network outputs: epsilon, x1, velocity or score.
        coupling: independent, ot, entropic (needs ``coupling_sigma``) or pairs.
        times: the time distribution.
        weighting: "none" or "sigma2" (multiply by sigma_t^2: score matching's lambda).
        coupling_sigma: bridge sigma of SB-CFM's entropic coupling (reg = 2 sigma^2).
        time_input: the network's time input, "t" or "logsnr" (:meth:`AffinePath.network_time`).
    """

    path: AffinePath
    prediction: str = "velocity"
    coupling: str = "independent"
    times: TimeDistribution = field(default_factory=TimeDistribution)
    weighting: str = "none"
    coupling_sigma: float | None = None
    time_input: str = "t"

    def __post_init__(self):
        check_options(self.prediction, self.time_input, self.weighting)
        if self.coupling != PAIRS:
            get_coupling(self.coupling)  # validates the name
        if self.coupling == "entropic" and not (self.coupling_sigma and self.coupling_sigma > 0):
            raise ValueError("the entropic coupling needs coupling_sigma > 0 (reg = 2 sigma^2)")

    def field(self, model: nn.Module) -> Field:
        """The network as the :class:`~wasserflow.samplers.Field` the samplers call."""
        return Field.from_network(model, self.path, self.prediction, self.time_input)

    def pairs(self, batch: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(x0, x1): the noise and data of each sample, coupled (:func:`couple`)."""
        return couple(batch, generator, self.coupling, self.coupling_sigma)

    def loss(
        self, model: nn.Module, batch: Tensor, generator: torch.Generator, step: int = 0
    ) -> Tensor:
        """Per-sample losses (B,) for a data batch (or a batch of pairs)."""
        x0, x1 = self.pairs(batch, generator)
        t = self.times.sample(x1.shape[0], generator, dtype=x1.dtype)
        noise = None
        if self.path.bridge_sigma > 0:
            noise = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
        # the times were drawn inside [t_min, t_max], a part of [0, 1] checked when the time
        # distribution was made, so the schedule is evaluated without the clock check
        c = self.path.schedule.at(t)
        s = self.path.sample(x0, x1, t, noise=noise, coefficients=c)
        # the conditional velocity includes a bridge's noise term; every other target is the
        # (x1, eps) pair in the network's parametrisation
        target = (
            s.ut
            if self.prediction == "velocity"
            else from_x1_and_epsilon(x1, x0, c, self.prediction)
        )
        out = self.field(model).fn(s.xt, t, c)
        per = ((out - target) ** 2).reshape(x1.shape[0], -1).sum(1)
        if self.weighting == "sigma2":
            per = per * c.sigma.to(per.dtype) ** 2
        return per

    __call__ = loss


@dataclass(frozen=True)
class RegressionObjective:
    """Regression of a network on the path: a prediction, a time input, a time distribution and
    a weighting (:class:`PathRegression`)."""

    prediction: str = "velocity"
    time_input: str = "t"
    times: TimeDistribution = field(default_factory=TimeDistribution)
    weighting: str = "none"
    kind: str = "regression"

    def __post_init__(self) -> None:
        check_options(self.prediction, self.time_input, self.weighting)


@register_objective("regression", RegressionObjective)
class PathRegressionSpec(ObjectiveSpec):
    """Regression on the run's path (:class:`PathRegression`): DDPM, NCSN, score SDEs and the
    flow-matching family."""

    title = "path regression"

    def check(self, objective: RegressionObjective, run: Any) -> None:
        super().check(objective, run)
        T = run.path.num_train_timesteps
        times = objective.times
        if times.kind == "ddpm" and T is not None and times.levels != T:
            raise ValueError(
                f"objective.times.levels = {times.levels} contradicts the DDPM "
                f"schedule's num_train_timesteps = {T}: give one value (drop "
                "times.levels)"
            )

    def loss(self, objective: RegressionObjective, setup: LossSetup) -> PathRegression:
        return PathRegression(
            path=setup.path,
            prediction=objective.prediction,
            coupling=setup.coupling,
            times=objective.times,
            weighting=objective.weighting,
            coupling_sigma=setup.coupling_sigma,
            time_input=objective.time_input,
        )

    def field(self, objective: RegressionObjective, model: nn.Module, path: AffinePath) -> Field:
        return Field.from_network(model, path, objective.prediction, objective.time_input)

    def velocity_network(self, objective: RegressionObjective) -> bool:
        return objective.prediction == "velocity" and objective.time_input == "t"

    def sampling_context(
        self, objective: RegressionObjective, base: SamplingContext, model: Any = None
    ) -> SamplingContext:
        """Samplers stop at the last trained time of a uniform time distribution (t_end); the
        last trained time is DDPM's 1 - 1/T, the top of NCSN's levels, or t_max."""
        times = objective.times
        if times.kind == "ddpm":
            last = 1.0 - 1.0 / times.levels
        elif times.kind == "levels":
            last = 1.0
        else:
            last = times.t_max
        return dataclasses.replace(
            base,
            t_end=times.t_max if times.kind == "uniform" else 1.0,
            t_last_trained=last,
            levels=times.levels if times.kind == "levels" else None,
        )
