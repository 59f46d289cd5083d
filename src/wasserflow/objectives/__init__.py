"""Training objectives: each a time distribution, a weighting and a target, per-sample losses.

    objective = build_objective(method_config("otcfm"), total_steps=20_000)
    losses = objective(model, x1_batch, generator, step)     # (B,)

:class:`PathRegression` covers DDPM, NCSN/SMLD, score-SDE (VP, VE), I-CFM, OT-CFM, SB-CFM and
rectified flow (with reflow pairs); :class:`EnergyMatching` is Balcerak et al. (2025).
The recipes of ``wasserflow train --method`` are in :mod:`.methods`.
"""

from .energy_matching import EnergyMatching
from .methods import (
    METHODS,
    build_objective,
    build_path,
    method_config,
    ot_stream_config,
    validate_recipe,
)
from .regression import PAIRS, PathRegression
from .times import TimeDistribution

__all__ = ["METHODS", "PAIRS", "EnergyMatching", "PathRegression", "TimeDistribution",
           "build_objective", "build_path", "method_config", "ot_stream_config", "validate_recipe"]
