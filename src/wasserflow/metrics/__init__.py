"""Sample quality and path geometry of trained models, and the diffusion-JKO bridge, built on
:mod:`wasserflow.geometry`.

* :func:`evaluate_run`: W2 to fresh data, NFE, action and geodesic gap at several budgets.
* :func:`gaussian_jko_bridge`, :func:`jko_bridge`: one denoising step against the JKO step of
  the same size h on the Fokker-Planck curve of the forward diffusion, as W2 numbers.
"""

from .jko_bridge import JKOBridgeResult, gaussian_jko_bridge, jko_bridge, vp_time_change
from .quality import ADAPTIVE, Evaluation, evaluate_run, fresh_data

__all__ = [
    "ADAPTIVE",
    "Evaluation",
    "JKOBridgeResult",
    "evaluate_run",
    "fresh_data",
    "gaussian_jko_bridge",
    "jko_bridge",
    "vp_time_change",
]
