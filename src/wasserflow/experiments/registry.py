"""Reproduce experiments registered by name, each owning its profile and its place in the run.

    @register_experiment("denoise-jko", DenoiseJKOProfile, title="A denoising step is a JKO step",
                         profiles={"test": DenoiseJKOProfile(...), "quick": ..., "default": ...,
                                   "full": ...})
    def run(ctx: Context) -> ExperimentResult: ...

The entry (:class:`Experiment`) is all the runner, the report and the command line know of an
experiment: its runner, its report heading, its profile dataclass (a frozen subclass of
:class:`Profile`, stored under the experiment's name in ``config.json``) with one value per
profile of :data:`PROFILES`, its place in the run and the report (``order``: smaller first), the
experiments whose results it reads (run before it, and added to a selection that lacks them)
and its share of the progress bar. Adding an experiment is one module with
``@register_experiment``, one import in ``experiments/__init__.py`` and its test; nothing else
names it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self

    from .context import Context, ExperimentResult

PROFILES = ("test", "quick", "default", "full")
"""The profiles every experiment gives a value for (``--profile``)."""


@dataclass(frozen=True)
class Request:
    """What the command line asks beyond the profile: ``--methods``, ``--data``,
    ``--image-data`` (None where not given), the methods that train a network (the ones an
    experiment on images can train) and those that learn a flow map."""

    methods: tuple[str, ...] | None = None
    data: tuple[str, ...] | None = None
    image_data: str | None = None
    network_methods: tuple[str, ...] = ()
    flow_map_methods: tuple[str, ...] = ()

    def default_methods(self, methods: Sequence[str], flow_maps: Sequence[str]) -> tuple[str, ...]:
        """``methods`` (in their order) without the flow maps not in ``flow_maps``: what an
        experiment trains when ``--methods`` is not given."""
        return tuple(m for m in methods if m not in self.flow_map_methods or m in flow_maps)


@dataclass(frozen=True)
class Profile:
    """Base of an experiment's settings (a frozen dataclass of every size it uses)."""

    def resolve(self, request: Request) -> Self:
        """These settings with the command line's choices applied (default: unchanged);
        raises ValueError naming a bad choice."""
        return self


@dataclass(frozen=True)
class Experiment:
    """A registered experiment (see the module docstring)."""

    name: str
    run: Callable[[Context], ExperimentResult]
    title: str
    profile: type[Profile] | None
    profiles: Mapping[str, Profile]
    order: float = math.inf
    requires: tuple[str, ...] = ()
    weight: float = 1.0


EXPERIMENTS: dict[str, Experiment] = {}
"""The registered experiments in run order (by ``order``, then by registration)."""


def register_experiment(
    name: str,
    profile: type[Profile] | None,
    *,
    title: str,
    profiles: Mapping[str, Profile] | None = None,
    order: float = math.inf,
    requires: tuple[str, ...] = (),
    weight: float = 1.0,
) -> Callable[[Callable[[Context], ExperimentResult]], Callable[[Context], ExperimentResult]]:
    """Decorator: register ``run(ctx)`` as experiment ``name`` with its report heading
    ``title``, its ``profile`` dataclass and its value under each of :data:`PROFILES`
    (``profile=None``: an experiment without settings, e.g. one that reads another's results);
    ``order``: its place in the run and the report (smaller first; default last);
    ``requires``: registered experiments whose results it reads (each of a smaller order);
    ``weight``: its share of the progress bar (1 for one that takes seconds)."""
    _check(name, profile, dict(profiles or {}), order, requires, weight)

    def deco(run: Callable[[Context], ExperimentResult]) -> Callable[[Context], ExperimentResult]:
        entry = Experiment(
            name, run, title, profile, dict(profiles or {}), order, tuple(requires), weight
        )
        ranked = sorted([*EXPERIMENTS.values(), entry], key=lambda e: e.order)  # stable
        EXPERIMENTS.clear()
        EXPERIMENTS.update((e.name, e) for e in ranked)
        return run

    return deco


def _check(name, profile, profiles: dict, order, requires, weight) -> None:
    if name in EXPERIMENTS:
        raise ValueError(f"experiment {name!r} is registered twice")
    if profile is None:
        if profiles:
            raise ValueError(f"experiment {name!r} has profile values but no profile dataclass")
    else:
        if not (dataclasses.is_dataclass(profile) and issubclass(profile, Profile)):
            raise TypeError(f"the profile of experiment {name!r} must be a Profile dataclass")
        if set(profiles) != set(PROFILES):
            raise ValueError(f"experiment {name!r} needs a value for each of {', '.join(PROFILES)}")
        bad = [p for p, v in profiles.items() if not isinstance(v, profile)]
        if bad:
            raise TypeError(f"experiment {name!r}: profile(s) {', '.join(bad)} are not {profile}")
    missing = [r for r in requires if r not in EXPERIMENTS or not EXPERIMENTS[r].order < order]
    if missing:
        raise ValueError(
            f"experiment {name!r} requires {', '.join(missing)}, which must be registered "
            "first and with a smaller order"
        )
    if not weight > 0:
        raise ValueError(f"experiment {name!r}: weight must be positive, got {weight!r}")


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def select(names: list[str] | None) -> list[str]:
    """The experiments to run, with the ones they require, in run order."""
    if not names:
        return list(EXPERIMENTS)
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad:
        raise ValueError(
            f"unknown experiment(s) {', '.join(bad)}: choose from {', '.join(EXPERIMENTS)}"
        )
    want = set(names)
    for n in reversed(EXPERIMENTS):  # requirements run before their users
        if n in want:
            want.update(EXPERIMENTS[n].requires)
    return [n for n in EXPERIMENTS if n in want]
