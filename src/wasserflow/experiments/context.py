"""What every experiment receives (:class:`Context`) and returns (:class:`ExperimentResult`).

An experiment is ``run(ctx) -> ExperimentResult``: it reads its profile from ``ctx.config``,
measures into a typed record (its numbers; results.json holds them as JSON, see
:mod:`.records`), judges the claim with a :class:`Verdict` whose :class:`Check` s are the numbers
compared, and builds its tables and figures (PNG files under ``ctx.out/figures``) from the record.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from ..metrics import Interval
from .records import from_json, to_json

if TYPE_CHECKING:
    from .config import ReproduceConfig

R = TypeVar("R")

_RELATIONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt}


Measured = float | Interval | None
"""A number a check compares: a value, a value with its interval, or None (not computed)."""


def _ends(v: float | Interval) -> tuple[float, float]:
    if isinstance(v, Interval):
        return v.lower, math.inf if v.upper is None else v.upper
    return v, v


def measured(v: Measured, digits: int = 3) -> str:
    """A checked number as verdict texts print it: "0.258 +- 0.010", "[0, 1.34]" or "0.258"."""
    if v is None:
        return "n/a"
    return str(v) if isinstance(v, Interval) else f"{v:.{digits}g}"


def _plain(v: Measured) -> Measured:
    return v.plain() if isinstance(v, Interval) else v


@dataclass(frozen=True)
class Check:
    """One comparison a verdict rests on: ``value relation bound``, a measured number against a
    tolerance or against another measured number (``what`` names both). Either side may carry
    its interval (:class:`~wasserflow.metrics.Interval`); the check then holds only when the
    margin exceeds both intervals ("<": the value's upper end below the bound's lower end). A
    value or bound of None (a number that could not be computed) does not hold."""

    what: str
    value: Measured
    relation: str
    bound: Measured

    def __post_init__(self) -> None:
        if self.relation not in _RELATIONS:
            raise ValueError(f"relation {self.relation!r}: choose one of {', '.join(_RELATIONS)}")
        # results.json keeps the interval itself (a CouplingGap's bounds stay in the record)
        object.__setattr__(self, "value", _plain(self.value))
        object.__setattr__(self, "bound", _plain(self.bound))

    @property
    def holds(self) -> bool:
        if self.value is None or self.bound is None:
            return False
        (v_lo, v_hi), (b_lo, b_hi) = _ends(self.value), _ends(self.bound)
        if self.relation == ">":
            return bool(v_lo > b_hi)
        return bool(_RELATIONS[self.relation](v_hi, b_lo))

    def __str__(self) -> str:
        return f"{measured(self.value)} {self.relation} {measured(self.bound)}"


@dataclass(frozen=True)
class Verdict:
    """A one-line verdict computed from the numbers: ``holds`` and the sentence saying by how
    much (``None`` holds: pending, e.g. too few methods to compare), and the :class:`Check` s it
    rests on (saved with it: a run over several seeds reports their spread from them)."""

    holds: bool | None
    text: str
    checks: tuple[Check, ...] = ()

    @classmethod
    def judge(cls, checks: list[Check], text: str) -> Verdict:
        """Holds when every check holds; the text starts with "holds: " or "does not hold: "."""
        holds = all(c.holds for c in checks)
        return cls(holds, f"{'holds' if holds else 'does not hold'}: {text}", tuple(checks))


@dataclass(frozen=True)
class Table:
    """A report table: rows of numbers or strings under named columns."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Figure:
    """A report figure: the PNG's path relative to the run folder, and its caption."""

    file: str
    caption: str


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A :class:`Table` (columns and rows copied into lists; a number with its interval written
    as results.json and the report show it, "0.258 +- 0.010" or "[0, 1.34]")."""
    return Table(title, list(columns), [[_cell(v) for v in r] for r in rows])


def _cell(v: Any) -> Any:
    return measured(v, 4) if isinstance(v, Interval) else v


@dataclass
class ExperimentResult:
    """One experiment's outcome: claim, verdict, tables, figures and every number.

    ``numbers`` is the experiment's record as JSON (what results.json holds); :meth:`record`
    reads it back as its dataclass."""

    name: str
    title: str
    claim: str
    verdict: Verdict
    numbers: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentResult:
        return from_json(cls, d, "result")

    def record(self, cls: type[R]) -> R:
        """The numbers as the experiment's record ``cls``."""
        return from_json(cls, self.numbers, f"{self.name}.numbers")


@dataclass
class Context:
    """Run folder, resolved config, device, seed, the progress callback of one run, and how
    many worker processes an experiment may run its independent jobs in (:mod:`.workers`)."""

    out: Path
    config: ReproduceConfig
    device: str = "cpu"
    progress: Callable[[str, float], None] | None = None
    results: dict[str, ExperimentResult] = field(default_factory=dict)
    workers: int = 1

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def figures(self) -> Path:
        p = self.out / "figures"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded by the run's seed plus ``offset`` (one per random stream)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)

    def report(self, detail: str, fraction: float) -> None:
        """Tell the progress bar what runs now and how far this experiment is (0..1)."""
        if self.progress is not None:
            self.progress(detail, min(max(float(fraction), 0.0), 1.0))
