"""Typed records (frozen dataclasses) to JSON and back, for reproduce's profiles and results.

:func:`to_json` writes a dataclass as an object of its fields in declaration order, tuples and
lists as lists, mappings with their keys; :func:`from_json` reads that back by the type hints
(``X | None``, ``tuple[X, ...]``, ``list[X]``, ``dict[str, X]``, nested dataclasses, ``Any``
passed through), refusing unknown keys and wrong types with one line naming the key. Two field
markers keep the JSON of the untyped code these records replaced:

* ``field(metadata=OMIT_NONE)``: the key is left out when the value is None (a key that only
  some records had);
* ``field(default=..., metadata=NOT_SAVED)``: kept in memory only (neither written nor read);
* ``field(metadata=FLATTEN)`` on a ``dict[str, X]`` field: its items sit in the parent object
  beside the other fields (``{"VP": {...}, "VE": {...}, "closed_form": {...}}``); every key that
  names no other field is read into it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

from ..engine.config_io import parse

T = TypeVar("T")

OMIT_NONE = {"omit_none": True}
FLATTEN = {"flatten": True}
NOT_SAVED = {"not_saved": True}


def to_json(obj: Any) -> Any:
    """``obj`` as JSON values (dicts, lists, numbers, strings, booleans, None)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("not_saved"):
                continue
            if f.metadata.get("flatten"):
                out.update({k: to_json(v) for k, v in value.items()})
            elif value is not None or not f.metadata.get("omit_none"):
                out[f.name] = to_json(value)
        return out
    if isinstance(obj, Mapping):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj


def from_json(tp: type[T], value: Any, where: str = "record") -> T:
    """``value`` (JSON) read as ``tp``; a ValueError names the first key that does not fit."""
    return _read(tp, value, where)


def _read(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _read_union(typing.get_args(tp), value, where)
    if dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        items = [_read(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object, got {value!r}")
        args = typing.get_args(tp)
        item = args[1] if args else Any
        return {k: _read(item, v, f"{where}.{k}") for k, v in value.items()}
    return _read_scalar(tp, value, where)


def _read_union(args: tuple, value: Any, where: str) -> Any:
    if value is None:
        if type(None) in args:
            return None
        raise ValueError(f"{where} must not be null")
    real = [a for a in args if a is not type(None)]
    if len(real) == 1:
        return _read(real[0], value, where)
    for a in real:  # int | float and the like: the first that takes the value
        try:
            return _read(a, value, where)
        except ValueError:
            continue
    raise ValueError(f"{where} must be {' or '.join(getattr(a, '__name__', str(a)) for a in real)}")


def _read_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp in (int, float, bool, str):
        return parse(tp, value, where)  # the run configuration's checks of a JSON primitive
    if typing.get_origin(tp) is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(map(repr, typing.get_args(tp)))
            raise ValueError(f"{where} must be one of {choices}, got {value!r}")
        return value
    raise TypeError(f"{where}: records cannot hold {tp!r}")


@functools.cache
def _hints(tp: type) -> dict[str, Any]:
    return typing.get_type_hints(tp)


def _read_dataclass(tp: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, got {value!r}")
    hints = _hints(tp)
    fields = [f for f in dataclasses.fields(tp) if f.init and not f.metadata.get("not_saved")]
    flat = next((f for f in fields if f.metadata.get("flatten")), None)
    named = {f.name for f in fields if f is not flat}
    rest = {k: v for k, v in value.items() if k not in named}
    if rest and flat is None:
        raise ValueError(
            f"{where} has unknown key(s) {', '.join(sorted(rest))}: valid keys are "
            f"{', '.join(f.name for f in fields)}"
        )
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f is flat:
            kwargs[f.name] = _read(hints[f.name], rest, where)
        elif f.name in value:
            kwargs[f.name] = _read(hints[f.name], value[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where} misses the key {f.name!r}")
    return tp(**kwargs)
