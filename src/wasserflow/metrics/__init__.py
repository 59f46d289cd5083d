"""Sample quality and path geometry of trained models, and the diffusion-JKO bridge, built on
:mod:`wasserflow.geometry`.

* :func:`coupling_gap`: how far a noise-to-sample pairing is from optimal, as an interval
  (rotation re-coupling below, Gaussian dual potential above, the plug-in gap in low d), and
  :func:`jacobian_symmetry`, the Brenier criterion of a differentiable map.
* :func:`evaluate_run`: W2 (and FD) to the data, NFE, and the path-energy decomposition of the
  solved ODE (:func:`path_energy_decomposition`: curvature + coupling gap) at several budgets.
* :func:`guidance_sweep` (:mod:`.conditional`): a class-conditional model against the guidance
  scale: per-class FD / W2, a classifier's accuracy on the samples, path energy, NFE and passes;
  :func:`tilt_gap` and :func:`continuity_residual` (:mod:`.guidance_geometry`): CFG against
  the tilted law p(x | c)^s p(x)^(1 - s) with exact mixture fields on a grid.
* :func:`gaussian_jko_bridge`, :func:`jko_bridge`: one denoising step against the JKO step of
  the same size h on the Fokker-Planck curve of the forward diffusion, as W2 numbers.
* :func:`frechet_distance`, :func:`feature_extractor`: Frechet distances between Gaussians
  fitted to image features (shipped digit classifiers; FID InceptionV3 from a weights file).
"""

from .conditional import GuidanceEvaluation, guidance_sweep, labelled_reference
from .coupling import (
    GAP_BOUNDS,
    CouplingGap,
    GapBound,
    coupling_gap,
    plugin_gap,
    register_gap_bound,
)
from .features import (
    FEATURE_NETS,
    FeatureExtractor,
    default_feature_extractor,
    feature_extractor,
    image_frechet_distance,
)
from .frechet import FeatureStats, FrechetResult, feature_stats, frechet_distance
from .guidance_geometry import TiltGap, continuity_residual, tilt_gap, tilted_target
from .inception import InceptionV3FID, inception_weights_path, load_inception
from .interval import (
    Interval,
    bootstrap_interval,
    mean_interval,
    median_interval,
    replicate_interval,
)
from .jacobian import JacobianSymmetry, jacobian_symmetry
from .jko_bridge import JKOBridgeResult, gaussian_jko_bridge, jko_bridge, vp_time_change
from .path_energy import PathEnergyDecomposition, path_energy_decomposition
from .quality import (
    ADAPTIVE,
    Evaluation,
    PairedDistance,
    W2Dual,
    evaluate_run,
    fresh_data,
    nfe_to_converge,
    paired_distance,
    paired_fd_ratio,
    paired_w2_ratio,
    reference_data,
    w2_dual,
    w2_interval,
)

__all__ = [
    "ADAPTIVE",
    "CouplingGap",
    "GAP_BOUNDS",
    "GapBound",
    "Interval",
    "bootstrap_interval",
    "mean_interval",
    "median_interval",
    "replicate_interval",
    "JacobianSymmetry",
    "coupling_gap",
    "jacobian_symmetry",
    "plugin_gap",
    "register_gap_bound",
    "Evaluation",
    "FEATURE_NETS",
    "FeatureExtractor",
    "FeatureStats",
    "GuidanceEvaluation",
    "FrechetResult",
    "InceptionV3FID",
    "JKOBridgeResult",
    "PathEnergyDecomposition",
    "TiltGap",
    "continuity_residual",
    "default_feature_extractor",
    "evaluate_run",
    "feature_extractor",
    "feature_stats",
    "frechet_distance",
    "fresh_data",
    "gaussian_jko_bridge",
    "guidance_sweep",
    "image_frechet_distance",
    "inception_weights_path",
    "jko_bridge",
    "labelled_reference",
    "load_inception",
    "nfe_to_converge",
    "paired_distance",
    "paired_fd_ratio",
    "paired_w2_ratio",
    "w2_dual",
    "PairedDistance",
    "W2Dual",
    "path_energy_decomposition",
    "w2_interval",
    "reference_data",
    "tilt_gap",
    "tilted_target",
    "vp_time_change",
]
