"""The life of a run folder: who writes it, what it holds, and what may change on resume.

A run folder holds ``config.json``, ``checkpoint.safetensors``, ``metrics.jsonl``, the
``history.jsonl`` of the settings changed on resume, and ``reflow-<k>/`` stages. It is written
only inside :func:`writing`: the folder is created and proved writable, its lock is held
(:func:`wasserflow._lock.folder_lock`: a second writer is refused with the holder's pid, a
dead holder's lock is taken over) and the temporary files a killed writer left are swept.

A run counts as *trained* once a stage has a checkpoint; before that (a start that crashed or
was stopped before its first checkpoint) a new start replaces its config.json. On resume only
the settings of :data:`RESUMABLE` may change (the number of steps and the learning rate); each
change is a line of ``history.jsonl``: ``{"time", "step", "key", "old", "new"}``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import _atomic
from .._lock import folder_lock
from .._outputs import output_folder
from ..errors import RunFolderError, TrainingDiverged
from . import checkpoint as ckpt
from .config import RunConfig

CONFIG, CHECKPOINT, METRICS, HISTORY = (
    "config.json",
    "checkpoint.safetensors",
    "metrics.jsonl",
    "history.jsonl",
)
RESUMABLE = ("train.steps", "train.lr")
"""The settings a resumed run may change (dotted keys of :class:`RunConfig`)."""


@contextlib.contextmanager
def writing(out: Path) -> Iterator[Path]:
    """Create ``out`` (checked writable), hold its lock, sweep stale temporary files; a folder
    created here and left empty (a start refused or failed before writing) is removed."""
    created = not out.exists()
    output_folder(out, "run folder")
    try:
        with folder_lock(out):
            sweep_temporaries(out)
            yield out
    finally:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()


def sweep_temporaries(out: Path) -> None:
    """Remove the half-written temporary files (``.<name>.*``) of a killed writer."""
    prefixes = tuple(f".{n}." for n in (CONFIG, CHECKPOINT, METRICS, HISTORY))
    for d in (out, *sorted(out.glob("reflow-*"))):
        for p in d.glob(".*"):
            if p.name.startswith(prefixes) and p.is_file():
                p.unlink(missing_ok=True)


def stage_dirs(out: Path, cfg: RunConfig) -> list[Path]:
    return [out] + [out / f"reflow-{k}" for k in range(1, cfg.reflow.rounds + 1)]


def checkpoint_step(stage: Path) -> int | None:
    """The step of ``stage``'s checkpoint (None: there is none)."""
    p = stage / CHECKPOINT
    if not p.exists():
        return None
    meta = ckpt.load(p)[1]
    if not isinstance(meta.get("step"), int):
        raise RunFolderError(f"{p} has no step in its metadata: it is not a training checkpoint")
    return meta["step"]


def trained(out: Path) -> bool:
    """Whether any stage of the run in ``out`` has a checkpoint."""
    return (out / CHECKPOINT).exists() or any(out.glob(f"reflow-*/{CHECKPOINT}"))


def last_checkpoint(out: Path, cfg: RunConfig) -> tuple[Path, int] | None:
    """(checkpoint path, step) of the last stage that has one, or None."""
    for stage in reversed(stage_dirs(out, cfg)):
        step = checkpoint_step(stage)
        if step is not None:
            return stage / CHECKPOINT, step
    return None


def start(out: Path, cfg: RunConfig) -> None:
    """Write the config of a new run (replacing one that never saved a checkpoint)."""
    (out / HISTORY).unlink(missing_ok=True)
    _atomic.write_json(out / CONFIG, cfg.to_dict())


# ---------------------------------------------------------------- changes on resume


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def differences(old: RunConfig, new: RunConfig) -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ, with (old, new)."""
    a, b = _flat(old.to_dict()), _flat(new.to_dict())
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def changes_on_resume(
    stored: RunConfig, given: Mapping[str, Any], *, method: str | None = None
) -> dict[str, Any]:
    """What resuming ``stored`` with the settings ``given`` (dotted or short keys, as
    ``--set``; ``method`` if given) would change. Raises RunFolderError listing every
    difference outside :data:`RESUMABLE`; returns the permitted changes."""
    diff = differences(stored, stored.with_overrides(dict(given)) if given else stored)
    if method is not None and method != stored.method:
        diff = {"method": (stored.method, method), **diff}
    refused = {k: v for k, v in diff.items() if k not in RESUMABLE}
    if refused:
        listed = "; ".join(f"{k}: {a!r} in the run, {b!r} given" for k, (a, b) in refused.items())
        raise RunFolderError(
            f"the run has other settings than given ({listed}): a resumed run may change only "
            "its steps and learning rate (--steps, --lr); train other settings into a new folder"
        )
    return {k: b for k, (_, b) in diff.items()}


def with_changes(
    out: Path, cfg: RunConfig, changes: Mapping[str, Any]
) -> tuple[RunConfig, dict[str, tuple[Any, Any]]]:
    """``cfg`` with ``changes`` (keys of :data:`RESUMABLE`) applied, and what they change;
    nothing is written (:func:`record` does)."""
    bad = sorted(set(changes) - set(RESUMABLE))
    if bad:
        raise RunFolderError(f"cannot change {', '.join(bad)} on resume: only {RESUMABLE}")
    new = cfg.with_overrides(dict(changes)) if changes else cfg
    diff = differences(cfg, new)
    if "train.steps" in diff:
        done = [(s, checkpoint_step(s)) for s in stage_dirs(out, cfg)]
        if any(step is not None for _, step in done[1:]):
            raise RunFolderError(
                f"{out}: the reflow stages were trained on the first stage's pairs: the "
                "number of steps cannot change now; train into a new folder"
            )
        if done[0][1] is not None and new.train.steps < done[0][1]:
            raise RunFolderError(
                f"{out} has trained {done[0][1]} steps already: --steps must be at least that"
            )
    return new, diff


def record(out: Path, cfg: RunConfig, diff: Mapping[str, tuple[Any, Any]]) -> None:
    """Append each change to history.jsonl, then write the changed config.json."""
    if not diff:
        return
    last = last_checkpoint(out, cfg)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = [
        json.dumps({"time": now, "step": last[1] if last else 0, "key": k, "old": a, "new": b})
        for k, (a, b) in diff.items()
    ]
    old = (out / HISTORY).read_text() if (out / HISTORY).exists() else ""
    _atomic.write_text(out / HISTORY, old + "".join(line + "\n" for line in lines))
    _atomic.write_json(out / CONFIG, cfg.to_dict())


def history(out: Path) -> list[dict]:
    """The recorded changes of the run in ``out`` (unreadable lines are skipped)."""
    p = out / HISTORY
    if not p.exists():
        return []
    rows = []
    for line in p.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return [r for r in rows if isinstance(r, dict) and "key" in r]


def changed_train_settings(out: Path) -> frozenset[str]:
    """The training settings (``lr``, ``steps``) changed on some resume of this run: the
    checkpoint may record an earlier value of them."""
    return frozenset(
        r["key"].split(".", 1)[1] for r in history(out) if str(r["key"]).startswith("train.")
    )


# ---------------------------------------------------------------- messages


def interrupted_message(out: Path, cfg: RunConfig) -> str:
    """Where an interrupted run stands, and how to continue it."""
    last = last_checkpoint(out, cfg)
    if last is None:
        return (
            f"interrupted: the run in {out} saved no checkpoint yet; start it again "
            f"(wasserflow train --out {out} --resume)"
        )
    return (
        f"interrupted: the run in {out} is saved at step {last[1]} ({last[0]}); continue it "
        f"with: wasserflow train --out {out} --resume"
    )


def diverged_message(out: Path, e: TrainingDiverged) -> str:
    """The divergence, the last good checkpoint and the command that resumes at a lower lr."""
    lr = e.lr if e.lr is not None else 1e-3
    cmd = f"wasserflow train --out {out} --resume --lr {lr / 10:g}"
    head = f"the loss became NaN or inf at step {e.step} (learning rate {lr:g})"
    if e.checkpoint is None:
        return f"{head} before any checkpoint was saved; start again with a lower one: {cmd}"
    return (
        f"{head}; the last good checkpoint is {e.checkpoint} (step {e.checkpoint_step}); "
        f"resume from it with a lower learning rate: {cmd}"
    )
