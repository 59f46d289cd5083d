"""The ground cost of every OT solver here: the squared Euclidean distance c(x, y) = |x - y|^2.

C_ij = |x_i - y_j|^2 is computed from differences (scipy's ``cdist``), not from the expansion
|x|^2 + |y|^2 - 2 x.y, which loses all digits to cancellation when the points are far from the
origin compared with their spread. Peyre & Cuturi, Computational Optimal Transport (2019), 2.4.
"""

from __future__ import annotations

import torch
from scipy.spatial.distance import cdist
from torch import Tensor


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """Cost matrix C_ij = |x_i - y_j|^2 in float64 (scipy's cdist: differences, no cancellation)."""
    xn = x.detach().to(torch.float64).cpu().numpy()
    yn = y.detach().to(torch.float64).cpu().numpy()
    return torch.from_numpy(cdist(xn, yn, "sqeuclidean")).to(x.device)
