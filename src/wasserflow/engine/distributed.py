"""Data-parallel training over N processes (``torchrun``) that optimises the one-process objective.

Launch with PyTorch's own launcher; each process is one rank (gloo on the CPU, nccl on GPUs):

    torchrun --nproc-per-node 2 -m wasserflow train --method otcfm --data moons --out runs/x
    wasserflow train --nproc 2 ...       # the same: execs the line above

**The batch size is the global batch B** and every rank draws the *whole* global batch from the
*same* generator, seeded by the run's seed: data, noise, times, bridge noise and the minibatch
OT plan (solved on all B points, as one process solves it) are computed identically on every
rank, and rank r then runs the network on its rows only, ``rows(r) = [r B / N, (r + 1) B / N)``
(:class:`RowShard`). Its loss is the mean over those rows; DistributedDataParallel averages the
gradients over the N ranks, so the gradient is that of the mean over all B rows,

    (1 / N) sum_r grad (N / B) sum_{i in rows(r)} l_i = grad (1 / B) sum_i l_i,

the gradient one process takes, up to the order of floating-point sums. After the all-reduce
every rank holds the same gradient, so clipping, Adam and the EMA stay identical on every rank;
rank 0 alone writes the run folder (config, metrics, atomic checkpoints). Since every rank's
generator is the one generator of a one-process run, the single saved generator state is every
rank's, and a resumed N-rank run equals the uninterrupted one (and the one-process one). The
reported loss is the all-reduced mean, so a NaN on any rank stops every rank at the same step.

This replicates the cheap part of a step (drawing B points and, for OT-CFM, one B x B exact OT
per step on every rank) to keep the one expensive part, the network's forward and backward,
split. TorchCFM's multi-GPU recipe instead lets each rank solve OT on its own B / N rows, which
changes the objective with N (a coarser plan); ``tests/engine/test_distributed.py`` measures the
difference.

**Sampling** (``TrainedRun.sample``, ``wasserflow sample`` and ``evaluate`` under torchrun)
splits the same way: every rank draws the whole noise tensor x0 (n, ...) from the one generator
and runs the sampler's arithmetic on all n rows, and every network evaluation is split
(:class:`RowGather`): rank r evaluates its rows ``[r n / N, (r + 1) n / N)`` and an all-gather
gives every rank the n outputs. Every rank thus follows the one-process trajectory, with the
same adaptive steps (dopri5's error norm is taken over all n rows) and the same noise
(stochastic samplers draw (n, ...) tensors from the one generator), and ends with the gathered
samples; rank 0 alone writes or prints them. The result is the one-process result bit for bit
wherever the network computes a row the same in a smaller batch (the CPU backbones here do:
``tests/engine/test_distributed_sampling.py``).

Collectives here exchange tensors only (text as UTF-8 bytes): nothing is pickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import InputError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""What torchrun sets in every process it starts (with MASTER_ADDR / MASTER_PORT)."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel group of ``world`` ranks.

    Attributes:
        rank: 0..world-1; rank 0 writes the run folder.
        world: the number of processes N.
        local_rank: the rank on this machine (the GPU index it uses).
        device: where its collectives run (cpu for gloo, ``cuda:local_rank`` for nccl).
    """

    rank: int
    world: int
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n``: [r n / N, (r + 1) n / N)."""
        check_batch(n, self.world)
        k = n // self.world
        return slice(self.rank * k, (self.rank + 1) * k)

    def mean(self, value: Tensor) -> float:
        """The mean over ranks of a scalar (each rank's mean over its rows), in float64."""
        t = value.detach().reshape(1).to(self.device, torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t) / self.world

    def barrier(self) -> None:
        dist.barrier()

    def broadcast_json(self, obj: Any = None) -> Any:
        """Rank 0's JSON-serialisable ``obj`` on every rank (other ranks pass nothing)."""
        data = json.dumps(obj).encode() if self.main else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        dist.broadcast(size, 0)
        buf = torch.zeros(int(size), dtype=torch.uint8, device=self.device)
        if self.main:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buf, 0)
        return json.loads(bytes(buf.cpu().tolist()).decode())

    def bounds(self, n: int) -> list[int]:
        """Row boundaries of n rows split over the ranks as evenly as they go: rank r holds
        ``[b[r], b[r + 1])``, b[r] = r n // N (sizes differ by one at most)."""
        return [r * n // self.world for r in range(self.world + 1)]

    def gather_rows(self, part: Tensor, n: int) -> Tensor:
        """Every rank's ``part`` (its rows of :meth:`bounds` (n)), concatenated in rank order
        on every rank, on ``part``'s device."""
        b = self.bounds(n)
        size = b[self.rank + 1] - b[self.rank]
        if part.shape[0] != size:
            raise ValueError(f"rank {self.rank} holds {size} of {n} rows, got {part.shape[0]}")
        k = -(-n // self.world)  # the largest share; all_gather needs equal shapes
        buf = part.new_zeros((k, *part.shape[1:]), device=self.device)
        buf[:size] = part
        parts = [torch.empty_like(buf) for _ in range(self.world)]
        dist.all_gather(parts, buf)
        out = torch.cat([p[: hi - lo] for p, lo, hi in zip(parts, b, b[1:])])
        return out.to(part.device)

    def equal_everywhere(self, t: Tensor) -> bool:
        """Whether ``t`` (same shape on every rank) is bit for bit rank 0's on every rank."""
        mine = t.detach().reshape(-1).to(self.device)
        ref = mine.clone()
        dist.broadcast(ref, 0)
        same = torch.tensor([float(torch.equal(mine, ref))], device=self.device)
        dist.all_reduce(same, op=dist.ReduceOp.MIN)
        return bool(same.item())


def check_batch(batch_size: int, world: int) -> None:
    """A global batch must split evenly over the ranks (InputError naming the fix)."""
    if batch_size % world:
        raise InputError(
            f"batch_size {batch_size} does not split over {world} ranks: choose a multiple of "
            f"{world} (the batch size is the global batch)"
        )


def launched() -> bool:
    """Whether this process was started by torchrun for more than one rank."""
    return all(k in os.environ for k in ENV_KEYS) and int(os.environ["WORLD_SIZE"]) > 1


def setup(device: str = "cpu") -> tuple[Ranks | None, str]:
    """Join the group torchrun started (if it did): (ranks, this rank's device).

    ``device`` "cuda" becomes ``cuda:LOCAL_RANK`` with the nccl backend; "cpu" uses gloo. Not
    launched by torchrun (or one rank): (None, device), nothing is initialised.
    """
    if not launched():
        return None, device
    local = int(os.environ["LOCAL_RANK"])
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return current(dev), str(dev)


def current(device: str | torch.device = "cpu") -> Ranks | None:
    """The initialised process group as :class:`Ranks` (None: one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    dev = torch.device(device)
    if dist.get_backend() == "nccl" and dev.type != "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return Ranks(dist.get_rank(), dist.get_world_size(), local, dev)


def torchrun_argv(nproc: int, argv: list[str]) -> list[str]:
    """The command that runs ``wasserflow ARGV`` (``argv`` from the subcommand on) under
    torchrun with ``nproc`` processes on this machine, the ``--nproc`` option removed."""
    import sys

    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(int(nproc)),
        "-m",
        "wasserflow",
        *rest,
    ]


def shutdown() -> None:
    """Leave the process group (a no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _rows_of(value: Any, rows: slice, n: int) -> Any:
    """``value``'s rows ``rows`` when it holds one entry per sample of the batch of ``n`` (a
    per-sample time, a flow map's second time), else ``value`` itself (a scalar, None)."""
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value[rows]
    return value


class RowShard(nn.Module):
    """``net(x, t, *extra)`` evaluated on this rank's rows of the global batch only (t and the
    extra inputs sliced too where they hold one entry per sample).

    Returns a tensor of the full batch's shape whose rows outside ``rows`` are zeros without
    gradient (their losses are discarded by the loop); calling the wrapped
    DistributedDataParallel module here is what makes its gradients all-reduce.
    """

    def __init__(self, net: nn.Module, rows: slice):
        super().__init__()
        self.net = net
        self.rows = rows

    def forward(self, x: Tensor, t: Tensor | None = None, *args: Any) -> Tensor:
        r = self.rows
        t, *args = (_rows_of(a, r, x.shape[0]) for a in (t, *args))
        y = self.net(x[r], t, *args).to(x.device)  # DDP returns outputs on its device
        before = y.new_zeros((r.start, *y.shape[1:]))
        after = y.new_zeros((x.shape[0] - r.stop, *y.shape[1:]))
        return torch.cat([before, y, after])


class RowGather(nn.Module):
    """``net(x, t)`` with the rows split over the ranks and the outputs gathered on every rank
    (sampling; every rank calls it with the same x and t): rank r evaluates its rows of
    :meth:`Ranks.bounds` and all ranks get the n output rows. Fewer rows than ranks are
    evaluated whole on every rank. ``parameters()`` are ``net``'s (callers read its dtype)."""

    def __init__(self, net: nn.Module, ranks: Ranks):
        super().__init__()
        self.net = net
        self.ranks = ranks

    def forward(self, x: Tensor, t: Tensor | None = None, *args: Any) -> Tensor:
        n = x.shape[0]
        if n < self.ranks.world:
            return self.net(x, t, *args)
        b = self.ranks.bounds(n)
        r = slice(b[self.ranks.rank], b[self.ranks.rank + 1])
        t, *args = (_rows_of(a, r, n) for a in (t, *args))
        return self.ranks.gather_rows(self.net(x[r], t, *args), n)


def data_parallel(model: nn.Module, ranks: Ranks) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel on ``ranks.device`` (its parameters must be
    there already: :func:`wasserflow.models.place`).

    Buffers are broadcast from rank 0 before every forward only where the model has persistent
    ones (running statistics that training changes). The shipped backbones' only buffers are
    constant tables (the sinusoidal embedding's frequencies), equal on every rank (DDP also
    broadcasts them once when it wraps the model); the per-forward broadcast is an in-place
    copy, which a functorch transform through the DDP module (MeanFlow's JVP) refuses."""
    from torch.nn.parallel import DistributedDataParallel

    names = {n for n, _ in model.named_buffers()}
    broadcast = bool(names & set(model.state_dict()))
    if ranks.device.type == "cuda":
        return DistributedDataParallel(
            model, device_ids=[ranks.device.index], broadcast_buffers=broadcast
        )
    return DistributedDataParallel(model, broadcast_buffers=broadcast)


__all__ = [
    "Ranks",
    "RowGather",
    "RowShard",
    "check_batch",
    "current",
    "data_parallel",
    "launched",
    "setup",
    "shutdown",
    "torchrun_argv",
]
