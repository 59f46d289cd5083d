"""What every experiment receives (:class:`Context`) and returns (:class:`ExperimentResult`).

An experiment is ``run(ctx) -> ExperimentResult``; its numbers are plain JSON (the report and
results.json are built from them alone), its figures are PNG files under ``ctx.out/figures``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Verdict:
    """A one-line verdict computed from the numbers: ``holds`` and the sentence saying by how
    much (``None`` holds: pending, e.g. a solver that is not available)."""

    holds: bool | None
    text: str


@dataclass
class ExperimentResult:
    """One experiment's outcome: claim, verdict, tables, figures and every number (JSON)."""

    name: str
    title: str
    claim: str
    verdict: Verdict
    numbers: dict[str, Any]
    tables: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentResult:
        d = dict(d)
        d["verdict"] = Verdict(**d["verdict"])
        keep = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**keep)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A report table: rows of numbers or strings under named columns."""
    return {"title": title, "columns": list(columns), "rows": [list(r) for r in rows]}


@dataclass
class Context:
    """Run folder, resolved config, device, seed and the progress callback of one run."""

    out: Path
    config: dict[str, Any]
    device: str = "cpu"
    progress: Callable[[str, float], None] | None = None
    results: dict[str, ExperimentResult] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

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
