"""Where a training step runs and how fast: device-resident randomness, bf16 autocast,
channels-last, ``torch.compile`` and a fused optimiser (the ``train.*`` keys of
:class:`~wasserflow.engine.loop.TrainConfig`).

**CPU** (the network on the CPU): nothing changes. One CPU generator seeded by the run's seed
draws everything, data, noise, times and couplings, as it always has.

**Device-resident** (the network's parameters on an accelerator, :func:`wasserflow.models.place`):
the data are drawn on the CPU by the same CPU generator (sources index host memory) and moved to
the device once per step; the objective then runs under ``with torch.device(device)``, so every
tensor it creates (noise x0, times t, bridge noise, path arithmetic, the inputs of the OT
coupling) is created on the device, drawn from a second generator *on the device* seeded by the
run's seed. Nothing in the objectives names a device: the same code runs on both paths.

Reproducibility: the same device type and seed give the same run bit for bit (the checkpoint
stores both generators' states, so a resumed run equals an uninterrupted one); a CPU run and a
GPU run of the same seed draw the same data but different noise and times (another generator
algorithm), so they agree in law, not sample by sample. A checkpoint written with device
randomness resumes only on that device type.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import RunFolderError
from .distributed import Ranks, RowShard, data_parallel

PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""``torch.compile``'s modes (``train.compile_mode``): ``reduce-overhead`` replays the compiled
network's forward and backward as CUDA graphs (one launch for a step's many small kernels; on
the CPU it is the default mode), ``max-autotune`` also searches kernel configurations."""
"""``train.precision``: float32, or bfloat16 autocast of the network (weights, optimiser and
losses stay float32)."""


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a model without any)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@dataclass
class Randomness:
    """The generators of a run: ``data`` (CPU, draws the batches) and ``objective`` (the same
    generator on the CPU path; a generator on ``device`` when resident)."""

    data: torch.Generator
    objective: torch.Generator
    device: torch.device

    @property
    def resident(self) -> bool:
        return self.objective is not self.data

    @classmethod
    def seeded(cls, seed: int, device: torch.device) -> Randomness:
        data = torch.Generator().manual_seed(seed)
        if device.type == "cpu":
            return cls(data, data, device)
        return cls(data, torch.Generator(device).manual_seed(seed), device)

    def state(self) -> dict[str, Tensor]:
        """The tensors a checkpoint stores (``rng``; ``rng_device`` when resident)."""
        out = {"rng": self.data.get_state().clone()}
        if self.resident:
            out["rng_device"] = self.objective.get_state().clone()
        return out

    def load(self, tensors: dict[str, Tensor], where: object) -> None:
        if ("rng_device" in tensors) != self.resident:
            was = "an accelerator" if "rng_device" in tensors else "the CPU"
            raise RunFolderError(
                f"cannot resume {where}: its randomness was drawn on {was}; resume it with the "
                "same --device (or train into a new folder)"
            )
        self.data.set_state(tensors["rng"])
        if self.resident:
            self.objective.set_state(tensors["rng_device"])

    def check_ranks(self, ranks: Ranks | None) -> None:
        """Device generators of N ranks must draw the same numbers (the same global batch on
        every rank); different accelerator models might not. Raises if they do not."""
        if ranks is None or not self.resident:
            return
        probe = torch.Generator(self.device).manual_seed(12345)
        x = torch.randn(4096, generator=probe, device=self.device)
        if not ranks.equal_everywhere(x):
            raise RuntimeError(
                "the ranks' devices draw different random numbers for the same seed (different "
                "GPU models?): run every rank on the same kind of device"
            )


def step_context(rand: Randomness, precision: str) -> contextlib.ExitStack:
    """The context of one step's loss: the device as the default for new tensors (resident
    runs) and bf16 autocast (``precision`` "bf16")."""
    stack = contextlib.ExitStack()
    if rand.resident:
        stack.enter_context(rand.device)
    if precision == "bf16":
        stack.enter_context(torch.autocast(rand.device.type, dtype=torch.bfloat16))
    return stack


def optimizer(model: nn.Module, lr: float, weight_decay: float, fused: bool) -> torch.optim.Adam:
    """Adam; ``fused`` runs its update as one fused kernel over all parameters, otherwise torch's
    multi-tensor ``foreach`` update (torch's default on GPUs only; on the CPU it is asked for:
    the same operations per element, hence the same numbers, as the per-tensor loop torch falls
    back to there, in fewer calls)."""
    kw = {"fused": True} if fused else {"foreach": True}
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, **kw)


IMPLEMENTATION = ("foreach", "fused")
"""Adam options that choose how, not what, it computes: a resumed run keeps its own, not those
its checkpoint's param groups were saved with."""


def implementation(opt: torch.optim.Optimizer) -> list[dict]:
    """The :data:`IMPLEMENTATION` options of each param group (to restore after a load)."""
    return [{k: g[k] for k in IMPLEMENTATION if k in g} for g in opt.param_groups]


def restore_implementation(opt: torch.optim.Optimizer, saved: list[dict]) -> None:
    for group, keys in zip(opt.param_groups, saved):
        group.update(keys)


def network(
    model: nn.Module,
    ranks: Ranks | None,
    batch_size: int,
    *,
    channels_last: bool,
    compile: bool,
    compile_mode: str = "default",
) -> tuple[nn.Module, slice | None]:
    """What the loss calls, and this rank's rows (None: one process): ``model`` itself, in
    channels-last memory format, compiled (in ``compile_mode``, one of :data:`COMPILE_MODES`),
    and under DistributedDataParallel on its rows."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net: nn.Module = model
    rows = None
    if ranks is not None:
        rows = ranks.rows(batch_size)
        net = data_parallel(model, ranks)
    if compile:
        net = torch.compile(net, mode=None if compile_mode == "default" else compile_mode)
    if rows is not None:
        net = RowShard(net, rows)
    return net, rows
