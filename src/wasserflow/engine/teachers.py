"""Teachers of a distillation: trained models named by a string, loaded as GenerativeModels.

A :class:`~wasserflow.objectives.TeacherSpec`'s ``source`` is a run folder (loaded by
:func:`~wasserflow.engine.load_run`), or ``PREFIX:WHERE`` of a registered source: packages above
the engine register theirs (:mod:`wasserflow.interop` registers ``diffusers:DIR`` and
``torchcfm:CKPT[#KEY]`` when imported; the command line imports it), so the engine names none of
them. A spec without a source is a teacher the run trains first (:mod:`.runs`).

A teacher must generate the student's data shape from the student's reference noise in the
student's data scaling (:func:`check_teacher`): the student learns its trajectories as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..objectives import TeacherSpec

TeacherLoader = Callable[[str, TeacherSpec, tuple[int, ...], str], Any]
"""(WHERE, the spec, the student's data shape, device) -> a GenerativeModel."""

TeacherCheck = Callable[[str, TeacherSpec], None]
"""(WHERE, the spec) -> None, or a ValueError naming what the source needs (before training)."""


@dataclass(frozen=True)
class TeacherSource:
    """A registered source: its loader and the check of its settings."""

    load: TeacherLoader
    check: TeacherCheck | None = None


TEACHER_SOURCES: dict[str, TeacherSource] = {}
"""Registered teacher sources by prefix."""


def register_teacher_source(
    prefix: str, loader: TeacherLoader, check: TeacherCheck | None = None
) -> None:
    """Register ``loader`` for teachers named ``PREFIX:WHERE`` (once per prefix); ``check``
    refuses a spec the source cannot load, before anything is trained or written."""
    source = TeacherSource(loader, check)
    if prefix in TEACHER_SOURCES and TEACHER_SOURCES[prefix] != source:
        raise ValueError(f"teacher source {prefix!r} is registered twice")
    TEACHER_SOURCES[prefix] = source


def _split(source: str) -> tuple[str, str] | None:
    """(prefix, where) of a registered ``PREFIX:WHERE``, else None (a folder)."""
    prefix, sep, where = source.partition(":")
    if sep and prefix in TEACHER_SOURCES:
        return prefix, where
    return None


def check_teacher_spec(spec: TeacherSpec, methods: tuple[str, ...]) -> None:
    """Refuse, before training, a teacher that cannot be loaded or trained: an unknown method,
    a source that is neither registered nor a run folder, a state dict without its model."""
    if spec.source is None:
        if spec.method not in methods:
            raise InputError(
                f"teacher method {spec.method!r} (trained first): choose one of "
                f"{', '.join(methods)}"
            )
        return
    split = _split(spec.source)
    if split is not None:
        check = TEACHER_SOURCES[split[0]].check
        if check is not None:
            check(split[1], spec)
        return
    if not (Path(spec.source) / "config.json").is_file():
        known = ", ".join(f"{p}:..." for p in TEACHER_SOURCES) or "none registered"
        raise InputError(
            f"teacher {spec.source!r} is neither a run folder (no config.json) nor a registered "
            f"source ({known}; import wasserflow.interop for diffusers: and torchcfm:)"
        )


def load_teacher(spec: TeacherSpec, shape: tuple[int, ...], device: str = "cpu") -> Any:
    """The teacher ``spec.source`` names, on ``device`` (module doc); ``shape`` is the
    student's data shape (a state dict's network is built for it)."""
    from .runs import load_run

    split = _split(spec.source)
    if split is not None:
        prefix, where = split
        return TEACHER_SOURCES[prefix].load(where, spec, tuple(shape), device)
    return load_run(spec.source, device, ranks=None)


def check_teacher(teacher: Any, shape: tuple[int, ...], std: float, scaler: Any) -> None:
    """The teacher generates samples of ``shape`` from noise of std ``std`` in the data scaling
    ``scaler`` (the student's), or is refused in one line."""
    if tuple(teacher.shape) != tuple(shape):
        raise InputError(
            f"the teacher generates samples of shape {list(teacher.shape)}, this run's data "
            f"have shape {list(shape)}: distil a teacher of the run's data"
        )
    own = 1.0 if teacher.path is None else teacher.path.reference_std
    if abs(own - std) > 1e-12 * max(1.0, std):
        raise InputError(
            f"the teacher starts from noise of std {own:g}, this run's path from {std:g}: give "
            "the run the teacher's path (its schedule)"
        )
    if teacher.scaler.to_dict() != scaler.to_dict():
        raise InputError(
            "the teacher's data scaling differs from this run's: train the student with the "
            "teacher's scale setting (--scale) and data"
        )
