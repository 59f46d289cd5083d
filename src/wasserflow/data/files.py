"""Load user point clouds from .npy, .csv or .pt files as a float tensor of shape (n, d).

Every failure (missing file, unknown extension, empty, non-numeric, NaN/inf, wrong number of
dimensions, a .pt that is not one tensor) raises ``ValueError`` naming the file, the problem
and the fix; the CLI maps it to exit code 2.

Formats:
* ``.npy``: a numeric 2-D array (loaded with ``allow_pickle=False``).
* ``.csv``: comma-separated rows of numbers, one point per row; blank lines and lines starting
  with ``#`` are skipped; a first row that is not numeric is read as a header.
* ``.pt`` / ``.pth``: a tensor, or a dict holding exactly one tensor (``weights_only=True``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SUFFIXES: tuple[str, ...] = (".npy", ".csv", ".pt", ".pth")


def _fail(path: Path, problem: str) -> ValueError:
    return ValueError(f"cannot load points from {str(path)!r}: {problem}")


def _read_csv(path: Path) -> np.ndarray:
    with open(path, newline="") as fh:
        rows = [
            r
            for r in csv.reader(fh)
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")
        ]
    if not rows:
        raise _fail(path, "the file is empty: write one point per row, e.g. '0.5,1.2'")

    def parse(r: list[str]) -> list[float]:
        return [float(c) for c in r]

    try:
        parse(rows[0])
    except ValueError:
        rows = rows[1:]  # header
        if not rows:
            raise _fail(path, "the file holds a header but no rows of numbers") from None
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(parse(r))
        except ValueError:
            raise _fail(
                path,
                f"data row {i + 1} is not numeric ({','.join(r)[:60]!r}): every value must "
                "be a number",
            ) from None
    widths = {len(r) for r in out}
    if len(widths) != 1:
        raise _fail(
            path, f"rows have different lengths {sorted(widths)}: every point needs d values"
        )
    return np.asarray(out, dtype=np.float64)


def _read_pt(path: Path) -> Tensor:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise _fail(path, f"not a readable torch file ({type(err).__name__}: {err})") from None
    if isinstance(obj, dict):
        tensors = [v for v in obj.values() if isinstance(v, Tensor)]
        if len(tensors) != 1:
            raise _fail(
                path,
                f"the dict holds {len(tensors)} tensors: save exactly one, e.g. "
                "torch.save({'x': points}, path) or torch.save(points, path)",
            )
        obj = tensors[0]
    if not isinstance(obj, Tensor):
        raise _fail(path, f"holds a {type(obj).__name__}, not a tensor: save a (n, d) tensor")
    return obj


def load_points(path: str | Path, dtype: torch.dtype = torch.float32) -> Tensor:
    """Read a point cloud of shape (n, d), n >= 1, d >= 1, finite values, as ``dtype``."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file: check the path")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _fail(path, f"unknown extension {suffix or '(none)'!r}: use one of {SUFFIXES}")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty")
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as err:  # noqa: BLE001
            raise _fail(path, f"not a readable .npy array ({type(err).__name__}: {err})") from None
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise _fail(path, f"the array has non-numeric dtype {arr.dtype}: save numbers")
        x = torch.from_numpy(np.asarray(arr, dtype=np.float64))
    elif suffix == ".csv":
        x = torch.from_numpy(_read_csv(path))
    else:
        x = _read_pt(path)
        if x.is_complex():
            raise _fail(path, f"the tensor has complex dtype {x.dtype}: save a real tensor")
    if x.dim() != 2:
        raise _fail(
            path,
            f"expected a 2-D array (n points, d coordinates), got shape {tuple(x.shape)}: "
            "reshape to (n, 1) for 1-D data or (n, d) for images flattened per point",
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise _fail(path, f"no points (shape {tuple(x.shape)}): the data set is empty")
    x = x.to(torch.float64)
    bad = ~torch.isfinite(x)
    if bad.any():
        i, j = (int(v) for v in bad.nonzero()[0])
        raise _fail(
            path, f"{int(bad.sum())} NaN or inf values (first at row {i}, column {j}): clean them"
        )
    return x.to(dtype)
