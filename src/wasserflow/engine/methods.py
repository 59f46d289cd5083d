"""The model families of ``wasserflow train --method``: each a recipe of typed parts.

| method | path (schedule) | network predicts | coupling | times | default sampler |
|---|---|---|---|---|---|
| ddpm | DDPM discrete linear, T = 1000 | epsilon | independent | DDPM steps | ddim (eta 0) |
| ncsn | VE, L = 10 geometric levels | epsilon (= -sigma score) | independent | levels | annealed_langevin |
| sde-vp | VP (beta 0.1..20) | epsilon | independent | U[0, 1 - 1e-3] | euler_maruyama |
| sde-ve | VE (sigma_max from data) | epsilon | independent | U[0, 1] | predictor_corrector |
| icfm | linear | velocity | independent | U[0, 1] | euler |
| otcfm | linear | velocity | exact OT (minibatch stream) | U[0, 1] | euler |
| sbcfm | linear + Brownian bridge sigma | velocity | entropic OT, reg 2 sigma^2 | U[1e-3, 1 - 1e-3] | euler |
| rectified-flow | linear, then reflow on its own pairs | velocity | independent, then pairs | U[0, 1] | euler |
| energy-matching | linear, field -grad E | velocity | exact OT | U[0, 1] | energy_langevin |
| jko-flow | JKO steps of KL to N(0, I) | K convex-potential maps | - | blocks | jko |

Every regression recipe also takes ``objective.prediction`` (epsilon, x1, score, velocity or
v_prediction: the conversions of :mod:`wasserflow.paths.parametrization` are exact, so any of
them drives every sampler the path allows) and ``objective.time_input`` ("t" or "logsnr"). On
the 2-D moons benchmark the VP path trains best with velocity prediction, the log-SNR input and
lr 2e-3 (benchmarks/README.md); the defaults keep each family's published parametrisation.
A recipe chooses no backbone: any registered model trains with any method (Energy Matching
builds its scalar head).

OT-CFM's coupling (:mod:`wasserflow.paths.ot_stream`): ``coupling.ot_batch`` (None = the batch
size B: one exact OT per batch, TorchCFM's OT-CFM; a multiple N of B: exact OT on N points,
served in batches of B), ``ot_reuse`` (epochs over each block's pairs) and ``ot_prefetch``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..objectives import (
    EnergyMatchingObjective,
    JKOFlowObjective,
    ObjectiveConfig,
    RegressionObjective,
    TimeDistribution,
)
from .config import CouplingConfig, PathConfig, ReflowConfig, SamplerConfig


@dataclass(frozen=True)
class Recipe:
    """The parts of a run a method fixes (the rest: model, data, training)."""

    objective: ObjectiveConfig
    path: PathConfig | None = field(default_factory=PathConfig)
    coupling: CouplingConfig = field(default_factory=CouplingConfig)
    reflow: ReflowConfig = field(default_factory=ReflowConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)


def _eps(times: TimeDistribution) -> RegressionObjective:
    return RegressionObjective(prediction="epsilon", times=times)


_VE = PathConfig(schedule={"name": "ve", "sigma_min": 0.01, "sigma_max": None})
_VELOCITY = RegressionObjective()

RECIPES: dict[str, Callable[[], Recipe]] = {
    "ddpm": lambda: Recipe(
        path=PathConfig(schedule={"name": "ddpm", "num_train_timesteps": 1000, "kind": "linear"}),
        objective=_eps(TimeDistribution("ddpm", levels=1000)),
        sampler=SamplerConfig("ddim", {"eta": 0.0}),
    ),
    "ncsn": lambda: Recipe(
        path=_VE,
        objective=_eps(TimeDistribution("levels", levels=10)),
        sampler=SamplerConfig("annealed_langevin", {"step_lr": 2e-5}),
    ),
    "sde-vp": lambda: Recipe(
        path=PathConfig(schedule={"name": "vp", "beta_min": 0.1, "beta_max": 20.0}),
        objective=_eps(TimeDistribution("uniform", 0.0, 1.0 - 1e-3)),
        sampler=SamplerConfig("euler_maruyama"),
    ),
    "sde-ve": lambda: Recipe(
        path=_VE,
        objective=_eps(TimeDistribution("uniform", 0.0, 1.0)),
        sampler=SamplerConfig("predictor_corrector", {"snr": 0.16}),
    ),
    "icfm": lambda: Recipe(objective=_VELOCITY),
    "otcfm": lambda: Recipe(objective=_VELOCITY, coupling=CouplingConfig("ot")),
    "sbcfm": lambda: Recipe(
        path=PathConfig(bridge="brownian", bridge_sigma=0.5),
        objective=RegressionObjective(times=TimeDistribution("uniform", 1e-3, 1.0 - 1e-3)),
        coupling=CouplingConfig("entropic", sigma=0.5),
    ),
    "rectified-flow": lambda: Recipe(objective=_VELOCITY, reflow=ReflowConfig(rounds=1)),
    "energy-matching": lambda: Recipe(
        objective=EnergyMatchingObjective(),
        coupling=CouplingConfig("ot", stream=False),
        sampler=SamplerConfig(
            "energy_langevin", {"n_langevin": 50, "step_size": 0.01, "temperature": 0.01}
        ),
    ),
    "jko-flow": lambda: Recipe(
        objective=JKOFlowObjective(), path=None, sampler=SamplerConfig("jko")
    ),
}

METHODS = tuple(RECIPES)


def recipe(name: str) -> Recipe:
    """The recipe of method ``name``."""
    if name not in RECIPES:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    return RECIPES[name]()
