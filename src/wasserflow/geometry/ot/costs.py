"""The ground cost of every OT solver here: the squared Euclidean distance c(x, y) = |x - y|^2.

C_ij = |x_i - y_j|^2 is computed from differences (scipy's ``cdist``), not from the expansion
|x|^2 + |y|^2 - 2 x.y, which loses all digits to cancellation when the points are far from the
origin compared with their spread. Peyre & Cuturi, Computational Optimal Transport (2019), 2.4.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import cdist
from torch import Tensor

from .._checks import overflow_message


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """Cost matrix C_ij = |x_i - y_j|^2 in float64 (scipy's cdist: differences, no cancellation).

    A ValueError names the coordinates' magnitude when a squared distance overflows float64
    (coordinates beyond about 1e154)."""
    xn = x.detach().to(torch.float64).cpu().numpy()
    yn = y.detach().to(torch.float64).cpu().numpy()
    C = cdist(xn, yn, "sqeuclidean")
    if not np.isfinite(C).all():
        top = max(float(np.abs(xn).max()), float(np.abs(yn).max()))
        if not np.isfinite(top):
            raise ValueError("the points hold NaN or inf values: clean them before computing OT")
        raise ValueError(overflow_message(top))
    return torch.from_numpy(C).to(x.device)
