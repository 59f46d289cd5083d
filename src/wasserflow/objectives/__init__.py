"""Training objectives, registered by kind (:mod:`.registry`): each a config, a loss (or a
trainer), a network head, and how its trained model is sampled.

    objective = PathRegression(AffinePath(LinearSchedule()), prediction="velocity")
    losses = objective(model, x1_batch, generator, step)     # (B,)

:class:`PathRegression` (kind "regression") covers DDPM, NCSN/SMLD, score-SDE (VP, VE), I-CFM,
OT-CFM, SB-CFM and rectified flow (with reflow pairs); :class:`EnergyMatching` (kind
"energy_matching") is Balcerak et al. (2025); the JKO flow (kind "jko_flow") is fitted block by
block. :class:`ConditionalLoss` trains any of them class-conditionally (labels dropped to a null
class per sample, :mod:`.conditional`). Flow maps (one network, the average velocity
u(x, t, s): :mod:`.flowmap`) are trained by :class:`MeanFlow` (kind "meanflow", a JVP target),
:class:`Shortcut` (kind "shortcut", self-consistency over step sizes) or distilled from a
teacher's ODE (:class:`FlowMapDistill`, kind "flowmap_distill"). The recipes of ``wasserflow train --method`` are in :mod:`wasserflow.engine.methods`; the
engine asks a run's objective for its loss, trainer, network and field
(:func:`objective_spec`).
"""

from .conditional import ConditionalLoss, drop_labels
from .energy_matching import EnergyMatching, EnergyMatchingObjective
from .flowmap import FlowMapNet, FlowMapSpec
from .flowmap_distill import FlowMapDistill, FlowMapDistillObjective
from .jko_flow import JKOFlowObjective, JKOFlowRun
from .meanflow import MeanFlow, MeanFlowObjective, meanflow_target, meanflow_times
from .registry import (
    OBJECTIVES,
    Checkpoint,
    DataFn,
    LossFn,
    LossSetup,
    ObjectiveConfig,
    ObjectiveSpec,
    TeacherSpec,
    TrainJob,
    TrainResult,
    get_objective,
    objective_spec,
    register_objective,
)
from .regression import PAIRS, PathRegression, RegressionObjective, couple
from .shortcut import Shortcut, ShortcutObjective
from .times import TimeDistribution

__all__ = [
    "OBJECTIVES",
    "PAIRS",
    "Checkpoint",
    "ConditionalLoss",
    "DataFn",
    "EnergyMatching",
    "EnergyMatchingObjective",
    "FlowMapDistill",
    "FlowMapDistillObjective",
    "FlowMapNet",
    "FlowMapSpec",
    "MeanFlow",
    "MeanFlowObjective",
    "Shortcut",
    "ShortcutObjective",
    "couple",
    "meanflow_target",
    "meanflow_times",
    "JKOFlowObjective",
    "JKOFlowRun",
    "LossFn",
    "LossSetup",
    "ObjectiveConfig",
    "ObjectiveSpec",
    "PathRegression",
    "RegressionObjective",
    "TeacherSpec",
    "TimeDistribution",
    "TrainJob",
    "TrainResult",
    "drop_labels",
    "get_objective",
    "objective_spec",
    "register_objective",
]
