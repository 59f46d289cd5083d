"""The failures wasserflow anticipates, typed by whose fault they are.

    WasserflowError                       every anticipated failure
    ├── InputError (ValueError)           bad input: an option, a data file, a config
    │   └── RunFolderError                a run folder that cannot be used as asked
    │       └── RunInUse                  another live process is writing there (its pid)
    │   └── TooLarge (also MemoryError)   a problem whose memory need exceeds the machine's
    ├── EnvironmentProblem                the machine: an output path that cannot be written,
    │                                     no CUDA device
    └── TrainingDiverged (RuntimeError)   the loss became NaN or inf

    Interrupted (KeyboardInterrupt)       Ctrl-C, its message saying where the partial result is

Library code raises these and never exits; a plain ``ValueError`` it raises counts as bad
input. The command line prints each as one line on stderr and exits with 2 (130 for
:class:`Interrupted`); any other exception is a bug (a traceback and exit code 1). Imports
nothing from wasserflow, so every layer may use it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class WasserflowError(Exception):
    """An anticipated failure; its message names the thing at fault and the fix. Pickles with
    its attributes (raised in a worker process, re-raised in the parent)."""

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[WasserflowError], args: tuple, state: dict) -> WasserflowError:
    """``cls`` with ``args`` and attributes ``state``, without calling its ``__init__`` (whose
    keyword-only arguments are not among ``args``)."""
    e = cls.__new__(cls, *args)
    e.args = args
    e.__dict__.update(state)
    return e


class InputError(WasserflowError, ValueError):
    """Bad input from the user: an option, a file, a configuration."""


class RunFolderError(InputError):
    """A run folder that cannot be used as asked: it holds no run, another run, a damaged
    file, or settings other than those given."""


class RunInUse(RunFolderError):
    """Another live process holds the run folder's lock (``pid``: its process id, or None)."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


class TooLarge(InputError, MemoryError):
    """A problem too large for the memory available, refused before allocating: ``needed`` and
    ``available`` in bytes (``available`` None when the machine does not say)."""

    def __init__(self, message: str, *, needed: int, available: int | None):
        super().__init__(message)
        self.needed, self.available = needed, available


class EnvironmentProblem(WasserflowError):
    """The environment, not the input: an output path that cannot be written, no CUDA."""


class TrainingDiverged(WasserflowError, RuntimeError):
    """The loss became NaN or inf at ``step``; the last good checkpoint (``checkpoint``, at
    ``checkpoint_step``; None if none was saved) is kept. ``lr`` is the learning rate used."""

    def __init__(
        self,
        message: str,
        *,
        step: int | None = None,
        checkpoint: Path | None = None,
        checkpoint_step: int | None = None,
        lr: float | None = None,
    ):
        super().__init__(message)
        self.step, self.lr = step, lr
        self.checkpoint, self.checkpoint_step = checkpoint, checkpoint_step


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, re-raised after the partial result was saved; the message says where it is."""


_OS_HINTS = {
    errno.EACCES: "permission denied: choose a location you can write to",
    errno.EPERM: "operation not permitted: choose a location you can write to",
    errno.EROFS: "read-only file system: choose a location you can write to",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EEXIST: "it exists already (a file where a folder is needed?)",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ENOENT: "no such file or folder",
    errno.ENOSPC: "no space left on the device: free some or write elsewhere",
    errno.EDQUOT: "disk quota exceeded: free some space or write elsewhere",
    errno.ENAMETOOLONG: "the name is too long",
}
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
"""OS errors that are a problem of the machine even when they name no path."""


def os_hint(e: OSError) -> str:
    """What an OSError means and what to do, without the paths."""
    return _OS_HINTS.get(e.errno, (e.strerror or str(e)).lower())


def describe_os_error(e: OSError) -> str:
    """One line for an OSError: the path(s) it names and what to do."""
    what = os_hint(e)
    paths = [os.fsdecode(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {what}" if paths else what


__all__ = [
    "ENVIRONMENT_ERRNOS",
    "EnvironmentProblem",
    "InputError",
    "Interrupted",
    "RunFolderError",
    "RunInUse",
    "TooLarge",
    "TrainingDiverged",
    "WasserflowError",
    "describe_os_error",
    "os_hint",
]
