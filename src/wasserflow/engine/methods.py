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
| meanflow | linear | average velocity u(x, t, s) (MeanFlow, JVP target) | independent | uniform (t, s), 1/4 with s > t | flowmap |
| meanflow-ot | linear | the same | exact OT (minibatch stream) | the paper's logit-normal (t, s), 1/4 with s > t | flowmap |
| shortcut | linear | average velocity (self-consistency over step sizes, 1/8 of each batch) | independent | U[0, 1]; steps 2^j / 128 | flowmap |
| flowmap-distill | a teacher's ODE (an otcfm run trained first, or objective.teacher) | average velocity between its frames | - | jumps of 2^l frames | flowmap |

Every regression recipe also takes ``objective.prediction`` (epsilon, x1, score, velocity or
v_prediction: the conversions of :mod:`wasserflow.paths.parametrization` are exact, so any of
them drives every sampler the path allows) and ``objective.time_input`` ("t" or "logsnr"). On
the 2-D moons benchmark the VP path trains best with velocity prediction, the log-SNR input and
lr 2e-3 (benchmarks/README.md); the defaults keep each family's published parametrisation.
A recipe chooses no backbone: any registered model trains with any method (Energy Matching
builds its scalar head).

The flow-map methods (:mod:`wasserflow.objectives.flowmap`) learn jumps X(x, t, s) and sample
with the ``flowmap`` sampler at any NFE (one jump by default); meanflow and shortcut also
learn the instantaneous velocity (every ODE sampler drives them), flowmap-distill does not.
Their objectives' defaults are the papers'; two recipes depart where the ``quick`` report
profile (400 steps of an MLP 64 x 2 on moons, W2 of 500 points, best over 1-100 NFE) measured
it: meanflow draws its two times uniformly (best W2 1.02, against 1.22 with the paper's
logit-normal, which rarely trains jumps from the noise end t ~ 0; after 5,000 steps of the 2-D
benchmark's MLP 0.53 against 0.69 at one jump; on a 2-D Gaussian the paper's times learn the
exact one-jump map better, tests/objectives/test_flowmaps.py), and shortcut trains 1/8 of each
batch for self-consistency (1.07, against 1.21 with 1/4).

OT-CFM's coupling (:mod:`wasserflow.paths.ot_stream`): ``coupling.ot_batch`` (None = the batch
size B: one exact OT per batch, TorchCFM's OT-CFM; a multiple N of B: exact OT on N points,
served in batches of B), ``ot_reuse`` (epochs over each block's pairs) and ``ot_prefetch``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..objectives import (
    EnergyMatchingObjective,
    FlowMapDistillObjective,
    JKOFlowObjective,
    MeanFlowObjective,
    ObjectiveConfig,
    RegressionObjective,
    ShortcutObjective,
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
_JUMPS = SamplerConfig("flowmap")

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
    "meanflow": lambda: Recipe(objective=MeanFlowObjective(times="uniform"), sampler=_JUMPS),
    "meanflow-ot": lambda: Recipe(
        objective=MeanFlowObjective(), coupling=CouplingConfig("ot"), sampler=_JUMPS
    ),
    "shortcut": lambda: Recipe(
        objective=ShortcutObjective(consistency_fraction=0.125), sampler=_JUMPS
    ),
    "flowmap-distill": lambda: Recipe(objective=FlowMapDistillObjective(), sampler=_JUMPS),
}

METHODS = tuple(RECIPES)


def recipe(name: str) -> Recipe:
    """The recipe of method ``name``."""
    if name not in RECIPES:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    return RECIPES[name]()
