"""Atomic file writes: write to a temporary file in the same folder, then rename.

A crash or Ctrl-C never leaves a half-written file behind: readers see the old file or the new
one. Imports nothing from wasserflow, so every layer may use it.

Permissions: ``tempfile.mkstemp`` creates its file with mode 0600, so the temporary file is
given the mode an ordinary ``open(path, "w")`` would give before it is renamed: a new file gets
``0o666 & ~umask`` (0644 under umask 022), and a file that is replaced keeps its own read,
write and execute bits (a checkpoint the user made private with ``chmod 600`` stays private; one
made group writable stays so). Setuid/setgid/sticky bits, owner and group are not carried over.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    Linux reports it in /proc/self/status; elsewhere ``os.umask`` is the only way to read it,
    and it sets the mask too, so the old value is put back at once.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    """The permission bits the file at ``path`` should end with (see the module docstring)."""
    try:
        st = os.stat(path)
    except OSError:
        return 0o666 & ~current_umask()
    if stat.S_ISREG(st.st_mode):
        return stat.S_IMODE(st.st_mode) & 0o777  # never carry setuid/setgid/sticky over
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    ``suffix`` (default: the target's) lets writers that infer the format from the file name,
    such as matplotlib's savefig, see the right extension. The final file has mode
    ``0o666 & ~umask`` when it is new and keeps the replaced file's permission bits otherwise.
    If the body raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp"
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # a writer may have removed it; os.replace then fails below
            os.chmod(tmp_path, _final_mode(path))
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _finite(obj):
    """JSON has no NaN or inf: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON (non-finite floats become null), atomically."""
    write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")
