"""One data-source interface for training: ``source.sample(n, generator) -> (n, *shape)``.

A :class:`DataSource` is the data measure rho_1 seen by the training loop. Three kinds:

* :class:`SamplerSource`: an i.i.d. sampler of a known law (the toy 2-D sets);
* :class:`MixtureSource`: a :class:`~wasserflow.geometry.GaussianMixture` (exact law exposed as
  ``source.mixture``, usable as an oracle);
* :class:`FiniteSource`: a finite set (digits, user files), the empirical measure
  (1/N) sum_i delta_{x_i}; ``sample`` draws indices uniformly *with replacement*.

Labels, the same way for every kind: ``source.labelled`` says whether the source has classes,
``source.label_info`` is their :class:`~wasserflow.data.labels.LabelInfo` (number, names) and
``source.sample_labelled(n, generator) -> (x, y)`` draws the points with their int64 classes
(``ValueError`` naming the fix on a source without labels). A labelled draw takes the same
random numbers in the same order as ``sample``: ``sample_labelled(n, g)[0]`` equals
``sample(n, g')`` bit for bit when g and g' start in the same state. A finite source draws its
indices once and takes ``points[i]`` and ``targets[i]``; a mixture labels each point by its
component; a 2-D toy set by the piece of its law the point was drawn from
(:mod:`~wasserflow.data.toy2d`).

All randomness comes from the explicit (CPU) ``torch.Generator``; samples are CPU tensors of
the source's ``dtype`` (float32 by default). :func:`~wasserflow.data.registry.make_source`
parses a spec string and ``source.spec`` is the string that rebuilds it (for checkpoint
configs). The named sets (toy 2-D, mixtures, digits) and point files register their formats
here; image files register theirs in :mod:`~wasserflow.data.image_files`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import Tensor

from ..geometry import GaussianMixture
from . import toy2d
from .files import SUFFIXES, load_point_labels, load_points, range_problem
from .images import DIGITS_SHAPE, load_digits_labels, load_digits_vectors
from .labels import ClassLabels, LabelInfo, sample_mixture_labelled
from .mixtures import MIXTURES, get_mixture
from .registry import register_format
from .scaling import Standardizer
from .toy2d import LabelledSampler2D, Sampler2D

LABELLED_SETS = (
    "digits, digits_images, gmm2d, gmm8d, 8gaussians, moons, circles, spirals, checkerboard, "
    "mnist:IMAGES with its labels IDX file, cifar10:, images:ROOT with one folder per class, "
    "array:NPZ (images) or file:NPZ (points) holding x and y"
)
"""The labelled data sets, as the error of an unlabelled ``sample_labelled`` lists them."""


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")


class DataSource(ABC):
    """A data measure that can be sampled: ``name``, ``spec``, ``shape``, ``dim``, ``dtype``.

    ``mixture`` is the exact law when known (else None); ``points`` the finite set for finite
    sources (else None); ``label_info`` the classes of a labelled source (else None) and
    ``targets`` the class of each of ``points`` (finite labelled sources, else None).
    ``no_labels`` says why a source that could have labels has none (e.g. no labels file
    beside the images); the error of :meth:`sample_labelled` shows it.
    """

    def __init__(
        self,
        name: str,
        spec: str,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        no_labels: str = "",
    ):
        self.name = name
        self.spec = spec
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.no_labels = no_labels

    @property
    def dim(self) -> int:
        """d = prod(shape), the dimension of the flattened samples."""
        return math.prod(self.shape)

    @property
    def mixture(self) -> GaussianMixture | None:
        return None

    @property
    def points(self) -> Tensor | None:
        return None

    @property
    def is_finite(self) -> bool:
        return self.points is not None

    @property
    def label_info(self) -> LabelInfo | None:
        """The classes (number and names) of a labelled source, else None."""
        return None

    @property
    def labelled(self) -> bool:
        """Whether :meth:`sample_labelled` draws classes with the points."""
        return self.label_info is not None

    @property
    def targets(self) -> Tensor | None:
        """The class (int64) of each of ``points`` for a finite labelled source, else None."""
        return None

    @abstractmethod
    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor: ...

    def _draw_labelled(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(x, y) for a labelled source; called only when ``labelled``."""
        raise NotImplementedError(f"{type(self).__name__} has labels but cannot draw them")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples of shape (n, *shape) in ``dtype`` (i.i.d. from the law or with replacement)."""
        _check_n(n)
        return self._draw(n, generator).to(self.dtype).reshape(n, *self.shape)

    def sample_labelled(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """n samples (n, *shape) in ``dtype`` and their classes (n,) int64 in [0, num_classes).

        The points are those :meth:`sample` draws from a generator in the same state.
        """
        _check_n(n)
        if not self.labelled:
            why = f" ({self.no_labels})" if self.no_labels else ""
            raise ValueError(
                f"data source {self.spec!r} has no labels{why}: class-conditional training "
                f"needs a labelled data set: {LABELLED_SETS}"
            )
        x, y = self._draw_labelled(n, generator)
        return x.to(self.dtype).reshape(n, *self.shape), y.to(torch.int64)

    def fit_standardizer(
        self, n: int = 100_000, generator: torch.Generator | None = None, per_dim: bool = True
    ) -> Standardizer:
        """Standardizer from the exact moments (mixture), the whole set (finite) or n samples."""
        if self.mixture is not None and per_dim:
            m = self.mixture
            return Standardizer(tuple(m.mean.tolist()), tuple(m.cov.diagonal().sqrt().tolist()))
        x = self.points if self.points is not None else self.sample(n, generator)
        return Standardizer.fit(x, per_dim=per_dim)

    def __repr__(self) -> str:
        classes = f", classes={self.label_info.num_classes}" if self.labelled else ""
        return (
            f"{type(self).__name__}(name={self.name!r}, shape={self.shape}, dtype={self.dtype}"
            f"{classes})"
        )


class SamplerSource(DataSource):
    """A law given by an i.i.d. sampler ``sampler(n, generator, dtype) -> (n, d)``.

    ``labelled`` (with ``label_info``): ``labelled(n, generator) -> (x, y)``, the same draws as
    ``sampler`` (same random numbers, same order) with the class of each point.
    """

    def __init__(
        self,
        name: str,
        sampler: Sampler2D,
        shape: tuple[int, ...],
        dtype: torch.dtype = torch.float32,
        mixture: GaussianMixture | None = None,
        spec: str | None = None,
        labelled: LabelledSampler2D | None = None,
        label_info: LabelInfo | None = None,
    ):
        if (labelled is None) != (label_info is None):
            raise ValueError(f"data source {name!r}: give both labelled and label_info, or neither")
        super().__init__(name, spec or name, shape, dtype)
        self._sampler = sampler
        self._mixture = mixture
        self._labelled = labelled
        self._label_info = label_info

    @property
    def mixture(self) -> GaussianMixture | None:
        return self._mixture

    @property
    def label_info(self) -> LabelInfo | None:
        return self._label_info

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self._sampler(n, generator, dtype=self.dtype)

    def _draw_labelled(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        return self._labelled(n, generator)


class MixtureSource(DataSource):
    """The Gaussian mixture ``mixture`` (exact law, sampled in float64 then cast).

    With K >= 2 components the source is labelled: class k is component k (names "0".."K-1"),
    and a labelled draw returns the component each point was drawn from
    (:func:`~wasserflow.data.labels.sample_mixture_labelled`). A single Gaussian has no labels.
    """

    def __init__(
        self,
        name: str,
        mixture: GaussianMixture,
        dtype: torch.dtype = torch.float32,
        spec: str | None = None,
    ):
        super().__init__(name, spec or name, (mixture.dim,), dtype)
        self._mixture = mixture

    @property
    def mixture(self) -> GaussianMixture:
        return self._mixture

    @property
    def label_info(self) -> LabelInfo | None:
        k = int(self._mixture.weights.shape[0])
        return LabelInfo.numbered(k) if k >= 2 else None

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self._mixture.sample(n, generator)

    def _draw_labelled(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        return sample_mixture_labelled(self._mixture, n, generator)


class FiniteSource(DataSource):
    """The empirical measure of ``points`` (N, *shape); sampling with replacement.

    ``labels`` (a :class:`~wasserflow.data.labels.ClassLabels` of length N) makes the source
    labelled: a labelled draw takes the indices i ~ U{0..N-1} once and returns
    ``(points[i], labels.targets[i])``. Points too large for ``dtype`` (e.g. 1e300 in float32)
    raise a ``ValueError`` instead of becoming inf.
    """

    def __init__(
        self,
        name: str,
        points: Tensor,
        dtype: torch.dtype = torch.float32,
        spec: str | None = None,
        labels: ClassLabels | None = None,
        no_labels: str = "",
    ):
        if points.dim() < 2 or points.shape[0] == 0:
            raise ValueError(
                f"points must have shape (N, ...) with N >= 1, got {tuple(points.shape)}"
            )
        problem = range_problem(points, dtype)
        if problem is not None:
            raise ValueError(f"data source {name!r}: {problem}")
        if labels is not None and len(labels) != points.shape[0]:
            raise ValueError(
                f"data source {name!r}: {len(labels)} labels for {points.shape[0]} points: give "
                "one label per point"
            )
        super().__init__(name, spec or name, tuple(points.shape[1:]), dtype, no_labels)
        self._points = points.to(dtype)
        self._labels = labels

    @property
    def points(self) -> Tensor:
        return self._points

    @property
    def label_info(self) -> LabelInfo | None:
        return None if self._labels is None else self._labels.info

    @property
    def targets(self) -> Tensor | None:
        return None if self._labels is None else self._labels.targets

    def _indices(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.randint(0, self._points.shape[0], (n,), generator=generator)

    def _take(self, idx: Tensor, generator: torch.Generator | None) -> Tensor:
        """The points at ``idx``; a subclass may draw more from ``generator`` (flips)."""
        return self._points[idx]

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self._take(self._indices(n, generator), generator)

    def _draw_labelled(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        idx = self._indices(n, generator)
        return self._take(idx, generator), self._labels.targets[idx]


class ImageSource(FiniteSource):
    """A finite set of images (N, C, H, W) in [-1, 1], with optional random horizontal flips.

    With ``flip=True`` each drawn image is mirrored (``torch.flip(x, dims=[-1])``) with
    probability 1/2; the indices, then the flips, are drawn from ``generator`` (a labelled draw
    keeps the class of the flipped image).
    """

    def __init__(
        self,
        name: str,
        images: Tensor,
        dtype: torch.dtype = torch.float32,
        spec: str | None = None,
        flip: bool = False,
        labels: ClassLabels | None = None,
        no_labels: str = "",
    ):
        if images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        super().__init__(name, images, dtype, spec=spec, labels=labels, no_labels=no_labels)
        self.flip = bool(flip)

    def _take(self, idx: Tensor, generator: torch.Generator | None) -> Tensor:
        x = super()._take(idx, generator)
        if not self.flip:
            return x
        mask = torch.rand(idx.shape[0], generator=generator) < 0.5
        return torch.where(mask[:, None, None, None], x.flip(-1), x)


@register_format("toy2d", names=tuple(toy2d.DATASETS), aliases=toy2d.ALIASES)
def _toy2d(name: str, dtype: torch.dtype) -> DataSource:
    """The toy 2-D sets of :data:`~wasserflow.data.toy2d.DATASETS` ("8gaussians" with its law),
    labelled by the pieces of :data:`~wasserflow.data.toy2d.LABELLED` where they have some."""
    key = toy2d.canonical_name(name)
    mixture = get_mixture(key) if key in MIXTURES else None
    labelled, names = toy2d.LABELLED.get(key, (None, None))
    info = None if names is None else LabelInfo(len(names), names)
    return SamplerSource(
        key, toy2d.DATASETS[key], (2,), dtype, mixture=mixture, labelled=labelled, label_info=info
    )


@register_format("mixtures", names=tuple(k for k in MIXTURES if k not in toy2d.DATASETS))
def _mixture(name: str, dtype: torch.dtype) -> DataSource:
    """The Gaussian mixtures of :data:`~wasserflow.data.mixtures.MIXTURES` (exact laws)."""
    return MixtureSource(name, get_mixture(name), dtype)


@register_format("digits", names=("digits", "digits_images"))
def _digits(name: str, dtype: torch.dtype) -> DataSource:
    """scikit-learn's 8x8 digits: 64-vectors ("digits") or (1, 8, 8) images in [-1, 1], each
    labelled by its digit (classes "0".."9", scikit-learn's ``target``)."""
    x = load_digits_vectors(torch.float64)
    if name == "digits_images":
        x = x.reshape(x.shape[0], *DIGITS_SHAPE)
    labels = ClassLabels.create(
        load_digits_labels(), "scikit-learn's digits", LabelInfo.numbered(10), x.shape[0]
    )
    return FiniteSource(name, x, dtype, labels=labels)


def _is_path(spec: str) -> bool:
    path = Path(spec)
    return path.suffix.lower() in SUFFIXES or "/" in spec or path.exists()


@register_format("file", help=f"a {'/'.join(SUFFIXES)} point file (or file:PATH)", claims=_is_path)
def _points(path_str: str, dtype: torch.dtype) -> DataSource:
    """A point file (``file:PATH`` or a bare path) read by :func:`~.files.load_points`, labelled
    by an .npz's ``y`` (:func:`~.files.load_point_labels`)."""
    path = Path(path_str)
    # load_points checks the values against dtype, so the error names the file
    points = load_points(path, dtype)
    labels = load_point_labels(path, points.shape[0])
    hint = f"{path_str!r} holds no labels: save an .npz with the points as 'x', classes as 'y'"
    no_labels = hint if labels is None else ""
    name = path.stem or path_str
    return FiniteSource(name, points, dtype, spec=path_str, labels=labels, no_labels=no_labels)
