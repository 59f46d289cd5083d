"""The typed run configuration: one dataclass per part of a run, every default in one place.

    cfg = make_config("otcfm", "moons", steps=2000)          # RunConfig, validated now
    cfg = cfg.with_overrides({"coupling.ot_batch": 2048})     # dotted keys (--set)
    RunConfig.from_dict(json.loads(text))                     # version 1 folders migrate

A run is a path (schedule and bridge), an objective (regression on the path, Energy Matching,
or the JKO flow's blocks), a coupling, an optional reflow, a model (a registered backbone and
its options), data, training settings and a default sampler. ``to_dict`` / ``from_dict`` round
trip through JSON (``config.json``, :data:`CONFIG_VERSION`); unknown keys are refused with the
valid ones and contradictory settings when the config is made. Reading a version-1 file (the
untyped recipe of wasserflow <= 0.1) maps it onto these parts (:func:`migrate_v1`), so older
run folders load and sample the same numbers. Only this module reads configuration dicts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..data import make_source
from ..models.registry import get_backbone
from ..objectives import EnergyMatching, TimeDistribution
from ..paths import SCHEDULES, TIME_INPUTS, get_coupling, get_schedule
from ..paths.parametrization import PREDICTIONS
from ..samplers import get_sampler
from .loop import TrainConfig

CONFIG_VERSION = 2
VE_SIGMA_MAX_PROBE = 50.0  # stands in for a VE sigma_max that is fixed from the data later


@dataclass(frozen=True)
class PathConfig:
    """The affine path: a registered schedule with its options, and optional bridge noise.

    ``schedule`` is ``{"name": ..., **options}`` (the options of that schedule class; a VE
    schedule's ``sigma_max`` may be None: fixed from the data when training starts).
    """

    schedule: dict[str, Any] = field(default_factory=lambda: {"name": "linear"})
    bridge: str = "constant"
    bridge_sigma: float = 0.0

    def __post_init__(self) -> None:
        name = self.schedule.get("name")
        if name not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {name!r}: choose one of {', '.join(sorted(SCHEDULES))}"
            )
        opts = self.schedule_options()
        valid = [f.name for f in dataclasses.fields(SCHEDULES[name]) if f.init]
        unknown = sorted(set(opts) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option {', '.join(unknown)} for schedule {name}: valid "
                f"options are {', '.join(valid)}"
            )
        get_schedule(name, **self.probe().schedule_options())  # validates the values
        if self.bridge not in ("constant", "brownian"):
            raise ValueError(f"bridge {self.bridge!r}: choose constant or brownian")
        if not self.bridge_sigma >= 0:
            raise ValueError(f"bridge_sigma must be >= 0, got {self.bridge_sigma}")

    def probe(self) -> PathConfig:
        """This path with a placeholder for a sigma_max still to be fixed from the data, so the
        schedule can be built (and checked) before the data are seen."""
        if not self.needs_data:
            return self
        sigma_min = float(self.schedule.get("sigma_min", 0.01))
        sched = {**self.schedule, "sigma_max": max(VE_SIGMA_MAX_PROBE, 10.0 * sigma_min)}
        return dataclasses.replace(self, schedule=sched)

    def schedule_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.schedule.items() if k != "name"}

    @property
    def needs_data(self) -> bool:
        """Whether an option is still to be fixed from the data (a VE sigma_max of None)."""
        return "sigma_max" in self.schedule and self.schedule["sigma_max"] is None

    @property
    def num_train_timesteps(self) -> int | None:
        """T of a discrete DDPM schedule (its integer timesteps), else None."""
        if self.schedule["name"] != "ddpm":
            return None
        return int(get_schedule("ddpm", **self.schedule_options()).num_train_timesteps)


@dataclass(frozen=True)
class RegressionObjective:
    """Regression of a network on the path: a prediction, a time input, a time distribution and
    a weighting (:class:`~wasserflow.objectives.PathRegression`)."""

    prediction: str = "velocity"
    time_input: str = "t"
    times: TimeDistribution = field(default_factory=TimeDistribution)
    weighting: str = "none"
    kind: str = "regression"

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(
                f"prediction {self.prediction!r}: choose one of {', '.join(PREDICTIONS)}"
            )
        if self.time_input not in TIME_INPUTS:
            raise ValueError(
                f"time_input {self.time_input!r}: choose one of {', '.join(TIME_INPUTS)}"
            )
        if self.weighting not in ("none", "sigma2"):
            raise ValueError(f"weighting {self.weighting!r}: choose none or sigma2")


@dataclass(frozen=True)
class EnergyMatchingObjective:
    """Energy Matching (Balcerak et al. 2025): a scalar potential trained in two phases
    (:class:`~wasserflow.objectives.EnergyMatching`); the warm-up is a fraction of the steps."""

    warmup_fraction: float = 0.7
    tau_star: float = 0.9
    eps_max: float = 0.01
    cd_weight: float = 1e-3
    negative_steps: int = 100
    negative_dt: float = 0.01
    kind: str = "energy_matching"

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise ValueError(f"warmup_fraction must lie in [0, 1], got {self.warmup_fraction}")
        self.build(1)  # validates the rest

    def build(self, total_steps: int) -> EnergyMatching:
        return EnergyMatching(
            warmup_steps=int(round(self.warmup_fraction * total_steps)),
            tau_star=self.tau_star,
            eps_max=self.eps_max,
            cd_weight=self.cd_weight,
            negative_steps=self.negative_steps,
            negative_dt=self.negative_dt,
        )


@dataclass(frozen=True)
class JKOFlowObjective:
    """The JKO flow: K blocks, each the exact minimiser of one JKO step of KL(. || N(0, I))
    (:mod:`wasserflow.engine.blockwise`); steps h_k geometric with ``ratio``, summing to
    ``tau``; ``units`` ridges per block, ``particles`` training points, ``max_iter`` L-BFGS
    iterations, ``init_scale`` the initial ridge sharpness."""

    LABEL: typing.ClassVar[str] = "jko-flow options"
    blocks: int = 24
    tau: float = 4.0
    ratio: float = 1.25
    units: int = 64
    particles: int = 4000
    max_iter: int = 100
    init_scale: float = 6.0
    kind: str = "jko_flow"

    def __post_init__(self) -> None:
        from ..models.jko_flow import jko_step_sizes

        jko_step_sizes(self.blocks, self.tau, self.ratio)  # validates them
        for key, least in (("units", 0), ("particles", 2), ("max_iter", 1)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise ValueError(f"jko-flow option {key} must be an integer >= {least}, got {v!r}")


Objective = RegressionObjective | EnergyMatchingObjective | JKOFlowObjective
OBJECTIVES: dict[str, type] = {
    "regression": RegressionObjective,
    "energy_matching": EnergyMatchingObjective,
    "jko_flow": JKOFlowObjective,
}


@dataclass(frozen=True)
class CouplingConfig:
    """How noise and data are paired: ``kind`` independent, ot (minibatch exact OT) or entropic
    (SB-CFM, ``sigma``: reg = 2 sigma^2). OT pairs come from a stream (``stream``) that solves
    exact OT on ``ot_batch`` points (None: the batch size) and serves them ``ot_reuse`` epochs,
    prefetching the next block in a thread (``ot_prefetch``); ``stream`` False couples inside
    the objective with the training generator (version-1 runs without ``ot_batch``)."""

    kind: str = "independent"
    sigma: float | None = None
    ot_batch: int | None = None
    ot_reuse: int = 1
    ot_prefetch: bool = True
    stream: bool = True

    def __post_init__(self) -> None:
        get_coupling(self.kind)
        if self.kind == "entropic" and not (self.sigma and self.sigma > 0):
            raise ValueError("the entropic coupling needs coupling.sigma > 0 (reg = 2 sigma^2)")
        if self.ot_batch is not None and (isinstance(self.ot_batch, bool) or self.ot_batch < 1):
            raise ValueError(f"coupling.ot_batch must be a positive integer, got {self.ot_batch}")
        if self.ot_reuse < 1:
            raise ValueError(f"coupling.ot_reuse must be >= 1, got {self.ot_reuse}")


@dataclass(frozen=True)
class ReflowConfig:
    """Rectified flow's reflow: ``rounds`` stages, each trained on ``pairs`` (noise, sample)
    pairs of the previous stage drawn with Euler at ``nfe`` steps.

    ``teacher``: a trained run folder (a diffusion model, any path) whose probability-flow
    couplings (x0, ODE(x0)), drawn with ``teacher_sampler`` at ``nfe`` evaluations, replace the
    data of the first stage: the run then learns a straight (linear-path) flow from the
    teacher's own pairs (rectified flow from a diffusion teacher; ``--set
    reflow.teacher=RUN_DIR``), and ``rounds`` further reflows follow on its own pairs."""

    rounds: int = 0
    pairs: int = 8192
    nfe: int = 100
    teacher: str | None = None
    teacher_sampler: str = "dpm_solver"

    def __post_init__(self) -> None:
        if self.rounds < 0 or self.pairs < 1 or self.nfe < 1:
            raise ValueError("reflow needs rounds >= 0, pairs >= 1 and nfe >= 1")
        if self.teacher is not None and not (isinstance(self.teacher, str) and self.teacher):
            raise ValueError("reflow.teacher must be a run folder (a path), or null for none")


@dataclass(frozen=True)
class ModelConfig:
    """A registered backbone (``name``) for data of ``shape`` with its options (a mapping of
    the backbone's config dataclass fields; defaults there). None for the JKO flow."""

    name: str = "mlp"
    shape: tuple[int, ...] = (2,)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # refuses unknown keys and bad values; stores every option, defaults included
        full = dataclasses.asdict(get_backbone(self.name).options(self.options))
        object.__setattr__(self, "options", full)
        object.__setattr__(self, "shape", tuple(self.shape))

    def backbone_options(self) -> Any:
        return get_backbone(self.name).options(self.options)


@dataclass(frozen=True)
class DataConfig:
    """A data source spec (:func:`wasserflow.data.make_source`), its scaling, and the fitted
    standardizer (set when training starts for ``scale="standard"``)."""

    spec: str = "moons"
    scale: str = "none"
    standardizer: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.scale not in ("none", "standard"):
            raise ValueError(f"scale {self.scale!r}: choose none or standard")


@dataclass(frozen=True)
class SamplerConfig:
    """The run's default sampler and its options."""

    name: str = "euler"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_sampler(self.name)


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to train a run and to rebuild its model and sampler.

    ``method`` names the recipe it came from (:mod:`wasserflow.engine.methods`); nothing reads
    it to decide anything: the parts below say what the run is.
    """

    method: str
    objective: Objective
    path: PathConfig | None = field(default_factory=PathConfig)
    coupling: CouplingConfig = field(default_factory=CouplingConfig)
    reflow: ReflowConfig = field(default_factory=ReflowConfig)
    model: ModelConfig | None = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ValueError(
                f"config version {self.version}: this wasserflow writes version "
                f"{CONFIG_VERSION} (older files are migrated by from_dict)"
            )
        check_consistent(self)

    @property
    def blockwise(self) -> bool:
        """Whether the run is fitted block by block (the JKO flow) instead of by a network loop."""
        return is_blockwise(self.objective)

    @property
    def energy(self) -> bool:
        """Whether the model is a scalar potential whose field is -grad E."""
        return isinstance(self.objective, EnergyMatchingObjective)

    @property
    def stages(self) -> int:
        """Training stages: 1 plus the reflow rounds."""
        return 1 + self.reflow.rounds

    def to_dict(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Parse (and validate) a config dict; version-1 dicts are migrated first."""
        if not isinstance(d, dict):
            raise ValueError(f"a run configuration is a JSON object, got {type(d).__name__}")
        if d.get("version", 1) == 1:
            d = migrate_v1(d)
        return _parse(cls, d, "config")

    def has(self, key: str) -> bool:
        """Whether the dotted ``key`` (or a short name) names a setting of this config."""
        node: Any = self.to_dict()
        for part in SHORT_KEYS.get(key, key).split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """A new config with dotted keys set (``"objective.prediction"``, ``"train.lr"``, or the
        short names of :data:`SHORT_KEYS`); an object value replaces that part whole. A sampler
        may be given by name alone (``sampler=dpm_solver``); a new sampler name starts from that
        sampler's own defaults (the old sampler's options do not carry over)."""
        d = self.to_dict()
        for key, value in overrides.items():
            path = SHORT_KEYS.get(key, key)
            if path == "sampler" and isinstance(value, str):
                value = {"name": value, "options": {}}
            _set_dotted(d, path, value)
            if path == "sampler.name" and "sampler.options" not in overrides:
                d["sampler"]["options"] = {}
        return RunConfig.from_dict(d)


def is_blockwise(objective: Objective) -> bool:
    """Whether ``objective`` is fitted block by block (no network, no path)."""
    return isinstance(objective, JKOFlowObjective)


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
}
"""The recipe keys of version 1 (and of ``--set``), as dotted paths of the typed config."""


def check_consistent(cfg: RunConfig) -> None:
    """Refuse settings that contradict each other (each part is valid on its own)."""
    obj = cfg.objective
    if cfg.blockwise:
        if cfg.model is not None or cfg.path is not None:
            raise ValueError("the JKO flow has no network and no path: model and path must be null")
    elif cfg.path is None or cfg.model is None:
        raise ValueError(f"method {cfg.method} trains a network on a path: give path and model")
    if isinstance(obj, RegressionObjective):
        T = cfg.path.num_train_timesteps
        if obj.times.kind == "ddpm" and T is not None and obj.times.levels != T:
            raise ValueError(
                f"objective.times.levels = {obj.times.levels} contradicts the DDPM "
                f"schedule's num_train_timesteps = {T}: give one value (drop "
                "times.levels)"
            )
    c = cfg.coupling
    if c.kind != "ot" and (c.ot_batch is not None or c.ot_reuse != 1):
        raise ValueError(
            f"coupling.ot_batch and ot_reuse set the minibatch-OT pair stream, but the coupling "
            f"is {c.kind}: drop them or use coupling.kind ot (method otcfm)"
        )
    if cfg.energy and cfg.coupling.kind != "ot":
        raise ValueError(
            "Energy Matching couples noise and data by minibatch OT: coupling.kind must be ot"
        )
    if (cfg.reflow.rounds or cfg.reflow.teacher) and cfg.coupling.kind != "independent":
        raise ValueError(
            "reflow retrains on the flow's own pairs: start from an independent coupling"
        )
    if cfg.model is not None and cfg.energy and not get_backbone(cfg.model.name).scalar:
        raise ValueError(f"model {cfg.model.name} has no scalar head, which Energy Matching needs")


# ---------------------------------------------------------------- JSON <-> dataclasses


def _to_json(obj: Any) -> Any:
    if isinstance(obj, ModelConfig):
        return {"name": obj.name, "shape": list(obj.shape), **obj.options}
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    return obj


def _parse(tp: Any, value: Any, where: str) -> Any:
    """``value`` (JSON) as type ``tp``, refusing unknown keys and wrong types by name."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if all(dataclasses.is_dataclass(a) for a in real) and len(real) > 1:
            return _parse_objective(value, where)
        return _parse(real[0], value, where)
    if tp is ModelConfig:
        return _parse_model(value, where)
    if dataclasses.is_dataclass(tp):
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
            k: v if _is_primitive(hints[k]) else _parse(hints[k], v, f"{where}.{k}")
            for k, v in value.items()
        }
        try:
            tp(**raw)
        except TypeError as e:
            raise ValueError(f"{where}: {e}") from e
        return tp(
            **{
                k: _parse(hints[k], v, f"{where}.{k}") if _is_primitive(hints[k]) else v
                for k, v in raw.items()
            }
        )
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
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object, got {value!r}")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        return tuple(
            _parse(typing.get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value)
        )
    return value


def _required(f: dataclasses.Field) -> bool:
    return (
        f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    )


def _is_primitive(tp: Any) -> bool:
    return tp in (int, float, bool, str)


def _parse_objective(value: Any, where: str) -> Objective:
    if not isinstance(value, dict) or value.get("kind") not in OBJECTIVES:
        kind = value.get("kind") if isinstance(value, dict) else value
        raise ValueError(f"{where}.kind {kind!r}: choose one of {', '.join(OBJECTIVES)}")
    return _parse(OBJECTIVES[value["kind"]], value, where)


def _parse_model(value: Any, where: str) -> ModelConfig:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, got {value!r}")
    rest = dict(value)
    name = rest.pop("name", "mlp")
    if "shape" not in rest:
        raise ValueError(f"{where}.shape is missing (the non-batch data shape, e.g. [2])")
    shape = _parse(tuple[int, ...], rest.pop("shape"), f"{where}.shape")
    return ModelConfig(name=name, shape=shape, options=rest)


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = d
    for i, p in enumerate(parts[:-1]):
        if not isinstance(node.get(p), dict):
            where = ".".join(parts[: i + 1])
            raise ValueError(
                f"unknown key {key!r}: {where} is not a section (sections: "
                f"{', '.join(k for k, v in d.items() if isinstance(v, dict))})"
            )
        node = node[p]
    last = parts[-1]
    if last not in node and not (len(parts) == 2 and parts[0] == "model"):
        known = sorted(node) if node is not d else sorted([*node, *SHORT_KEYS])
        raise ValueError(f"unknown key {key!r}: valid keys are {', '.join(known)}")
    if isinstance(value, dict) and isinstance(node.get(last), dict) and last == "objective":
        value = {**node[last], **value}  # partial objective options keep the other values
    node[last] = value


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
    if "energy_matching" in recipe:
        out["objective"] = {"kind": "energy_matching", **recipe["energy_matching"]}
    else:
        times = dict(recipe.get("times", {}))
        if times.get("kind") == "ddpm" and "levels" not in times:
            times["levels"] = recipe["schedule"].get("num_train_timesteps", 1000)
        out["objective"] = {
            "kind": "regression",
            "prediction": recipe["prediction"],
            "time_input": recipe.get("time_input", "t"),
            "times": times,
            "weighting": recipe.get("weighting", "none"),
        }
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


def read_config(text: str, where: str) -> RunConfig:
    """A RunConfig from the text of ``where`` (a config.json), with the file named on errors."""
    try:
        return RunConfig.from_dict(json.loads(text))
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{where} is not valid JSON ({e}): restore it, or train into a new folder"
        ) from e
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e


def load_config(path: str | os.PathLike) -> RunConfig:
    """The RunConfig in the file ``path`` (a run's config.json); every error names the file."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not a text file ({e.reason} at byte {e.start}): restore it, or train "
            "into a new folder"
        ) from e
    return read_config(text, str(path))


def data_shape(spec: str) -> tuple[int, ...]:
    """The non-batch shape of the data ``spec`` names."""
    return tuple(make_source(spec).shape)
