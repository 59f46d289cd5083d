"""Figures for the CLI (matplotlib, an optional extra: ``pip install wasserflow[plot]``)."""

from __future__ import annotations

from pathlib import Path

from .._atomic import atomic_path
from .._plot import pyplot as _pyplot  # matplotlib.pyplot on the Agg backend (lazy)


def geodesic_figure(clouds, times, dims, out: Path, title: str = "") -> None:
    """One panel per time: the interpolated cloud, point size by mass. Written atomically."""
    plt = _pyplot()
    i, j = dims
    fig, axes = plt.subplots(
        1, len(clouds), figsize=(2.6 * len(clouds), 2.8), sharex=True, sharey=True
    )
    for ax, c, t in zip(axes, clouds, times):
        w = c.weights / c.weights.max()
        ax.scatter(
            c.points[:, i], c.points[:, j], s=2 + 6 * w.numpy(), c="C0", alpha=0.6, linewidths=0
        )
        ax.set_title(f"t = {t:.2f}", fontsize=9)
        ax.set_aspect("equal", adjustable="box")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)
