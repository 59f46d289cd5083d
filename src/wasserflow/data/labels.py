"""Class labels of a data source: the record of its classes and the checks every format shares.

A labelled source (``source.labelled``) carries a :class:`LabelInfo` (the number of classes K
and their names) and draws pairs ``(x, y)`` with ``y`` an int64 class index in [0, K):

* a finite set (digits, image files) holds a :class:`ClassLabels`, the class of each of its
  points; it draws the indices i once and returns ``(points[i], targets[i])``;
* a mixture labels each draw by the component it came from (:func:`sample_mixture_labelled`).

:func:`check_targets` is the one validation of class indices (integer, one per point, inside
[0, K)): each failure is a one-line ``ValueError`` naming where the labels came from, the
problem and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..geometry import GaussianMixture


@dataclass(frozen=True)
class LabelInfo:
    """The classes of a labelled source: ``num_classes`` K >= 1 and one distinct name per class.

    Class c (0 <= c < K) is called ``names[c]``. JSON round trip: :meth:`to_dict` /
    :meth:`from_dict`.
    """

    num_classes: int
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        k = self.num_classes
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {k!r}")
        names = tuple(self.names)
        if len(names) != k or not all(isinstance(s, str) and s for s in names):
            raise ValueError(f"give {k} non-empty class names, got {names!r}")
        if len(set(names)) != k:
            raise ValueError(f"class names must be distinct, got {names!r}")
        object.__setattr__(self, "names", names)

    @classmethod
    def numbered(cls, num_classes: int) -> LabelInfo:
        """K classes named "0", ..., "K-1"."""
        return cls(num_classes, tuple(str(c) for c in range(num_classes)))

    def to_dict(self) -> dict:
        return {"num_classes": self.num_classes, "names": list(self.names)}

    @classmethod
    def from_dict(cls, d: Mapping) -> LabelInfo:
        return cls(int(d["num_classes"]), tuple(str(s) for s in d["names"]))


@dataclass(frozen=True)
class ClassLabels:
    """The class of each point of a finite set: ``targets`` (N,) int64 in [0, K), ``info``.

    Build with :meth:`create`, which checks the values (:func:`check_targets`).
    """

    targets: Tensor
    info: LabelInfo

    @classmethod
    def create(
        cls, values, where: str, info: LabelInfo | None = None, count: int | None = None
    ) -> ClassLabels:
        """Checked labels from ``values`` (array-like of class indices) read from ``where``.

        ``info`` None: K = max + 1 classes named by their index. ``count``: the number of points
        the labels belong to (a different length is refused).
        """
        y = check_targets(values, where, None if info is None else info.num_classes, count)
        if info is None:
            info = LabelInfo.numbered(int(y.max()) + 1 if y.numel() else 1)
        return cls(y, info)

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def check_targets(
    values, where: str, num_classes: int | None = None, count: int | None = None
) -> Tensor:
    """``values`` as an int64 tensor (N,) of class indices in [0, num_classes), else ValueError.

    Refused, each in one line naming ``where``: not one-dimensional, not integers (floats,
    booleans, strings), a length other than ``count``, a negative index, an index >= num_classes.
    """
    arr = values.numpy() if isinstance(values, Tensor) else np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(
            f"labels of {where}: expected one class index per point (shape (N,)), got shape "
            f"{arr.shape}"
        )
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"labels of {where}: class indices must be integers, got dtype {arr.dtype}: save "
            "them as integers 0..K-1"
        )
    if count is not None and arr.shape[0] != count:
        raise ValueError(
            f"labels of {where}: {arr.shape[0]} labels for {count} points: give one label per "
            "point, in the order of the points"
        )
    y = torch.from_numpy(arr.astype(np.int64))
    if num_classes is None:
        bad, rule = y < 0, "class indices must be 0, 1, 2, ..."
    else:
        bad, rule = (y < 0) | (y >= num_classes), f"class indices must lie in 0..{num_classes - 1}"
    if bad.any():
        i = int(bad.nonzero()[0])
        what = "negative" if num_classes is None else f"outside [0, {num_classes})"
        raise ValueError(
            f"labels of {where}: {int(bad.sum())} label(s) {what} (first: {int(y[i])} at "
            f"index {i}): {rule}"
        )
    return y


def names_from(values: Sequence, where: str) -> LabelInfo:
    """The :class:`LabelInfo` whose names are ``values`` (strings, in class order)."""
    names = tuple(str(v).strip() for v in values)
    if not names:
        raise ValueError(f"class names of {where}: the list is empty: give one name per class")
    try:
        return LabelInfo(len(names), names)
    except ValueError as err:
        raise ValueError(f"class names of {where}: {err}") from None


def sample_mixture_labelled(
    mixture: GaussianMixture, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """n i.i.d. draws of ``mixture`` (float64 (n, d)) and the component k of each (int64 (n,)):
    :meth:`GaussianMixture.sample_with_components`, whose draws are bit for bit those of
    ``mixture.sample(n, generator)``."""
    return mixture.sample_with_components(n, generator)


LABEL_KEYS: tuple[str, ...] = ("y", "labels")
"""Names of the label array in an .npz of points or images (the first present is read)."""
NAMES_KEY = "names"
"""Name of the optional array of class names (strings, in class order) in an .npz."""


def npz_data_keys(keys: Sequence[str]) -> list[str]:
    """The arrays of an .npz that may hold the data: every key but the labels and names."""
    return [k for k in keys if k not in LABEL_KEYS and k != NAMES_KEY]


Fail = Callable[[str], Exception]
"""``fail(problem) -> exception`` naming the file (each reader's own wording)."""


def npz_array(npz, key: str, fail: Fail) -> np.ndarray:
    """The array ``key`` of an open .npz (object arrays, which need pickle, are refused)."""
    try:
        return npz[key]
    except Exception as err:  # noqa: BLE001 - object arrays need pickle
        raise fail(f"array {key!r} is not readable ({type(err).__name__}: {err})") from None


def npz_data(npz, preferred: tuple[str, ...], fail: Fail) -> np.ndarray:
    """The data array of an open .npz: its one array besides labels and names, or the first of
    ``preferred`` it holds."""
    keys = list(npz.files)
    data = npz_data_keys(keys)
    pick = data[0] if len(data) == 1 else next((k for k in preferred if k in data), None)
    if pick is None:
        named = " or ".join(repr(k) for k in preferred)
        raise fail(
            f"the .npz holds {len(keys)} arrays {keys[:8]}: save one array, or name the data "
            f"{named} (and its classes 'y')"
        )
    return npz_array(npz, pick, fail)


def npz_labels(npz, where: str, count: int | None = None) -> ClassLabels | None:
    """The labels an open .npz holds (for ``count`` points, when given), or None when it has none.

    The class indices are the array ``y`` (or ``labels``); class names the optional string array
    ``names`` (then K = len(names) and every index must be below it), else K = max + 1.
    """
    key = next((k for k in LABEL_KEYS if k in npz.files), None)
    if key is None:
        return None

    def fail(problem: str) -> ValueError:
        return ValueError(f"cannot load labels from {where}: {problem}")

    info = None
    if NAMES_KEY in npz.files:
        names = npz_array(npz, NAMES_KEY, fail).reshape(-1).tolist()
        info = names_from(names, f"{where} (array {NAMES_KEY!r})")
    y = npz_array(npz, key, fail)
    return ClassLabels.create(y, f"{where} (array {key!r})", info, count)
