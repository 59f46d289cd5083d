"""The resolved configuration of ``wasserflow reproduce`` (:class:`ReproduceConfig`).

A profile fixes every size (training steps, widths, sample counts, grids); each experiment's
module holds its profile dataclass and its value under each profile (:mod:`.registry`). The
resolved config (those values plus --methods, --data, --image-data, --seed) is stored as
``config.json`` in the run folder, one object per experiment under its name, and a rerun into
the same folder must resolve to the same config, so finished experiments can be reused without
mixing numbers from different settings.

| profile | training steps | width x depth | JKO flow blocks x units | samples (W2) | meant for |
|---|---|---|---|---|---|
| test | 300 | 48 x 3 | 4 x 8 | 300 | the test suite (< 60 s) |
| quick | 400 | 64 x 2 | 12 x 32 | 500 | a first look (< 3 min on 2 CPU cores) |
| default | 3000 | 128 x 3 | 24 x 64 | 1000 | the report (< 8 min on 2 CPU cores) |
| full | 20000 | 256 x 4 | 32 x 128 | 4000 | a GPU |

Seeds: ``full`` runs every experiment for 3 seeds (``seed``, ``seed + 1``, ``seed + 2``: three
trainings, three samples) and reports their spread (:mod:`.spread`); the other profiles run one.
``seeds=`` (``--seeds``) overrides the profile's count.

``images`` (8 x 8 digits, the network methods of ``--methods``): test 60 steps of an MLP 64 x 2
on icfm, otcfm, ddpm (200 samples); quick 300 steps, MLP 128 x 2, four methods (500); default
800 steps, MLP 256 x 3, every network method (1,000 samples, NFE up to 32); full 20,000 steps
of the digits UNet with dopri5 (all 1,797 digits, NFE up to 100).

Flow maps (``one-step``): without ``--methods``, ``learned`` and ``images`` train ``shortcut``
and ``flowmap-distill`` (its teacher the report's ``otcfm`` run), for 600 and 300 steps in the
default profile (``flowmap_steps``), for the profile's steps otherwise; ``full`` trains all four
(with ``meanflow`` and ``meanflow-ot``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..engine.methods import METHODS, recipe
from ..objectives import objective_spec
from .records import from_json, to_json
from .registry import EXPERIMENTS, PROFILES, Profile, Request

VERSION = 1
"""The version of config.json (its layout: version, profile, seed, one object per experiment)."""

P = TypeVar("P", bound=Profile)

SEEDS = {"test": 1, "quick": 1, "default": 1, "full": 3}
"""How many seeds each profile runs (trains and samples) when ``seeds`` is not given."""


@dataclass(frozen=True)
class ReproduceConfig:
    """The resolved configuration of a reproduce run: the profile's settings of every
    registered experiment (by name) with the command line's choices applied, and the seed."""

    profile: str
    seed: int
    settings: Mapping[str, Profile]
    version: int = VERSION
    seeds: int = 1

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds the run trains and samples with: ``seed`` ... ``seed + seeds - 1``."""
        return tuple(range(self.seed, self.seed + self.seeds))

    def single(self, seed: int) -> ReproduceConfig:
        """This configuration for one of its seeds alone (a seed folder's config)."""
        return dataclasses.replace(self, seed=seed, seeds=1)

    def of(self, cls: type[P]) -> P:
        """The settings of the experiment whose profile dataclass is ``cls``."""
        for s in self.settings.values():
            if type(s) is cls:
                return s
        raise ValueError(f"this configuration holds no {cls.__name__}")

    def to_json(self) -> dict[str, Any]:
        """config.json: version, profile, seed and each experiment's settings under its name."""
        head = {"version": self.version, "profile": self.profile, "seed": self.seed}
        if self.seeds != 1:  # one seed: the layout of the configs written before seeds
            head["seeds"] = self.seeds
        return {**head, **{name: to_json(s) for name, s in self.settings.items()}}

    @classmethod
    def from_json(cls, d: Any) -> ReproduceConfig:
        """Read :meth:`to_json`'s output back; a ValueError names what does not fit."""
        if not isinstance(d, dict) or d.get("version") != VERSION:
            version = d.get("version") if isinstance(d, dict) else None
            raise ValueError(f"version {version!r} is not {VERSION}")
        names = [n for n, e in EXPERIMENTS.items() if e.profile is not None]
        rest = sorted(set(d) - {"version", "profile", "seed", "seeds"} - set(names))
        if rest:
            raise ValueError(f"unknown experiment(s) {', '.join(rest)}")
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"no settings for {', '.join(missing)}")
        profile = from_json(str, d.get("profile"), "profile")
        seed = from_json(int, d.get("seed"), "seed")
        seeds = from_json(int, d.get("seeds", 1), "seeds")
        settings = {n: from_json(EXPERIMENTS[n].profile, d[n], n) for n in names}
        return cls(profile, seed, settings, seeds=_check_seeds(seeds))


def resolve_config(
    profile: str = "quick",
    *,
    methods: list[str] | None = None,
    data: list[str] | None = None,
    image_data: str | None = None,
    seed: int = 0,
    seeds: int | None = None,
) -> ReproduceConfig:
    """The full configuration of a reproduce run (everything that changes a number).

    ``methods`` narrows ``learned`` and ``images`` (which trains the network methods only);
    ``data`` sets ``learned``'s point-cloud sets and ``image_data`` ``images``' data spec
    (MNIST, Fashion-MNIST, CIFAR-10, an image folder: see ``wasserflow.data``), whose FD
    features are then the default of its image shape. Each experiment's profile applies them
    (:meth:`~.registry.Profile.resolve`). ``seeds``: how many seeds to train and sample
    (``seed`` onwards; None: the profile's, :data:`SEEDS`)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if methods:
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise ValueError(
                f"unknown method(s) {', '.join(bad)}: choose from {', '.join(METHODS)}"
            )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seeds = _check_seeds(SEEDS[profile] if seeds is None else seeds)
    specs = {m: objective_spec(recipe(m).objective) for m in METHODS}
    request = Request(
        methods=tuple(dict.fromkeys(methods)) if methods else None,
        data=tuple(dict.fromkeys(data)) if data else None,
        image_data=image_data or None,
        network_methods=tuple(m for m, s in specs.items() if s.has_network),
        flow_map_methods=tuple(m for m, s in specs.items() if s.flow_map),
    )
    settings = {
        name: e.profiles[profile].resolve(request)
        for name, e in EXPERIMENTS.items()
        if e.profile is not None
    }
    return ReproduceConfig(profile, seed, settings, seeds=seeds)


def _check_seeds(seeds: object) -> int:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise ValueError(f"seeds must be an integer from 1 to 100, got {seeds!r}")
    return seeds


def config_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    """The first key path where two configs differ ("learned.steps: 400 != 1500"), or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if k not in old or k not in new:
                return f"{prefix}{k}: present in only one of the two configurations"
            diff = config_difference(old[k], new[k], f"{prefix}{k}.")
            if diff:
                return diff
        return None
    if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
        return f"{prefix.rstrip('.')}: {old!r} (folder) != {new!r} (now)"
    return None
