"""One data-source interface for training: ``source.sample(n, generator) -> (n, *shape)``.

A :class:`DataSource` is the data measure rho_1 seen by the training loop. Three kinds:

* :class:`SamplerSource`: an i.i.d. sampler of a known law (the toy 2-D sets);
* :class:`MixtureSource`: a :class:`~wasserflow.geometry.GaussianMixture` (exact law exposed as
  ``source.mixture``, usable as an oracle);
* :class:`FiniteSource`: a finite set (digits, user files), the empirical measure
  (1/N) sum_i delta_{x_i}; ``sample`` draws indices uniformly *with replacement*.

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
from .files import SUFFIXES, load_points, range_problem
from .images import DIGITS_SHAPE, load_digits_vectors
from .mixtures import MIXTURES, get_mixture
from .registry import register_format
from .scaling import Standardizer
from .toy2d import Sampler2D


class DataSource(ABC):
    """A data measure that can be sampled: ``name``, ``spec``, ``shape``, ``dim``, ``dtype``.

    ``mixture`` is the exact law when known (else None); ``points`` the finite set for finite
    sources (else None).
    """

    def __init__(self, name: str, spec: str, shape: tuple[int, ...], dtype: torch.dtype):
        self.name = name
        self.spec = spec
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype

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

    @abstractmethod
    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor: ...

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples of shape (n, *shape) in ``dtype`` (i.i.d. from the law or with replacement)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        return self._draw(n, generator).to(self.dtype).reshape(n, *self.shape)

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
        return f"{type(self).__name__}(name={self.name!r}, shape={self.shape}, dtype={self.dtype})"


class SamplerSource(DataSource):
    """A law given by an i.i.d. sampler ``sampler(n, generator, dtype) -> (n, d)``."""

    def __init__(
        self,
        name: str,
        sampler: Sampler2D,
        shape: tuple[int, ...],
        dtype: torch.dtype = torch.float32,
        mixture: GaussianMixture | None = None,
        spec: str | None = None,
    ):
        super().__init__(name, spec or name, shape, dtype)
        self._sampler = sampler
        self._mixture = mixture

    @property
    def mixture(self) -> GaussianMixture | None:
        return self._mixture

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self._sampler(n, generator, dtype=self.dtype)


class MixtureSource(DataSource):
    """The Gaussian mixture ``mixture`` (exact law, sampled in float64 then cast)."""

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

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self._mixture.sample(n, generator)


class FiniteSource(DataSource):
    """The empirical measure of ``points`` (N, *shape); sampling with replacement.

    Points too large for ``dtype`` (e.g. 1e300 in float32) raise a ``ValueError`` instead of
    becoming inf.
    """

    def __init__(
        self, name: str, points: Tensor, dtype: torch.dtype = torch.float32, spec: str | None = None
    ):
        if points.dim() < 2 or points.shape[0] == 0:
            raise ValueError(
                f"points must have shape (N, ...) with N >= 1, got {tuple(points.shape)}"
            )
        problem = range_problem(points, dtype)
        if problem is not None:
            raise ValueError(f"data source {name!r}: {problem}")
        super().__init__(name, spec or name, tuple(points.shape[1:]), dtype)
        self._points = points.to(dtype)

    @property
    def points(self) -> Tensor:
        return self._points

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        idx = torch.randint(0, self._points.shape[0], (n,), generator=generator)
        return self._points[idx]


class ImageSource(FiniteSource):
    """A finite set of images (N, C, H, W) in [-1, 1], with optional random horizontal flips.

    With ``flip=True`` each drawn image is mirrored (``torch.flip(x, dims=[-1])``) with
    probability 1/2; the indices, then the flips, are drawn from ``generator``.
    """

    def __init__(
        self,
        name: str,
        images: Tensor,
        dtype: torch.dtype = torch.float32,
        spec: str | None = None,
        flip: bool = False,
    ):
        if images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        super().__init__(name, images, dtype, spec=spec)
        self.flip = bool(flip)

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        x = super()._draw(n, generator)
        if not self.flip:
            return x
        mask = torch.rand(n, generator=generator) < 0.5
        return torch.where(mask[:, None, None, None], x.flip(-1), x)


@register_format("toy2d", names=tuple(toy2d.DATASETS), aliases=toy2d.ALIASES)
def _toy2d(name: str, dtype: torch.dtype) -> DataSource:
    """The toy 2-D sets of :data:`~wasserflow.data.toy2d.DATASETS` ("8gaussians" with its law)."""
    key = toy2d.canonical_name(name)
    mixture = get_mixture(key) if key in MIXTURES else None
    return SamplerSource(key, toy2d.DATASETS[key], (2,), dtype, mixture=mixture)


@register_format("mixtures", names=tuple(k for k in MIXTURES if k not in toy2d.DATASETS))
def _mixture(name: str, dtype: torch.dtype) -> DataSource:
    """The Gaussian mixtures of :data:`~wasserflow.data.mixtures.MIXTURES` (exact laws)."""
    return MixtureSource(name, get_mixture(name), dtype)


@register_format("digits", names=("digits", "digits_images"))
def _digits(name: str, dtype: torch.dtype) -> DataSource:
    """scikit-learn's 8x8 digits: 64-vectors ("digits") or (1, 8, 8) images in [-1, 1]."""
    x = load_digits_vectors(torch.float64)
    if name == "digits_images":
        x = x.reshape(x.shape[0], *DIGITS_SHAPE)
    return FiniteSource(name, x, dtype)


def _is_path(spec: str) -> bool:
    path = Path(spec)
    return path.suffix.lower() in SUFFIXES or "/" in spec or path.exists()


@register_format("file", help=f"a {'/'.join(SUFFIXES)} point file (or file:PATH)", claims=_is_path)
def _points(path_str: str, dtype: torch.dtype) -> DataSource:
    """A point file (``file:PATH`` or a bare path) read by :func:`~.files.load_points`."""
    path = Path(path_str)
    # load_points checks the values against dtype, so the error names the file
    return FiniteSource(path.stem or path_str, load_points(path, dtype), dtype, spec=path_str)
