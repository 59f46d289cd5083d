"""What the command line prints: the consoles, tables that never cut a number, and progress
that reaches a pipe as it happens.

* :class:`WideConsole`: rich's console, except that a pipe or a file (not a terminal) gets lines
  as long as they need (:data:`PIPE_WIDTH`) instead of the 80 columns rich assumes there.
* :func:`print_table`: a table whose cells are never cut or folded. Each column is at least as
  wide as its longest cell word (cells break only at spaces, headers at spaces); when even
  those widths exceed the console, the columns are split into several tables, each repeating
  the leading ``keys`` columns (as pandas prints a wide frame).
* :class:`ProgressReport`: rich's live bar on a terminal; elsewhere one plain line per change of
  stage or per ``every`` seconds, written and flushed at once (``reproduce | tee log`` shows
  the run as it goes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

PIPE_WIDTH = 1000
"""Columns of a console that writes to a pipe or a file (lines are not wrapped before this)."""
_BORDER = 3  # a column's share of the box: "│ " before and " " after its text


class WideConsole(Console):
    """A console that is as wide as a terminal when it writes to one, and :data:`PIPE_WIDTH`
    wide otherwise (unless a width was given)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def _fit(lower: list[int], upper: list[int], room: int) -> list[int]:
    """Column widths between ``lower`` and ``upper`` summing to at most ``room`` (which is at
    least sum(lower)): the columns needing the least extra get it first."""
    widths = list(lower)
    spare = room - sum(lower)
    for i in sorted(range(len(lower)), key=lambda i: upper[i] - lower[i]):
        extra = min(upper[i] - lower[i], spare)
        widths[i] += extra
        spare -= extra
    return widths


def _groups(lower: list[int], keys: int, room: int) -> list[list[int]]:
    """Split the columns after the ``keys`` leading ones into groups that fit ``room``
    together with the key columns (a group holds one column at least)."""
    base = sum(lower[:keys]) + _BORDER * keys
    groups: list[list[int]] = [[]]
    used = base
    for i in range(keys, len(lower)):
        need = lower[i] + _BORDER
        if groups[-1] and used + need > room:
            groups.append([])
            used = base
        groups[-1].append(i)
        used += need
    return [list(range(keys)) + g for g in groups]


def print_table(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    keys: int = 1,
    justify: Sequence[str] | None = None,
) -> None:
    """Print ``rows`` under ``columns`` without cutting any cell (module docstring).

    ``keys``: the leading columns repeated in every part when the table is split;
    ``justify``: "left" or "right" per column (default: the first column left, the rest right).
    """
    justify = list(justify or ["left"] + ["right"] * (len(columns) - 1))
    cells = [[str(c) for c in row] for row in rows]
    lower = [
        max([_longest_word(h)] + [_longest_word(r[i]) for r in cells])
        for i, h in enumerate(columns)
    ]
    upper = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(columns)]
    room = console.width - 1  # the box's closing border
    keys = min(keys, len(columns) - 1)
    fits = sum(lower) + _BORDER * len(columns) <= room
    groups = [list(range(len(columns)))] if fits else _groups(lower, keys, room)
    for part, group in enumerate(groups):
        free = room - _BORDER * len(group)
        widths = _fit([lower[i] for i in group], [upper[i] for i in group], max(free, 0))
        more = f" ({part + 1}/{len(groups)})" if len(groups) > 1 else ""
        table = Table(title=escape(title) + more)
        for i, w in zip(group, widths, strict=True):
            table.add_column(escape(columns[i]), justify=justify[i], width=w, overflow="fold")
        for r in cells:
            table.add_row(*(escape(r[i]) for i in group))
        console.print(table)


class ProgressReport:
    """Progress of a long command (module docstring): ``update(completed, **fields)`` moves it.

    ``text`` formats a plain line from ``completed``, ``total``, ``percent``, ``elapsed`` (like
    "1:02:03") and the fields; ``stage``: the field whose change prints a line at once.
    ``columns``: rich's columns of the live bar (its fields are the same)."""

    def __init__(
        self,
        console: Console,
        total: float,
        text: str,
        columns: Sequence,
        *,
        stage: str | None = None,
        every: float = 10.0,
        **fields,
    ):
        self.console, self.total, self.text, self.columns = console, total, text, columns
        self.stage, self.every, self.fields = stage, every, dict(fields)
        self._bar: Progress | None = None
        self._last = -float("inf")
        self._last_stage: object = None
        self._start = time.monotonic()

    def __enter__(self) -> ProgressReport:
        if self.console.is_terminal:
            self._bar = Progress(*self.columns, console=self.console)
            self._bar.__enter__()
            fields = dict(self.fields)
            description = fields.pop("description", "")
            self._task = self._bar.add_task(description, total=self.total, **fields)
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def grow(self, total: float) -> None:
        """A larger total (a stage more than announced, e.g. a teacher trained first)."""
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def update(self, completed: float, **fields) -> None:
        self.fields.update(fields)
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, **fields)
            return
        now = time.monotonic()
        stage = self.fields.get(self.stage) if self.stage else None
        if now - self._last < self.every and stage == self._last_stage and completed < self.total:
            return
        self._last, self._last_stage = now, stage
        seconds = int(now - self._start)
        line = self.text.format(
            completed=completed,
            total=self.total,
            percent=100 * completed / self.total if self.total else 100.0,
            elapsed=f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
            **self.fields,
        )
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        self.console.file.flush()


def bar_columns(*texts: str) -> tuple:
    """The live bar's columns: ``texts`` (rich's ``TextColumn`` templates) around a bar, with
    the time elapsed and the time left."""
    first, *rest = texts
    return (TextColumn(first), BarColumn(), *(TextColumn(t) for t in rest)) + (
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
