"""Run a network on an accelerator while everything around it stays on the CPU.

:func:`place` moves a model's parameters to ``device`` and installs forward hooks that move
every tensor input there and the output back to the caller's device (autograd follows both
moves, so losses, second-order energy gradients and optimisers work unchanged). A caller on
the CPU (samplers, evaluation) keeps its tensors and its generator there and only the
network's arithmetic moves. Training is device-resident instead: the objective creates noise,
times and path arithmetic on the device from a device generator
(:mod:`wasserflow.engine.acceleration`), so a CPU run and a GPU run of one seed agree in law,
not sample by sample. For an energy model (:class:`PotentialField`) the hooks sit on the potential, so both
``model(x, t)`` and ``model.energy(x)`` run there. State dicts keep their keys (hooks are not
parameters): checkpoints written on one device load on any other.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..errors import EnvironmentProblem
from .energy import PotentialField


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device; ValueError for a name that is not one, EnvironmentProblem
    for a CUDA device this machine does not have."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not a torch device: use cpu or cuda") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EnvironmentProblem(f"device {device!r}: no CUDA device is available here; use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: only cpu and cuda are supported")
    return dev


def _move(v, device: torch.device):
    return v.to(device) if isinstance(v, Tensor) else v


@dataclass(frozen=True)
class DeviceHooks:
    """The two forward hooks :func:`install_device_hooks` put on a module; ``remove()`` them."""

    device: torch.device
    handles: tuple[RemovableHandle, RemovableHandle]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


_PLACED: weakref.WeakKeyDictionary[nn.Module, DeviceHooks] = weakref.WeakKeyDictionary()
"""The hooks :func:`place` installed, by module (weak: a dropped model takes its entry)."""


def install_device_hooks(module: nn.Module, device: torch.device) -> DeviceHooks:
    """Hooks on ``module``: inputs to ``device``, the output back to the first input's device."""
    home: list[torch.device] = []

    def pre(mod, args, kwargs):
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), None)
        home.append(first.device if first is not None else torch.device("cpu"))
        return (
            tuple(_move(a, device) for a in args),
            {k: _move(v, device) for k, v in kwargs.items()},
        )

    def post(mod, args, kwargs, out):
        return out.to(home.pop()) if isinstance(out, Tensor) else out

    return DeviceHooks(
        device,
        (
            module.register_forward_pre_hook(pre, with_kwargs=True),
            module.register_forward_hook(post, with_kwargs=True),
        ),
    )


def place(model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """Move ``model`` to ``device`` (module doc); on the CPU this is ``model.to("cpu")``, and
    the hooks of an earlier placement on an accelerator are removed."""
    dev = resolve_device(device)
    model.to(dev)
    target = model.potential if isinstance(model, PotentialField) else model
    old = _PLACED.get(target)
    if old is not None and old.device == dev:
        return model
    if old is not None:
        old.remove()
        del _PLACED[target]
    if dev.type != "cpu":
        _PLACED[target] = install_device_hooks(target, dev)
    return model
