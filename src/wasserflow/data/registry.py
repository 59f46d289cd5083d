"""Data formats registered by name: each says how a spec string reaches its loader.

A format is registered in its own module, next to its loader::

    @register_format("mnist", help="mnist:IDX[,flip]")
    def _mnist(text: str, dtype: torch.dtype) -> DataSource: ...   # text: what follows "mnist:"

Two ways for a spec to reach a format:

* ``PREFIX:TEXT``: the format registered under ``PREFIX`` (case-insensitive) gets ``TEXT``
  (image files, ``file:PATH``, a user's own formats);
* a bare name (``moons``, ``digits``): a format registered with ``names=`` (and ``aliases=``,
  read but not listed) gets the name, lower-cased with ``-`` read as ``_``; a format with
  ``claims=`` gets the bare specs its predicate accepts once no name matched (point-file paths).

:func:`make_source` is the factory, :func:`source_names` the bare names and :func:`data_help`
the ``--data`` help, all read off :data:`FORMATS`; no caller names a format. Adding a format is
one module with ``@register_format``, one import in ``data/__init__.py`` and its test
(docs/design.md section 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .source import DataSource

Loader = Callable[[str, torch.dtype], "DataSource"]
"""``load(text, dtype) -> DataSource``: text after the prefix, or the (normalised) bare name."""


@dataclass(frozen=True)
class DataFormat:
    """A registered data format.

    Attributes:
        name: the registry key; for a prefixed format (no ``names``) the spec prefix.
        load: ``(text, dtype) -> DataSource``.
        help: how ``--data`` help writes its specs (``"mnist:IDX[,flip]"``); by default its names.
        names: bare names it reads (listed by :func:`source_names`); empty for a prefixed format.
        aliases: further bare names it reads, not listed.
        claims: a predicate on bare specs it also reads, tried after every name.
    """

    name: str
    load: Loader
    help: str
    names: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    claims: Callable[[str], bool] | None = None


FORMATS: dict[str, DataFormat] = {}
"""Every registered format by name, in registration order (the order of the help)."""


def register_format(
    name: str,
    *,
    help: str | None = None,
    names: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    claims: Callable[[str], bool] | None = None,
) -> Callable[[Loader], Loader]:
    """Decorator: register ``load(text, dtype) -> DataSource`` as the format ``name``."""
    key = name.strip().lower()
    if not key or ":" in key or "," in key:
        raise ValueError(f"a data format name must be a word without ':' or ',', got {name!r}")
    text = help if help is not None else ", ".join(names)
    if not text:
        raise ValueError(f"data format {name!r} needs a help line (or names)")

    def deco(load: Loader) -> Loader:
        if key in FORMATS:
            raise ValueError(f"data format {key!r} is registered twice")
        taken = {n for f in FORMATS.values() for n in (*f.names, *f.aliases)}
        clash = sorted(taken & {*names, *aliases})
        if clash:
            raise ValueError(f"data format {key!r}: the names {clash} are already registered")
        FORMATS[key] = DataFormat(key, load, text, tuple(names), tuple(aliases), claims)
        return load

    return deco


def _format_for(raw: str) -> tuple[DataFormat, str] | None:
    """The format that reads the stripped spec ``raw``, and the text it gets."""
    prefix, sep, rest = raw.partition(":")
    fmt = FORMATS.get(prefix.strip().lower()) if sep else None
    if fmt is not None and not fmt.names:
        return fmt, rest
    key = raw.lower().replace("-", "_")
    for fmt in FORMATS.values():
        if key in fmt.names or key in fmt.aliases:
            return fmt, key
    for fmt in FORMATS.values():
        if fmt.claims is not None and fmt.claims(raw):
            return fmt, raw
    return None


def make_source(spec: str, dtype: torch.dtype = torch.float32) -> DataSource:
    """Build the :class:`~wasserflow.data.DataSource` a spec names (see :data:`FORMATS`).

    Shipped: the toy 2-D sets ("moons", "8gaussians", "checkerboard", "spirals", "circles",
    "swissroll"; "8gaussians" also carries its mixture), the mixtures "gaussian2d", "gmm2d",
    "gmm8d", "digits" (64-vectors in [-1, 1]) and "digits_images" (shape (1, 8, 8)); point files
    (a path ending in .npy/.npz/.csv/.pt/.pth, holding a separator or existing, or
    ``file:PATH``, read by :func:`~wasserflow.data.files.load_points`); image files
    ``KIND:PATH[,flip]`` with KIND one of mnist, cifar10, images, array, nchw, nhwc
    (:mod:`wasserflow.data.image_files`). ``source.spec`` is the string that rebuilds the
    source; ``source.labelled`` says whether it has classes (docs/design.md section 4.3). Every
    bad spec is a ``ValueError`` naming the problem.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a data source spec must be a non-empty string, got {spec!r}")
    raw = spec.strip()
    found = _format_for(raw)
    if found is None:
        raise ValueError(f"unknown data source {spec!r}: give one of {data_help()}")
    fmt, text = found
    return fmt.load(text, dtype)


def source_names() -> list[str]:
    """The bare names :func:`make_source` reads (sorted), besides paths and prefixed specs."""
    return sorted({n for f in FORMATS.values() for n in f.names})


def data_help() -> str:
    """Every format's help, in registration order: the ``--data`` help of the CLI."""
    return ", ".join(f.help for f in FORMATS.values())
