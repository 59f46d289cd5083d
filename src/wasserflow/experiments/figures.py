"""Matplotlib (Agg, no display) figures of the reproduce report, written atomically as PNG."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import atomic_path
from .._plot import pyplot as plt  # plt() is matplotlib.pyplot on the Agg backend
from ..metrics.interval import Interval
from .context import Figure


@dataclass(frozen=True)
class Series:
    """One line of :func:`curves`: x, y (None: a gap; an :class:`~wasserflow.metrics.Interval`:
    its value with its interval as an error bar), its legend label and matplotlib style."""

    x: list[float]
    y: list[float | Interval | None]
    label: str
    style: str = "-o"


@dataclass(frozen=True)
class Panel:
    """One panel of :func:`trajectory_panels`: ``traj`` [frames][particles][2], ``data``
    [[x, y]...] (grey dots) and the frame ``box`` (x_min, x_max, y_min, y_max), if any."""

    title: str
    traj: list
    data: list = field(default_factory=list)
    box: list[float] | None = None


def save(fig, folder: Path, name: str, caption: str) -> Figure:
    """Save ``fig`` as folder/name.png atomically; return the report's figure record."""
    path = folder / f"{name}.png"
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt().close(fig)
    return Figure(file=f"figures/{path.name}", caption=caption)


def curves(
    folder: Path,
    name: str,
    caption: str,
    series: list[Series],
    *,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    title: str = "",
) -> Figure:
    """One axes of line plots, one per :class:`Series`."""
    p = plt()
    fig, ax = p.subplots(figsize=(6.0, 4.0))
    for s in series:
        ys, lo, hi = zip(*(_point(v) for v in s.y), strict=True) if s.y else ((), (), ())
        (line,) = ax.plot(s.x, ys, s.style, label=s.label, markersize=3, linewidth=1.4)
        if any(a != b for a, b in zip(lo, hi, strict=True)):
            ax.errorbar(s.x, ys, yerr=[lo, hi], fmt="none", ecolor=line.get_color(), alpha=0.6)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return save(fig, folder, name, caption)


def _point(v: float | Interval | None) -> tuple[float, float, float]:
    """(y, distance down, distance up) of one plotted value; an unbounded upper end is drawn
    as no bar above."""
    if v is None:
        return math.nan, 0.0, 0.0
    if isinstance(v, Interval):
        y = float(v.value)
        up = 0.0 if v.upper is None else float(v.upper) - y
        return y, max(y - float(v.lower), 0.0), max(up, 0.0)
    return float(v), 0.0, 0.0


def trajectory_panels(
    folder: Path,
    name: str,
    caption: str,
    panels: list[Panel],
) -> Figure:
    """A grid of :class:`Panel` s: data as grey dots, trajectories as lines from noise (orange
    dot) to samples (black dot)."""
    p = plt()
    n = len(panels)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = p.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, panel in zip(axes.ravel(), panels):
        data = panel.data
        if data:
            ax.scatter([q[0] for q in data], [q[1] for q in data], s=2, c="0.75")
        traj = panel.traj
        if traj:
            n_part = len(traj[0])
            for i in range(n_part):
                xs = [frame[i][0] for frame in traj]
                ys = [frame[i][1] for frame in traj]
                ax.plot(xs, ys, "-", color="tab:blue", linewidth=0.6, alpha=0.7)
                ax.plot(xs[0], ys[0], ".", color="tab:orange", markersize=2)
                ax.plot(xs[-1], ys[-1], ".", color="k", markersize=2)
        ax.set_title(panel.title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        box = panel.box
        if box:  # (x_min, x_max, y_min, y_max): one frame for every panel
            ax.set_xlim(box[0], box[1])
            ax.set_ylim(box[2], box[3])
    return save(fig, folder, name, caption)


def heatmap(
    folder: Path,
    name: str,
    caption: str,
    labels: list[str],
    values: list[list[float | None]],
    title: str = "",
) -> Figure:
    """A labelled square matrix (e.g. W2 between methods' samples)."""
    p = plt()
    import numpy as np

    m = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    fig, ax = p.subplots(figsize=(0.55 * len(labels) + 2.5, 0.55 * len(labels) + 2.0))
    im = ax.imshow(m, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w")
    fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        ax.set_title(title, fontsize=9)
    return save(fig, folder, name, caption)


def image_tiles(
    folder: Path,
    name: str,
    caption: str,
    row_labels: list[str],
    col_labels: list[str],
    tiles: list[list[Any]],
) -> Figure:
    """A table of image tiles (e.g. methods x NFE): ``tiles[i][j]`` an (H, W, C) uint8 array or
    None (an empty cell)."""
    p = plt()
    rows, cols = len(row_labels), len(col_labels)
    fig, axes = p.subplots(rows, cols, figsize=(1.5 * cols + 0.8, 1.5 * rows), squeeze=False)
    for i in range(rows):
        for j in range(cols):
            ax = axes[i][j]
            tile = tiles[i][j]
            if tile is not None:
                ax.imshow(tile if tile.shape[-1] == 3 else tile[..., 0], cmap="gray", vmin=0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_labels[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=7)
    return save(fig, folder, name, caption)


def stacked_bars(
    folder: Path,
    name: str,
    caption: str,
    labels: list[str],
    parts: dict[str, list[float | None]],
    *,
    ylabel: str,
) -> Figure:
    """One stacked bar per label, one segment per entry of ``parts`` (None counts as 0)."""
    p = plt()
    fig, ax = p.subplots(figsize=(0.7 * len(labels) + 2.5, 4.0))
    bottom = [0.0] * len(labels)
    for part, values in parts.items():
        vals = [0.0 if v is None else float(v) for v in values]
        ax.bar(range(len(labels)), vals, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return save(fig, folder, name, caption)
