"""An exclusive lock on a folder, held while one process writes there.

    with folder_lock(out):
        ...  # the only writer of out

The lock is ``out/.wasserflow.lock``, locked with ``fcntl.flock`` and holding the holder's pid.
A second process is refused at once with :class:`~wasserflow.errors.RunInUse` naming that pid
(it does not wait). The kernel drops a flock when its holder exits, however it exits (SIGKILL
and power loss included), so a lock file left by a dead process holds nothing: the next
writer takes it over and writes its own pid. On release the file is removed; a taker checks
that the file it locked is still the one at that path, so removal cannot let two holders in.
Where ``fcntl`` does not exist (Windows) the lock is not taken. Imports nothing from
wasserflow but its errors.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import EnvironmentProblem, RunInUse, os_hint

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".wasserflow.lock"


def lock_holder(folder: str | os.PathLike) -> int | None:
    """The pid written in ``folder``'s lock file (None if none is readable)."""
    try:
        return int((Path(folder) / LOCK_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def _acquire(path: Path) -> int:
    """An open descriptor of ``path``, exclusively flocked, still linked at ``path``."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise EnvironmentProblem(f"cannot write in {path.parent}: {os_hint(e)}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = lock_holder(path.parent)
            who = f"process {pid}" if pid else "another process"
            raise RunInUse(
                f"{path.parent} is in use by {who} (lock {path}): wait for it to finish, or "
                "stop it, then retry",
                pid,
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file after we opened it: lock the new one


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder``'s lock (the folder must exist) for the duration of the block."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    if fcntl is None:  # pragma: no cover
        yield path
        return
    fd = _acquire(path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
