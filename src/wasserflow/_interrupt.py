"""Ctrl-C while the command line loads its modules: exit 130 with one line, at once.

Loading the commands imports torch and POT (seconds of CPU). A ``KeyboardInterrupt`` raised in
the middle of an extension module's initialisation does not always unwind: once in 24 SIGINTs
sent to ``python -m wasserflow sample`` 0.1-3.6 s after its start, torch's pybind11 code
aborted the process (SIGABRT, "terminate called after throwing an instance of
pybind11::error_already_set ... KeyboardInterrupt") instead of the one line and exit 130. While
:func:`exit_on_ctrl_c` is active no exception is raised at all: the signal is taken by a
handler that writes the line and ends the process directly. Nothing has been written by then,
so there is nothing to clean up.

Only where Ctrl-C is on (Python's own handler is installed): a process started with SIGINT
ignored (a background job of a non-interactive shell, ``nohup``) keeps ignoring it; and only in
the main thread, where Python runs signal handlers. Standard library only: it is imported
before anything heavy.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

LINE = b"interrupted\n"
CODE = 130


def _exit(signum, frame) -> None:  # noqa: ARG001 (the signal handler's signature)
    os.write(2, LINE)
    os._exit(CODE)


@contextmanager
def exit_on_ctrl_c() -> Iterator[None]:
    """Within the block, SIGINT ends the process at once with :data:`LINE` and :data:`CODE`
    (module doc); Python's own handler is back afterwards."""
    on = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if not on:
        yield
        return
    signal.signal(signal.SIGINT, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
