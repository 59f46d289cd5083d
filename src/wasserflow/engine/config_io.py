"""The run configuration as JSON: typed frozen dataclasses to and from JSON values, dotted-key
overrides, the reading of a config file, and the migration of version-1 files.

:func:`parse` turns a JSON value into a type (a dataclass, a union, a tuple, a primitive),
refusing unknown keys with the valid ones and wrong types by name; a dataclass with a
``from_json(value, where)`` classmethod parses itself (and writes itself with ``to_json()``);
an objective config (:class:`~wasserflow.objectives.ObjectiveConfig`) is the class registered
for its ``kind`` (:func:`~wasserflow.objectives.register_objective`). :func:`migrate_v1` maps
the untyped recipe of wasserflow <= 0.1 (version 1) onto version 2's parts, so older run
folders load and sample the same numbers. Nothing here knows the run configuration's classes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Union

from ..objectives import OBJECTIVES, ObjectiveConfig

CONFIG_VERSION = 2

SHORT_KEYS = {
    "prediction": "objective.prediction",
    "time_input": "objective.time_input",
    "times": "objective.times",
    "weighting": "objective.weighting",
    "schedule": "path.schedule",
    "bridge": "path.bridge",
    "bridge_sigma": "path.bridge_sigma",
    "coupling": "coupling.kind",
    "coupling_sigma": "coupling.sigma",
    "ot_batch": "coupling.ot_batch",
    "ot_reuse": "coupling.ot_reuse",
    "ot_prefetch": "coupling.ot_prefetch",
    "reflow": "reflow",
    "sampler": "sampler",
    "jko": "objective",
    "energy_matching": "objective",
    "per_class": "coupling.per_class",
    "label_dropout": "condition.label_dropout",
}
"""The recipe keys of version 1 (and of ``--set``), as dotted paths of the typed config."""


def to_json(obj: Any) -> Any:
    """A dataclass (nested), dict, list or primitive as a JSON value."""
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj


def parse(tp: Any, value: Any, where: str) -> Any:
    """``value`` (JSON) as type ``tp``, refusing unknown keys and wrong types by name."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        return parse(next(a for a in args if a is not type(None)), value, where)
    if tp is ObjectiveConfig:
        return _parse_objective(value, where)
    if hasattr(tp, "from_json"):
        return tp.from_json(value, where)
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, where)
    if tp in _PRIMITIVES:
        return _parse_primitive(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object, got {value!r}")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        return tuple(parse(typing.get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def _parse_dataclass(tp: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, got {value!r}")
    hints = typing.get_type_hints(tp)
    names = [f.name for f in dataclasses.fields(tp) if f.init]
    unknown = sorted(set(value) - set(names))
    if unknown:
        label = getattr(tp, "LABEL", f"keys of {where}")
        raise ValueError(f"unknown {label} {unknown}: valid keys are {', '.join(names)}")
    missing = [f.name for f in dataclasses.fields(tp) if _required(f) and f.name not in value]
    if missing:
        raise ValueError(f"{where} misses {', '.join(missing)}")
    # the dataclass's own checks speak first (they name the rule), then the types
    raw = {
        k: v if hints[k] in _PRIMITIVES else parse(hints[k], v, f"{where}.{k}")
        for k, v in value.items()
    }
    try:
        tp(**raw)
    except TypeError as e:
        raise ValueError(f"{where}: {e}") from e
    return tp(
        **{
            k: parse(hints[k], v, f"{where}.{k}") if hints[k] in _PRIMITIVES else v
            for k, v in raw.items()
        }
    )


def _parse_primitive(tp: type, value: Any, where: str) -> Any:
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {value!r}")
    return value


_PRIMITIVES = (int, float, bool, str)


def _required(f: dataclasses.Field) -> bool:
    return (
        f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    )


def _parse_objective(value: Any, where: str) -> Any:
    """The config dataclass registered for ``value["kind"]``."""
    if not isinstance(value, dict) or value.get("kind") not in OBJECTIVES:
        kind = value.get("kind") if isinstance(value, dict) else value
        raise ValueError(f"{where}.kind {kind!r}: choose one of {', '.join(OBJECTIVES)}")
    return parse(OBJECTIVES[value["kind"]].config, value, where)


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` (``"objective.prediction"``) of the config dict ``d`` to ``value``;
    a key inside a section that is null (``condition.label_dropout`` of an unconditional run)
    starts that section from its defaults.

    An objective given whole replaces the part, keeping the other options when it names the
    same kind (or none); a new kind (``{"kind": "x"}``, or its name alone) starts from that
    objective's own defaults."""
    parts = key.split(".")
    node = d
    fresh = False  # a section started here: its keys are checked when the config is parsed
    for i, p in enumerate(parts[:-1]):
        if p in node and node[p] is None:  # an absent optional section starts from defaults
            node[p], fresh = {}, True
        if not isinstance(node.get(p), dict):
            where = ".".join(parts[: i + 1])
            raise ValueError(
                f"unknown key {key!r}: {where} is not a section (sections: "
                f"{', '.join(k for k, v in d.items() if isinstance(v, dict))})"
            )
        node = node[p]
    last = parts[-1]
    if last not in node and not fresh and not (len(parts) == 2 and parts[0] == "model"):
        known = sorted(node) if node is not d else sorted([*node, *SHORT_KEYS])
        raise ValueError(f"unknown key {key!r}: valid keys are {', '.join(known)}")
    if node is d and last == "objective":
        value = _objective_override(node[last], value)
    node[last] = value


def _objective_override(old: Any, value: Any) -> Any:
    """An objective set whole: options of the same kind merged into the old ones; a new kind,
    or a kind's name alone, starts from that objective's own defaults."""
    if isinstance(value, str):
        return {**_defaults(value), "kind": value}
    if not isinstance(value, dict) or not isinstance(old, dict):
        return value
    if value.get("kind", old.get("kind")) == old.get("kind"):
        return {**old, **value}  # partial objective options keep the other values
    return {**_defaults(value["kind"]), **value}


def _defaults(kind: Any) -> dict[str, Any]:
    """The JSON of objective ``kind``'s config with every default (empty if it has none)."""
    spec = OBJECTIVES.get(kind) if isinstance(kind, str) else None
    try:
        return to_json(spec.config()) if spec is not None else {}
    except (TypeError, ValueError):
        return {}


def read_json(text: str, where: str) -> Any:
    """The JSON value in ``text`` (the contents of the file ``where``), naming it on errors."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{where} is not valid JSON ({e}): restore it, or train into a new folder"
        ) from e


def read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of the file ``path``, naming it when it is not text."""
    try:
        return Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not a text file ({e.reason} at byte {e.start}): restore it, or train "
            "into a new folder"
        ) from e


# ---------------------------------------------------------------- version 1


def migrate_v1(d: dict[str, Any]) -> dict[str, Any]:
    """A version-1 config (``{"method": recipe, "model", "data", "train"}``) as version 2.

    Version 1 kept the method recipe as one untyped dict; its keys map onto the parts
    (:data:`SHORT_KEYS`). A recipe without ``ot_batch`` coupled inside the objective
    (``coupling.stream`` False); a model of kind "energy" is the MLP with a scalar head.
    """
    try:
        recipe, model, data, train = d["method"], d["model"], d["data"], d["train"]
        name = recipe["method"]
    except (KeyError, TypeError) as e:
        raise ValueError(f"not a wasserflow run configuration (missing {e})") from e
    out: dict[str, Any] = {
        "version": CONFIG_VERSION,
        "method": name,
        "data": data,
        "train": train,
        "sampler": recipe.get("sampler", {"name": "euler"}),
    }
    if recipe.get("trainer") == "blockwise":
        out.update(objective={"kind": "jko_flow", **recipe.get("jko", {})}, path=None, model=None)
        return out
    out["path"] = {
        "schedule": recipe["schedule"],
        "bridge": recipe.get("bridge", "constant"),
        "bridge_sigma": recipe.get("bridge_sigma", 0.0),
    }
    out["objective"] = _v1_objective(recipe)
    out["coupling"] = {
        "kind": recipe.get("coupling", "independent"),
        "sigma": recipe.get("coupling_sigma"),
        "ot_batch": recipe.get("ot_batch"),
        "ot_reuse": recipe.get("ot_reuse", 1),
        "ot_prefetch": recipe.get("ot_prefetch", True),
        "stream": "ot_batch" in recipe,
    }
    if recipe.get("reflow"):
        out["reflow"] = recipe["reflow"]
    opts = {k: v for k, v in model.items() if k not in ("kind", "shape", "dim")}
    out["model"] = {"name": "mlp", "shape": model["shape"], **opts}
    return out


def _v1_objective(recipe: dict[str, Any]) -> dict[str, Any]:
    """The objective part of a version-1 network recipe."""
    if "energy_matching" in recipe:
        return {"kind": "energy_matching", **recipe["energy_matching"]}
    times = dict(recipe.get("times", {}))
    if times.get("kind") == "ddpm" and "levels" not in times:
        times["levels"] = recipe["schedule"].get("num_train_timesteps", 1000)
    return {
        "kind": "regression",
        "prediction": recipe["prediction"],
        "time_input": recipe.get("time_input", "t"),
        "times": times,
        "weighting": recipe.get("weighting", "none"),
    }
