"""The memory this process may still allocate, read from the operating system (no psutil).

:func:`available_bytes` is the smaller of the kernel's estimate of memory available without
swapping (``MemAvailable`` of ``/proc/meminfo``; ``sysconf`` elsewhere) and what the process's
cgroup (v2 ``memory.max - memory.current``, v1 ``limit_in_bytes - usage_in_bytes``) leaves; None
where neither can be read.
"""

from __future__ import annotations

import os
from pathlib import Path

_CGROUP = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
    ),
)


def _meminfo() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup() -> int | None:
    for limit_path, usage_path in _CGROUP:
        try:
            limit = Path(limit_path).read_text().strip()
            usage = int(Path(usage_path).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:  # "max" or a huge number: no limit
            return max(int(limit) - usage, 0)
    return None


def available_bytes() -> int | None:
    """Bytes this process may allocate without swapping or hitting its cgroup's limit."""
    known = [v for v in (_meminfo(), _cgroup()) if v is not None]
    return min(known) if known else None


def gib(n: float) -> str:
    """``n`` bytes in GiB for a message: "61.1 GiB"."""
    return f"{n / 2**30:.3g} GiB"
