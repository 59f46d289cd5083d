"""The typed run configuration: one dataclass per part of a run, every default in one place.

    cfg = make_config("otcfm", "moons", steps=2000)          # RunConfig, validated now
    cfg = cfg.with_overrides({"coupling.ot_batch": 2048})     # dotted keys (--set)
    RunConfig.from_dict(json.loads(text))                     # version 1 folders migrate

A run is a path (schedule and bridge), an optional class condition, an objective (the config of a registered objective kind:
regression on the path, Energy Matching, the JKO flow's blocks, :mod:`wasserflow.objectives`),
a coupling, an optional reflow, a model (a registered backbone and its options), data, training
settings and a default sampler. ``to_dict`` / ``from_dict`` round trip through JSON
(``config.json``, :data:`CONFIG_VERSION`; the parser and the migration of version-1 files are
:mod:`.config_io`'s); unknown keys are refused with the valid ones and contradictory settings
when the config is made (:func:`check_consistent`, which asks the objective for its own rules).
Only this module and :mod:`.config_io` read configuration dicts.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..data import make_source
from ..models.registry import BACKBONES, get_backbone
from ..objectives import ObjectiveConfig, objective_spec
from ..paths import SCHEDULES, get_coupling, get_schedule
from ..samplers import get_sampler
from . import config_io
from .config_io import CONFIG_VERSION, SHORT_KEYS, migrate_v1
from .loop import TrainConfig

__all__ = [
    "CONFIG_VERSION",
    "SHORT_KEYS",
    "ConditionConfig",
    "CouplingConfig",
    "DataConfig",
    "ModelConfig",
    "PathConfig",
    "ReflowConfig",
    "RunConfig",
    "SamplerConfig",
    "check_consistent",
    "data_shape",
    "load_config",
    "migrate_v1",
    "read_config",
]

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
class CouplingConfig:
    """How noise and data are paired: ``kind`` independent, ot (minibatch exact OT) or entropic
    (SB-CFM, ``sigma``: reg = 2 sigma^2). OT pairs come from a stream (``stream``) that solves
    exact OT on ``ot_batch`` points (None: the batch size) and serves them ``ot_reuse`` epochs,
    prefetching the next block in a thread (``ot_prefetch``); ``stream`` False couples inside
    the objective with the training generator (version-1 runs without ``ot_batch``).

    ``per_class`` (class-conditional runs with an ot or entropic coupling): solve the plan
    within each class (True), or on the whole batch, blind to the labels (False: noise may be
    paired with a point of another class; :mod:`wasserflow.paths.couplings`)."""

    kind: str = "independent"
    sigma: float | None = None
    ot_batch: int | None = None
    ot_reuse: int = 1
    ot_prefetch: bool = True
    stream: bool = True
    per_class: bool = True

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
        # refuses unknown keys and bad values; stores every option, defaults (and those the
        # backbone picked for the shape) included
        full = dataclasses.asdict(get_backbone(self.name).options(self.options, self.shape))
        object.__setattr__(self, "options", full)
        object.__setattr__(self, "shape", tuple(self.shape))

    def backbone_options(self) -> Any:
        return get_backbone(self.name).options(self.options)

    def to_json(self) -> dict[str, Any]:
        """``{"name", "shape", **options}``: the options sit beside the name."""
        return {"name": self.name, "shape": list(self.shape), **self.options}

    @classmethod
    def from_json(cls, value: Any, where: str) -> ModelConfig:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object, got {value!r}")
        rest = dict(value)
        name = rest.pop("name", "mlp")
        if "shape" not in rest:
            raise ValueError(f"{where}.shape is missing (the non-batch data shape, e.g. [2])")
        shape = config_io.parse(tuple[int, ...], rest.pop("shape"), f"{where}.shape")
        return cls(name=name, shape=shape, options=rest)


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
class ConditionConfig:
    """Class-conditional training: the network takes a class label y in [0, K] after t (a
    learned embedding added to its time embedding, K + 1 rows, K the null class of
    classifier-free guidance, :mod:`wasserflow.models.conditioning`), the data are drawn with
    their labels, and each label is replaced by K with probability ``label_dropout``,
    independently per sample, from the run's generator (so the one network is also the
    unconditional model). ``num_classes`` None is fixed from the data's labels when training
    starts (K of :attr:`~wasserflow.data.DataSource.label_info`)."""

    num_classes: int | None = None
    label_dropout: float = 0.1

    def __post_init__(self) -> None:
        k = self.num_classes
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"condition.num_classes must be an integer >= 1, got {k!r}")
        p = self.label_dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"condition.label_dropout must lie in [0, 1], got {p!r}")

    @property
    def null(self) -> int:
        """The null class K (the unconditional model)."""
        if self.num_classes is None:
            raise ValueError("the number of classes is fixed from the data when training starts")
        return self.num_classes


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to train a run and to rebuild its model and sampler.

    ``method`` names the recipe it came from (:mod:`wasserflow.engine.methods`); nothing reads
    it to decide anything: the parts below say what the run is.
    """

    method: str
    objective: ObjectiveConfig
    path: PathConfig | None = field(default_factory=PathConfig)
    coupling: CouplingConfig = field(default_factory=CouplingConfig)
    reflow: ReflowConfig = field(default_factory=ReflowConfig)
    model: ModelConfig | None = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    condition: ConditionConfig | None = None
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ValueError(
                f"config version {self.version}: this wasserflow writes version "
                f"{CONFIG_VERSION} (older files are migrated by from_dict)"
            )
        check_consistent(self)

    @property
    def stages(self) -> int:
        """Training stages: 1 plus the reflow rounds."""
        return 1 + self.reflow.rounds

    def to_dict(self) -> dict[str, Any]:
        return config_io.to_json(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Parse (and validate) a config dict; version-1 dicts are migrated first."""
        if not isinstance(d, dict):
            raise ValueError(f"a run configuration is a JSON object, got {type(d).__name__}")
        if d.get("version", 1) == 1:
            d = migrate_v1(d)
        return config_io.parse(cls, d, "config")

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
        sampler's own defaults (the old sampler's options do not carry over), and so does an
        objective of another kind (``objective=KIND`` or ``{"kind": KIND, ...}``), while options
        of the same objective (``{"prediction": "x1"}``) keep its other values."""
        d = self.to_dict()
        for key, value in overrides.items():
            path = SHORT_KEYS.get(key, key)
            if path == "sampler" and isinstance(value, str):
                value = {"name": value, "options": {}}
            config_io.set_dotted(d, path, value)
            if path == "sampler.name" and "sampler.options" not in overrides:
                d["sampler"]["options"] = {}
        return RunConfig.from_dict(d)


def check_consistent(cfg: RunConfig) -> None:
    """Refuse settings that contradict each other (each part is valid on its own): the
    objective's own rules (:meth:`~wasserflow.objectives.ObjectiveSpec.check`), then those of
    the coupling, reflow and model."""
    spec = objective_spec(cfg.objective)
    spec.check(cfg.objective, cfg)
    c = cfg.coupling
    if c.kind != "ot" and (c.ot_batch is not None or c.ot_reuse != 1):
        raise ValueError(
            f"coupling.ot_batch and ot_reuse set the minibatch-OT pair stream, but the coupling "
            f"is {c.kind}: drop them or use coupling.kind ot (method otcfm)"
        )
    if (cfg.reflow.rounds or cfg.reflow.teacher) and cfg.coupling.kind != "independent":
        raise ValueError(
            "reflow retrains on the flow's own pairs: start from an independent coupling"
        )
    if cfg.model is not None and spec.head == "scalar" and not get_backbone(cfg.model.name).scalar:
        raise ValueError(f"model {cfg.model.name} has no scalar head, which {spec.title} needs")
    if cfg.model is not None and spec.conditions and not get_backbone(cfg.model.name).conditions:
        raise ValueError(
            f"model {cfg.model.name} takes no extra inputs, which {spec.title} needs (its "
            f"{', '.join(spec.conditions)} input after t): use "
            + " or ".join(n for n, b in BACKBONES.items() if b.conditions)
        )
    _check_condition(cfg)


def _check_condition(cfg: RunConfig) -> None:
    """A class condition needs a network whose backbone takes extra inputs; ``per_class`` off
    needs a conditional run with a plan to solve."""
    c = cfg.coupling
    if not c.per_class and (cfg.condition is None or c.kind not in ("ot", "entropic")):
        raise ValueError(
            "coupling.per_class false makes the OT plan of a class-conditional run blind to "
            "its labels: it needs condition (--conditional) and coupling.kind ot or entropic"
        )
    if cfg.condition is None:
        return
    if cfg.model is None:
        raise ValueError(
            f"method {cfg.method} trains no network, so it cannot be class-conditional: drop "
            "condition (--conditional)"
        )
    if not get_backbone(cfg.model.name).conditions:
        raise ValueError(
            f"model {cfg.model.name} takes no class labels: use a backbone that does "
            "(mlp, unet) or drop condition"
        )


def read_config(text: str, where: str) -> RunConfig:
    """A RunConfig from the text of ``where`` (a config.json), with the file named on errors."""
    d = config_io.read_json(text, where)
    try:
        return RunConfig.from_dict(d)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e


def load_config(path: str | os.PathLike) -> RunConfig:
    """The RunConfig in the file ``path`` (a run's config.json); every error names the file."""
    return read_config(config_io.read_text(path), str(path))


def data_shape(spec: str) -> tuple[int, ...]:
    """The non-batch shape of the data ``spec`` names."""
    return tuple(make_source(spec).shape)
