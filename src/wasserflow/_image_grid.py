"""Sample grids as PNG (Pillow): images (n, C, H, W) in [-1, 1] tiled row by row."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from . import _atomic


def image_grid(images: Tensor, columns: int | None = None, pad: int = 1) -> Tensor:
    """A (H', W', C) uint8 tile of ``images`` (n, C, H, W) in [-1, 1] (clipped), ``columns``
    per row (default: the square root of n), ``pad`` pixels of black between them."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"an image grid needs (n, 1 or 3, H, W) images, got {tuple(images.shape)}")
    n, c, h, w = images.shape
    cols = columns or max(1, math.isqrt(n - 1) + 1)
    rows = -(-n // cols)
    x = ((images.detach().to(torch.float32).cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    out = torch.zeros(rows * (h + pad) + pad, cols * (w + pad) + pad, c, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        out[y0 : y0 + h, x0 : x0 + w] = x[i].permute(1, 2, 0)
    return out


def save_image_grid(
    images: Tensor, path: str | Path, columns: int | None = None, scale: int = 1
) -> Path:
    """Write :func:`image_grid` as a PNG (atomically), each pixel ``scale`` x ``scale``."""
    from PIL import Image

    tile = image_grid(images, columns)
    arr = tile.numpy() if tile.shape[-1] == 3 else tile[..., 0].numpy()
    img = Image.fromarray(arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    with _atomic.atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
