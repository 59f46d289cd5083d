"""Small images shipped with installed packages: scikit-learn's 8x8 handwritten digits.

``sklearn.datasets.load_digits`` holds 1,797 images of 8x8 pixels with integer intensities
0..16, shipped inside scikit-learn (no download). Here they are scaled to [-1, 1] by
x = v / 8 - 1 (v the raw intensity), the range of DDPM-style image models. scikit-learn is an
optional dependency (``pip install wasserflow[data]``) and is imported only when called.

Reference: Alpaydin & Kaynak (1998), UCI "Optical Recognition of Handwritten Digits".
"""

from __future__ import annotations

import torch
from torch import Tensor

DIGITS_SHAPE: tuple[int, int, int] = (1, 8, 8)
"""(C, H, W) of one digit image."""
DIGITS_RANGE: tuple[float, float] = (-1.0, 1.0)
"""Range of the scaled pixels: raw intensity v in 0..16 maps to v / 8 - 1."""
_RAW_MAX = 16.0


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - exercised with a patched sys.modules
        raise ImportError(
            "the 'digits' data set needs scikit-learn: pip install wasserflow[data]"
        ) from err
    return load_digits()


def load_digits_vectors(dtype: torch.dtype = torch.float32) -> Tensor:
    """The 1,797 digits as 64-dimensional vectors in [-1, 1], shape (1797, 64), row-major pixels."""
    raw = torch.as_tensor(_load_digits().data, dtype=torch.float64)
    return (raw * (2.0 / _RAW_MAX) - 1.0).to(dtype)


def load_digits_labels() -> Tensor:
    """The class (0..9) of each digit, shape (1797,), int64."""
    return torch.as_tensor(_load_digits().target, dtype=torch.int64)


def load_digits_images(dtype: torch.dtype = torch.float32) -> Tensor:
    """The digits as images, shape (1797, 1, 8, 8), values in [-1, 1]."""
    return vectors_to_images(load_digits_vectors(dtype))


def vectors_to_images(x: Tensor) -> Tensor:
    """(n, 64) -> (n, 1, 8, 8) (a view)."""
    if x.dim() != 2 or x.shape[1] != 64:
        raise ValueError(f"expected digit vectors of shape (n, 64), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], *DIGITS_SHAPE)


def images_to_vectors(x: Tensor) -> Tensor:
    """(n, 1, 8, 8) -> (n, 64)."""
    if x.dim() != 4 or tuple(x.shape[1:]) != DIGITS_SHAPE:
        raise ValueError(f"expected digit images of shape (n, 1, 8, 8), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], 64)


def to_pixel_range(x: Tensor) -> Tensor:
    """Map scaled values back to raw intensities v = 8 (x + 1), clamped to [0, 16]."""
    return ((x + 1.0) * (_RAW_MAX / 2.0)).clamp(0.0, _RAW_MAX)
