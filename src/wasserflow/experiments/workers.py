"""An experiment's independent jobs (one model trained and measured each) in worker processes.

``learned`` trains a dozen small MLPs. At batch 256 and width 128 a training step is too small
for two torch threads to help (measured on this project's 2-core machine: OT-CFM on moons 4.5 s
with one thread against 5.2 s with two, SB-CFM 5.7 against 4.0), so on the CPU the report runs
``workers`` jobs at once, one process each with ``threads`` torch threads, instead of one job at
a time on every core.

Each job is a module-level function ``fn(ctx, arg)`` that writes its own results into the run
folder (so an interrupted experiment resumes job by job) and returns a picklable record. The
workers are spawned (never forked: a forked OpenMP runtime can hang) and receive a copy of the
context without its progress callback; the parent reports which jobs run and how many are done.
A worker's numbers are those of one process with ``threads`` threads: the same, bit for bit, as
the same job run in one process at that thread count (tests/experiments/test_workers.py), and
within round-off of a run at another thread count.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

from ..errors import EnvironmentProblem
from .context import Context

A = TypeVar("A")
R = TypeVar("R")

HEARTBEAT = 10.0
"""Seconds between progress lines while no job finishes."""

GRACE = 2.0
"""Seconds the running jobs have to stop after Ctrl-C before they are interrupted."""


def cpu_count() -> int:
    """The cores this process may run on (its affinity where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(device: str) -> int:
    """One worker per core on the CPU; one (the parent itself) on an accelerator, whose
    models are large enough to use it alone."""
    return cpu_count() if device == "cpu" else 1


def check_workers(workers: int) -> int:
    """``workers`` when it is a positive integer; a ValueError naming the fix otherwise."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"workers must be a positive integer (1: no worker processes), got {workers!r}"
        )
    return workers


def _start_worker(threads: int) -> None:
    """A worker's set-up: its torch threads, and Ctrl-C ignored between jobs (an idle worker
    interrupted would die with a traceback; a running job is interrupted, see :func:`_call`)."""
    import torch

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _call(fn: Callable[[Context, A, tuple[float, float]], R], ctx: Context, a: A, share) -> R:
    """``fn(ctx, a, share)`` in a worker, interruptible by Ctrl-C (KeyboardInterrupt) while it
    runs: the job stops as in one process, its run resumable from its last checkpoint."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return fn(ctx, a, share)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupt(pool: ProcessPoolExecutor, running: list[Future]) -> None:
    """After Ctrl-C in the parent: cancel the jobs not started; interrupt the running ones
    (a terminal's Ctrl-C reached them already; a signal sent to the parent alone did not)."""
    for f in running:
        f.cancel()
    wait(running, timeout=GRACE)
    if any(not f.done() for f in running):
        for proc in list(getattr(pool, "_processes", {}).values()):
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGINT)


def run_jobs(
    ctx: Context,
    fn: Callable[[Context, A, tuple[float, float]], R],
    args: Sequence[A],
    labels: Sequence[str],
    later: Sequence[bool] | None = None,
) -> list[R]:
    """``[fn(ctx, a, share) for a in args]``, in ``ctx.workers`` processes (each with
    ``cpu_count() // workers`` torch threads, at least one; a lone job runs in this process at
    that count), or in this process as it is with one worker. Jobs marked ``later`` start once every other job has finished
    (a distillation after its teacher). ``share`` is the job's part of the experiment's
    progress (0..1, by its place in that order); ``labels`` name the jobs in the progress
    lines. Returns the results in the order of ``args``. A job's exception is raised here;
    Ctrl-C cancels the jobs not started and stops the running ones (their runs resume from
    their checkpoints)."""
    late = list(later) if later is not None else [False] * len(args)
    order = [i for i in range(len(args)) if not late[i]] + [i for i in range(len(args)) if late[i]]
    share = {i: (k / len(order), (k + 1) / len(order)) for k, i in enumerate(order)}
    results: dict[int, R] = {}
    for phase in (order[: late.count(False)], order[late.count(False) :]):
        if phase:
            results.update(
                zip(phase, _phase(ctx, fn, [(i, args[i], share[i]) for i in phase], labels))
            )
    return [results[i] for i in range(len(args))]


def _phase(ctx: Context, fn, jobs: list, labels: Sequence[str]) -> list:
    """One phase's jobs (index, argument, share), in order, in workers or in this process."""
    if ctx.workers <= 1:
        return [fn(ctx, a, share) for _, a, share in jobs]
    threads = max(1, cpu_count() // ctx.workers)  # the same in every phase, whatever its size
    workers = min(ctx.workers, len(jobs))
    if workers == 1:  # one job: in this process, at the workers' thread count
        with _threads(threads):
            return [fn(ctx, a, share) for _, a, share in jobs]
    quiet = replace(ctx, progress=None, results={})
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(threads,),
    )
    futures: dict[Future, int] = {}
    try:
        futures = {
            pool.submit(_call, fn, quiet, a, share): k for k, (_, a, share) in enumerate(jobs)
        }
        span = (jobs[0][2][0], jobs[-1][2][1])
        names = [labels[i] for i, _, _ in jobs]
        results = _collect(ctx, futures, names, span, workers)
    except KeyboardInterrupt:
        _interrupt(pool, list(futures))
        raise
    except BrokenProcessPool as e:
        raise EnvironmentProblem(
            f"a worker process died ({e}): out of memory, or a script calling reproduce "
            "outside `if __name__ == '__main__':`? rerun with --workers 1 (resumes)"
        ) from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[k] for k in range(len(jobs))]


def _collect(
    ctx: Context,
    futures: dict[Future, int],
    labels: Sequence[str],
    frac: tuple[float, float],
    workers: int,
) -> dict[int, R]:
    lo, hi = frac
    results: dict[int, R] = {}
    pending = set(futures)
    while pending:
        running = [labels[futures[f]] for f in futures if f.running()][:workers]
        ctx.report(
            f"{', '.join(running) or 'starting'} ({len(results)} of {len(futures)} done, "
            f"{workers} workers)",
            lo + (hi - lo) * len(results) / len(futures),
        )
        done, pending = wait(pending, timeout=HEARTBEAT, return_when=FIRST_COMPLETED)
        for f in done:
            results[futures[f]] = f.result()  # a job's exception is raised here
    return results
