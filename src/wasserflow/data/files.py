"""Load user point clouds from .npy, .csv or .pt files as a float tensor of shape (n, d).

Every failure (missing file, unknown extension, empty, non-numeric, complex, NaN/inf, values
beyond the range of the requested dtype, wrong number of dimensions, a .pt that is not one
tensor) raises ``ValueError`` naming the file, the problem and the fix; the CLI maps it to exit
code 2.

Values are read in float64 and checked there: a NaN or inf names its row and column (and, for a
.csv, its line); finite values too large for ``dtype`` (float32's limit is about 3.4e38, so
1e300 fits a float64 file but not the float32 points training uses) are refused with the largest
magnitude and the fix (rescale the data before saving it) instead of silently becoming inf.
Library users who need such values can call ``load_points(path, dtype=torch.float64)``.

Formats:
* ``.npy``: a numeric 2-D array (loaded with ``allow_pickle=False``).
* ``.npz``: the points as its one array, or the array ``x`` (or ``points``), beside the optional
  labels ``y`` (and class names ``names``) that :func:`load_point_labels` reads.
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

from .labels import ClassLabels, npz_data, npz_labels

SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".csv", ".pt", ".pth")


def _fail(path: Path, problem: str) -> ValueError:
    return ValueError(f"cannot load points from {str(path)!r}: {problem}")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _position(index: tuple[int, ...], lines: list[int] | None = None) -> str:
    """'row i, column j' (0-based; a .csv adds its file line) or 'index (i, j, k)'."""
    if len(index) != 2:
        return f"index {index}"
    line = f", line {lines[index[0]]} of the file" if lines else ""
    return f"row {index[0]}, column {index[1]}{line}"


def range_problem(x: Tensor, dtype: torch.dtype, lines: list[int] | None = None) -> str | None:
    """Why the finite values of ``x`` (n, ...) do not fit ``dtype``, or None when they do.

    The message gives the count, the largest magnitude with its position, ``dtype``'s limit and
    the fix; NaN and inf are not this function's business (they are reported separately).
    ``lines`` (the file line of each row) adds the line to the position.
    """
    if not dtype.is_floating_point or not x.is_floating_point():
        return None
    limit = torch.finfo(dtype).max
    if torch.finfo(x.dtype).max <= limit:
        return None
    mag = x.detach().abs().nan_to_num(nan=0.0, posinf=0.0)
    big = mag > limit
    if not big.any():
        return None
    flat = int(mag.reshape(-1).argmax())
    where = _position(tuple(int(i) for i in np.unravel_index(flat, tuple(mag.shape))), lines)
    top = float(mag.reshape(-1)[flat])
    name = _dtype_name(dtype)
    k = int(big.sum())
    return (
        f"{k} finite value{'s are' if k > 1 else ' is'} too large for {name} (largest "
        f"magnitude {top:.3g} at {where}; {name} holds magnitudes up to {limit:.3g}): "
        f"rescale the data before saving it, e.g. divide every value by {top:.1e}; "
        f"--scale standard cannot help, the points are stored in {name} before they are scaled"
    )


def _read_csv(path: Path) -> tuple[np.ndarray, list[int]]:
    """The values of a .csv and the file line (1-based) of each data row."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        rows, lines = [], []
        for r in reader:
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#"):
                rows.append(r)
                lines.append(reader.line_num)
    if not rows:
        raise _fail(path, "the file is empty: write one point per row, e.g. '0.5,1.2'")

    def parse(r: list[str]) -> list[float]:
        return [float(c) for c in r]

    try:
        parse(rows[0])
    except ValueError:
        rows, lines = rows[1:], lines[1:]  # header
        if not rows:
            raise _fail(path, "the file holds a header but no rows of numbers") from None
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(parse(r))
        except ValueError:
            raise _fail(
                path,
                f"data row {i + 1} (line {lines[i]}) is not numeric ({','.join(r)[:60]!r}): "
                "every value must be a number",
            ) from None
    widths = {len(r) for r in out}
    if len(widths) != 1:
        first = next(i for i, r in enumerate(out) if len(r) != len(out[0]))
        raise _fail(
            path,
            f"rows have different lengths {sorted(widths)} (line {lines[first]} has "
            f"{len(out[first])} values, line {lines[0]} has {len(out[0])}): every point needs "
            "d values",
        )
    return np.asarray(out, dtype=np.float64), lines


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
    """Read a point cloud of shape (n, d), n >= 1, d >= 1, finite values, as ``dtype``.

    Values are checked in float64: NaN/inf and finite values beyond ``dtype``'s range (e.g.
    1e300 for float32) each raise a ``ValueError`` naming the file and a position: the first
    NaN/inf, or the largest magnitude with ``dtype``'s limit.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file: check the path")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _fail(path, f"unknown extension {suffix or '(none)'!r}: use one of {SUFFIXES}")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty")
    lines: list[int] | None = None
    if suffix in (".npy", ".npz"):
        x = _numeric(path, _read_npy(path) if suffix == ".npy" else _read_npz(path))
    elif suffix == ".csv":
        arr64, lines = _read_csv(path)
        x = torch.from_numpy(arr64)
    else:
        x = _read_pt(path)
        if x.is_complex():
            raise _fail(path, f"the tensor has complex dtype {x.dtype}: save a real tensor")
        x = x.detach()
    return _checked(path, x, dtype, lines)


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise _fail(path, f"not a readable .npy array ({type(err).__name__}: {err})") from None


def _open_npz(path: Path):
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise _fail(path, f"not a readable .npz archive ({type(err).__name__}: {err})") from None
    if isinstance(npz, np.ndarray):
        raise _fail(path, "a .npy array named .npz: rename it to .npy, or save it with np.savez")
    return npz


def _read_npz(path: Path) -> np.ndarray:
    """The points of an .npz: its one data array, or ``x`` (or ``points``)."""
    with _open_npz(path) as npz:
        return npz_data(npz, ("x", "points"), lambda problem: _fail(path, problem))


def load_point_labels(path: str | Path, count: int | None = None) -> ClassLabels | None:
    """The labels of a point file: an .npz's ``y`` (for ``count`` points), else None."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        return None
    with _open_npz(path) as npz:
        return npz_labels(npz, repr(str(path)), count)


def _numeric(path: Path, arr: np.ndarray) -> Tensor:
    """A real numeric array as a float64 tensor."""
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise _fail(path, f"the array has complex dtype {arr.dtype}: save a real array")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise _fail(path, f"the array has non-numeric dtype {arr.dtype}: save numbers")
    try:
        with np.errstate(over="raise"):
            arr64 = np.asarray(arr, dtype=np.float64)
    except FloatingPointError:  # float128 values beyond float64
        top = np.format_float_scientific(
            np.max(np.abs(arr[np.isfinite(arr)])), precision=2, unique=False
        )
        raise _fail(
            path,
            f"the {arr.dtype} array holds values beyond float64's range (largest magnitude "
            f"{top}; float64 holds up to 1.8e+308): rescale the data before saving it",
        ) from None
    return torch.from_numpy(arr64)


def _checked(path: Path, x: Tensor, dtype: torch.dtype, lines: list[int] | None) -> Tensor:
    """``x`` as (n, d) points in ``dtype``, refused when empty, not 2-D, NaN/inf or too large."""
    if x.dim() != 2:
        raise _fail(
            path,
            f"expected a 2-D array (n points, d coordinates), got shape {tuple(x.shape)}: "
            "reshape to (n, 1) for 1-D data or (n, d) for images flattened per point, or "
            f"read (N, C, H, W) / (N, H, W, C) images with the spec array:{path}",
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise _fail(path, f"no points (shape {tuple(x.shape)}): the data set is empty")
    x = x.to(torch.float64)
    bad = ~torch.isfinite(x)
    if bad.any():
        i, j = (int(v) for v in bad.nonzero()[0])
        raise _fail(
            path,
            f"{int(bad.sum())} NaN or inf value(s) (first at {_position((i, j), lines)}: "
            f"{float(x[i, j])}): clean them",
        )
    problem = range_problem(x, dtype, lines)
    if problem is not None:
        raise _fail(path, problem)
    return x.to(dtype)
