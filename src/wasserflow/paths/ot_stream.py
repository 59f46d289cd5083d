"""A stream of minibatch-OT pairs for OT-CFM: exact OT on blocks of ``ot_batch`` points, served
in training batches, optionally computed one block ahead in a background thread.

OT-CFM (Tong et al. 2024) couples each training batch of B noise points x0 and B data points x1
by the exact OT permutation of that batch (:func:`~wasserflow.paths.couplings.ot_coupling`).
The plan of B = 256 points is a blurry approximation of the Monge map T between the two laws,
so the conditional velocity the network regresses on, E[x1 - x0 | x_t], averages over several
targets near t = 0 and few-step Euler samples are pulled into the gaps of the data. Larger OT
problems give straighter couplings. This stream decouples the OT size from the training batch:

* block k draws N = ``ot_batch`` data points x1 and N reference points x0 ~ N(0, I) from its
  own generator, seeded by (``seed``, k) alone, and solves the exact N x N assignment
  perm = argmin_sigma sum_i |x0_i - x1_sigma(i)|^2 (network simplex,
  :func:`~wasserflow.geometry.minibatch.minibatch_ot_permutation`);
* its N pairs (x0_i, x1_perm(i)) are served ``reuse`` times (epochs), each epoch in a fresh
  random order drawn from the same block generator, as ``N / B`` batches of B pairs;
* with ``prefetch`` the next block is solved in a background thread while the network trains on
  the current one (POT's ``emd_c`` releases the GIL), so the coupling costs no wall-clock time
  when ``reuse * N / B`` training steps take longer than one N-point OT solve.

Labelled data (a ``sample_data`` returning a :class:`~wasserflow.paths.couplings.LabelledBatch`,
a class-conditional run) is coupled within each class (``per_class``, the default) or
label-blind, and every pair keeps the label of its data point
(:func:`~wasserflow.paths.couplings.couple_labelled`); the stream then serves labelled batches.

``ot_batch = B, reuse = 1`` is TorchCFM's OT-CFM (one fresh OT per batch). The batch of step s
is a pure function of (seed, s): prefetching gives the same batches bit for bit as computing
synchronously, and a resumed run needs no stream state beyond its step (:meth:`seek`).
Exact OT at N points costs about O(N^2)-O(N^3) (measured in d = 2 on 2 cores: 6 ms at 256,
0.15 s at 1024, 0.7 s at 2048, 4 s at 4096), so ``reuse`` trades pair freshness for OT time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..geometry.ot.minibatch import minibatch_ot_permutation
from .couplings import LabelledBatch, couple_labelled

DataSampler = Callable[[int, torch.Generator], Tensor | LabelledBatch]
"""(n, generator) -> (n, ...) data points, or a labelled batch of them."""

_STREAM_TAG = 0x07C0FFEE  # keeps block seeds apart from seeds used elsewhere in a run


@dataclass(frozen=True)
class OTStreamConfig:
    """Options of the minibatch-OT pair stream.

    Attributes:
        batch_size: B, the pairs per training step.
        ot_batch: N, the points per exact OT problem; a multiple of B.
        reuse: epochs over each block's N pairs (each pair is trained on ``reuse`` times, with
            fresh times t); 1 = every pair is used once.
        prefetch: solve block k + 1 in a background thread while block k is served.
        per_class: labelled data only: solve the plan within each class (False: label-blind).
    """

    batch_size: int
    ot_batch: int
    reuse: int = 1
    prefetch: bool = True
    per_class: bool = True

    def __post_init__(self):
        if self.batch_size < 1 or self.ot_batch < 1 or self.reuse < 1:
            raise ValueError("batch_size, ot_batch and reuse must be positive")
        if self.ot_batch % self.batch_size:
            raise ValueError(
                f"ot_batch {self.ot_batch} must be a multiple of the batch size {self.batch_size}"
            )

    @property
    def steps_per_block(self) -> int:
        """Training steps served by one OT block: reuse * N / B."""
        return self.reuse * self.ot_batch // self.batch_size


def block_seed(seed: int, block: int) -> int:
    """The 63-bit seed of block ``block`` of a stream seeded with ``seed`` (numpy SeedSequence
    mixing: distinct (seed, block) give unrelated generators)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(block), _STREAM_TAG])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def ot_pair_block(
    sample_data: DataSampler, config: OTStreamConfig, seed: int, block: int
) -> Tensor | LabelledBatch:
    """The pairs of one block in serving order, shape (reuse * N, 2, ...): [:, 0] = x0 (noise),
    [:, 1] = x1 (data), with (x0, x1) an exact OT pairing of N noise and N data points (a
    :class:`LabelledBatch` of them for labelled data, module doc).

    Deterministic in (seed, block): data, noise and the epoch orders come from one generator
    seeded by :func:`block_seed`.
    """
    g = torch.Generator().manual_seed(block_seed(seed, block))
    n = config.ot_batch
    data = sample_data(n, g)
    x1 = data.x if isinstance(data, LabelledBatch) else data
    if x1.shape[0] != n:
        raise ValueError(f"the data sampler returned {x1.shape[0]} points, asked for {n}")
    x0 = torch.randn(x1.shape, generator=g, dtype=x1.dtype)
    if isinstance(data, LabelledBatch):
        pairs = couple_labelled("ot", x0, data, per_class=config.per_class)
    else:
        perm = minibatch_ot_permutation(x0.reshape(n, -1), x1.reshape(n, -1))
        pairs = torch.stack([x0, x1[perm]], dim=1)
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(config.reuse)])
    return pairs[order]


class OTPairStream:
    """Batches of minibatch-OT pairs (B, 2, ...), the batch of step s a function of (seed, s).

    Use it as the engine's ``sample_data``: ``stream(B, generator)`` returns the next step's
    pairs (the generator is not used: the stream owns its randomness), :meth:`seek` sets the
    step a resumed run starts from, :meth:`close` stops the background thread. Train on it with
    the ``pairs`` coupling of :class:`~wasserflow.objectives.PathRegression`.

    Args:
        sample_data: (n, generator) -> (n, ...) data points, thread-safe given its generator.
        config: block size, batch size, reuse and prefetch.
        seed: the stream's seed (block k uses :func:`block_seed` (seed, k)).
        total_steps: if given, no block past this step is prefetched.
    """

    def __init__(
        self,
        sample_data: DataSampler,
        config: OTStreamConfig,
        *,
        seed: int,
        total_steps: int | None = None,
    ):
        self.sample_data = sample_data
        self.config = config
        self.seed = int(seed)
        self.total_steps = total_steps
        self._step = 0
        self._blocks: dict[int, Future[Tensor]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _compute(self, block: int) -> Tensor:
        return ot_pair_block(self.sample_data, self.config, self.seed, block)

    def _n_blocks(self) -> int | None:
        if self.total_steps is None:
            return None
        return -(-self.total_steps // self.config.steps_per_block)

    def _future(self, block: int, *, background: bool) -> Future[Tensor]:
        with self._lock:
            fut = self._blocks.get(block)
            if fut is not None:
                return fut
            if background:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="ot-pairs")
                fut = self._blocks[block] = self._pool.submit(self._compute, block)
                return fut
        fut = Future()
        fut.set_result(self._compute(block))
        with self._lock:
            self._blocks[block] = fut
        return fut

    def block(self, block: int) -> Tensor | LabelledBatch:
        """The pairs of ``block`` (waiting for the background thread if it is computing it);
        with prefetch, starts the next block in the background and forgets older ones."""
        pairs = self._future(block, background=False).result()
        with self._lock:
            for k in [k for k in self._blocks if k < block]:
                del self._blocks[k]
        last = self._n_blocks()
        if self.config.prefetch and (last is None or block + 1 < last):
            self._future(block + 1, background=True)
        return pairs

    def batch(self, step: int) -> Tensor | LabelledBatch:
        """The (B, 2, ...) pairs of training step ``step`` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        spb, b = self.config.steps_per_block, self.config.batch_size
        k, i = divmod(step, spb)
        return self.block(k)[i * b : (i + 1) * b]

    def seek(self, step: int) -> None:
        """Serve ``step`` next (the start of a run, or the step a resumed run continues from)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self._step = int(step)

    def __call__(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The next step's pairs (B, 2, ...); ``n`` must be the configured batch size."""
        if n != self.config.batch_size:
            raise ValueError(
                f"the OT pair stream serves batches of {self.config.batch_size}, asked for {n}"
            )
        out = self.batch(self._step)
        self._step += 1
        return out

    def close(self) -> None:
        """Stop the background thread (a block being solved is finished and dropped)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._blocks.clear()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> OTPairStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
