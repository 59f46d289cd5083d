"""Backbones registered by name, each a module class with a config dataclass.

    @register_model("unet", UNetConfig)
    class UNet(nn.Module):
        def __init__(self, shape, config: UNetConfig, *, scalar: bool = False): ...

(a class, or any callable ``(shape, config, *, scalar) -> nn.Module``: the MLP registers a
function choosing between its field and potential classes, whose state-dict keys checkpoints
already use).

A backbone maps (x, t) with x of shape (N, *shape) to a tensor of x's shape, or, built with
``scalar=True``, to one number per sample (N,) (the potential E of an energy model, which
:class:`~wasserflow.models.PotentialField` turns into the field -grad E). Its config dataclass
holds every option with its default and validates them in ``__post_init__``; the run
configuration stores ``{"name": ..., "shape": [...], **options}``, so a checkpoint rebuilds the
same architecture. Adding a backbone is one module with ``@register_model``, one import in
``models/__init__.py`` and its test; nothing else names it.

A backbone registered with ``conditions=True`` also takes extra inputs after t, each embedded and
added to its time embedding (:mod:`.conditioning`): built with ``conditions=("scalar",)`` it is
called as ``net(x, t, c)``. Conditions are not options of its config: the objective (a flow
map's second time) or the data (class labels) ask for them when the run's network is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Backbone:
    """A registered backbone: its name, constructor and options dataclass."""

    name: str
    cls: Callable[..., nn.Module]
    config: type
    scalar: bool = True  # whether it can be built with a scalar head
    conditions: bool = False  # whether it takes extra conditioning inputs (:mod:`.conditioning`)

    def options(self, values: Mapping[str, Any] | None = None) -> Any:
        """The options dataclass from ``values``, refusing unknown keys with the valid ones."""
        values = dict(values or {})
        valid = [f.name for f in dataclasses.fields(self.config)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)} for model {self.name}: valid options are "
                f"{', '.join(valid)}"
            )
        try:
            return self.config(**values)
        except TypeError as e:  # a wrongly typed value the dataclass could not take
            raise ValueError(f"model {self.name}: {e}") from e


BACKBONES: dict[str, Backbone] = {}


def register_model(
    name: str, config: type, *, scalar: bool = True, conditions: bool = False
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a backbone ``cls(shape, config, *, scalar=False)`` (with
    ``conditions``: ``cls(shape, config, *, scalar=False, conditions=())``)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"the config of model {name!r} must be a dataclass")

    def deco(cls: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in BACKBONES:
            raise ValueError(f"model {name!r} is registered twice")
        BACKBONES[name] = Backbone(name, cls, config, scalar, conditions)
        return cls

    return deco


def get_backbone(name: str) -> Backbone:
    """The registered backbone ``name`` (see :data:`BACKBONES`)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]


def check_shape(shape: Any) -> tuple[int, ...]:
    """A non-batch data shape as a tuple of positive ints."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = [shape]
    shape = list(shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"model config 'shape' must be a list of positive ints, got {shape!r}")
    return tuple(shape)


def build_backbone(
    name: str,
    shape: Any,
    options: Any = None,
    *,
    scalar: bool = False,
    seed: int | None = None,
    conditions: tuple[str, ...] = (),
) -> nn.Module:
    """Build backbone ``name`` for data of ``shape`` (options: a mapping or its dataclass),
    taking the extra inputs ``conditions`` after t (:mod:`.conditioning`; none by default).

    With ``seed`` the parameters are initialised from ``torch.default_generator`` seeded with
    it inside ``torch.random.fork_rng``, so the caller's global RNG state is left unchanged.
    """
    b = get_backbone(name)
    opts = options if isinstance(options, b.config) else b.options(options)
    if scalar and not b.scalar:
        raise ValueError(f"model {name} has no scalar head, which an energy model needs")
    if conditions and not b.conditions:
        raise ValueError(
            f"model {name} takes no extra inputs ({', '.join(conditions)}): use a backbone "
            f"that does ({', '.join(k for k, v in BACKBONES.items() if v.conditions)})"
        )
    shape = check_shape(shape)
    extra = {"conditions": tuple(conditions)} if conditions else {}
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.default_generator.manual_seed(int(seed))
        return b.cls(shape, opts, scalar=scalar, **extra)
