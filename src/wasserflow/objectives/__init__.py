"""Training objectives: each a time distribution, a weighting and a target, per-sample losses.

    objective = PathRegression(AffinePath(LinearSchedule()), prediction="velocity")
    losses = objective(model, x1_batch, generator, step)     # (B,)

:class:`PathRegression` covers DDPM, NCSN/SMLD, score-SDE (VP, VE), I-CFM, OT-CFM, SB-CFM and
rectified flow (with reflow pairs); :class:`EnergyMatching` is Balcerak et al. (2025).
The recipes of ``wasserflow train --method`` are in :mod:`wasserflow.engine.methods`; the run
configuration builds these objectives (:func:`wasserflow.engine.build.build_objective`).
"""

from .energy_matching import EnergyMatching
from .regression import PAIRS, PathRegression
from .times import TimeDistribution

__all__ = ["PAIRS", "EnergyMatching", "PathRegression", "TimeDistribution"]
