"""Sample quality and path geometry of trained models, and the diffusion-JKO bridge, built on
:mod:`wasserflow.geometry`.

* :func:`coupling_gap`: how far a noise-to-sample pairing is from optimal, as an interval
  (rotation re-coupling below, Gaussian dual potential above, the plug-in gap in low d), and
  :func:`jacobian_symmetry`, the Brenier criterion of a differentiable map.
* :func:`evaluate_run`: W2 (and FD) to the data, NFE, and the path-energy decomposition of the
  solved ODE (:func:`path_energy_decomposition`: curvature + coupling gap) at several budgets.
* :func:`gaussian_jko_bridge`, :func:`jko_bridge`: one denoising step against the JKO step of
  the same size h on the Fokker-Planck curve of the forward diffusion, as W2 numbers.
* :func:`frechet_distance`, :func:`feature_extractor`: Frechet distances between Gaussians
  fitted to image features (shipped digit classifiers; FID InceptionV3 from a weights file).
"""

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
from .inception import InceptionV3FID, inception_weights_path, load_inception
from .interval import Interval, bootstrap_interval, mean_interval, median_interval
from .jacobian import JacobianSymmetry, jacobian_symmetry
from .jko_bridge import JKOBridgeResult, gaussian_jko_bridge, jko_bridge, vp_time_change
from .path_energy import PathEnergyDecomposition, path_energy_decomposition
from .quality import (
    ADAPTIVE,
    Evaluation,
    evaluate_run,
    fresh_data,
    nfe_to_converge,
    reference_data,
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
    "JacobianSymmetry",
    "coupling_gap",
    "jacobian_symmetry",
    "plugin_gap",
    "register_gap_bound",
    "Evaluation",
    "FEATURE_NETS",
    "FeatureExtractor",
    "FeatureStats",
    "FrechetResult",
    "InceptionV3FID",
    "JKOBridgeResult",
    "PathEnergyDecomposition",
    "default_feature_extractor",
    "evaluate_run",
    "feature_extractor",
    "feature_stats",
    "frechet_distance",
    "fresh_data",
    "gaussian_jko_bridge",
    "image_frechet_distance",
    "inception_weights_path",
    "jko_bridge",
    "load_inception",
    "nfe_to_converge",
    "path_energy_decomposition",
    "w2_interval",
    "reference_data",
    "vp_time_change",
]
