"""Check an output path before any work is done, so a bad one fails in one line, at once.

:func:`output_folder` creates a folder (and its parents) and proves it writable;
:func:`output_file` checks that a file can be written at a path and creates nothing. Both
raise :class:`~wasserflow.errors.EnvironmentProblem` naming the path when it is a file where a
folder is needed (or a folder where a file is), lies under a regular file, or cannot be
written. Writability is tested by creating an unnamed temporary file (``O_TMPFILE``), which a
crash cannot leave behind; permission bits alone would not do (root ignores them, read-only
mounts do not show in them). Imports nothing from wasserflow but its errors.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import EnvironmentProblem, os_hint


def _existing_ancestor(path: Path, what: str) -> Path:
    """The nearest existing path at or above ``path``; refuses a regular file above it."""
    for q in (path, *path.parents):
        if q.exists():
            if q != path and not q.is_dir():
                raise EnvironmentProblem(
                    f"the {what} {path} lies under {q}, which is a file, not a folder: "
                    "choose another path"
                )
            return q
    return Path(".")


def _probe(folder: Path, path: Path, what: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        where = f"in the {what} {path}" if folder == path else f"the {what} {path} (in {folder})"
        raise EnvironmentProblem(f"cannot write {where}: {os_hint(e)}") from e


def output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create the folder ``path`` if needed and check that files can be written in it."""
    p = Path(path)
    if _existing_ancestor(p, what) == p and not p.is_dir():
        raise EnvironmentProblem(f"the {what} {p} is a file, not a folder: choose a folder path")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EnvironmentProblem(f"cannot create the {what} {p}: {os_hint(e)}") from e
    _probe(p, p, what)
    return p


def output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Check that the file ``path`` can be written (its folder may not exist yet)."""
    p = Path(path)
    if p.is_dir():
        raise EnvironmentProblem(f"the {what} {p} is a folder: give a file name")
    found = _existing_ancestor(p, what)
    _probe(p.parent if found == p else found, p, what)
    return p
