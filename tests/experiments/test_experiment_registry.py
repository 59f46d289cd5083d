"""The experiment registry of ``wasserflow reproduce``.

docs/design.md section 5 ("A reproduce experiment"): a toy experiment registered here runs
through ``wasserflow reproduce toy --profile test`` like the built-in ones and lands in
report.md and results.json; a rerun into its folder reuses it.
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from wasserflow.cli.app import main
from wasserflow.experiments import (
    EXPERIMENTS,
    PROFILES,
    Check,
    Context,
    ExperimentResult,
    Profile,
    Verdict,
    register_experiment,
    select,
)
from wasserflow.experiments import figures as report_figures
from wasserflow.experiments.context import table
from wasserflow.experiments.records import to_json

SRC = Path(__file__).resolve().parents[2] / "src" / "wasserflow" / "experiments"


# ------------------------------------------------------------------ a toy experiment (the recipe)


@dataclass(frozen=True)
class ToyProfile(Profile):
    """n draws of N(0, scale^2)."""

    n: int
    scale: float


@dataclass(frozen=True)
class ToyNumbers:
    n: int
    variance: float


TOY_PROFILES = {p: ToyProfile(n=400 * (i + 1), scale=2.0) for i, p in enumerate(PROFILES)}
CALLS: list[str] = []


def run_toy(ctx: Context) -> ExperimentResult:
    """The sample variance of n draws of N(0, s^2) is within 5 standard errors
    (s^2 sqrt(2 / (n - 1))) of s^2."""
    CALLS.append(ctx.config.profile)
    cfg = ctx.config.of(ToyProfile)
    x = cfg.scale * torch.randn(cfg.n, generator=ctx.generator(7), dtype=torch.float64)
    numbers = ToyNumbers(cfg.n, float(x.var()))
    s2 = cfg.scale**2
    error = abs(numbers.variance - s2)
    tolerance = 5 * s2 * math.sqrt(2 / (cfg.n - 1))
    return ExperimentResult(
        name="toy",
        title="Toy: a sample variance",
        claim="The sample variance of N(0, s^2) draws is s^2 to sampling error.",
        verdict=Verdict.judge(
            [Check("|variance - s^2|", error, "<", tolerance)],
            f"|{numbers.variance:.3f} - {s2:g}| = {error:.3f} < {tolerance:.3f}",
        ),
        numbers=to_json(numbers),
        tables=[table("Toy variance", ["n", "variance"], [[numbers.n, numbers.variance]])],
        figures=[
            report_figures.curves(
                ctx.figures,
                "toy",
                "Toy draws",
                [report_figures.Series(list(range(10)), x[:10].tolist(), "x")],
                xlabel="i",
                ylabel="x",
            )
        ],
    )


@pytest.fixture
def toy():
    register_experiment("toy", ToyProfile, title="A toy experiment", profiles=TOY_PROFILES)(run_toy)
    CALLS.clear()
    yield EXPERIMENTS["toy"]
    del EXPERIMENTS["toy"]


def test_a_registered_experiment_runs_through_the_command_line(toy, tmp_path, capsys):
    out = tmp_path / "r"
    main(["reproduce", "toy", "--profile", "test", "--out", str(out)])
    assert CALLS == ["test"]
    lines = capsys.readouterr().out.splitlines()  # not a terminal: progress as plain lines
    assert lines[0].startswith("toy: starting (0 % of all") and any(
        line.startswith("toy: holds") for line in lines
    )
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["toy"] == {"n": 400, "scale": 2.0}  # TOY_PROFILES["test"]
    res = data["experiments"]
    assert set(res) == {"toy"}
    assert res["toy"]["verdict"]["holds"] is True
    assert res["toy"]["verdict"]["text"].startswith("holds: |")
    assert res["toy"]["numbers"]["n"] == 400
    assert res["toy"]["tables"][0]["rows"] == [[400, res["toy"]["numbers"]["variance"]]]
    md = (out / "report.md").read_text()
    assert "## A toy experiment (`toy`)" in md and "**Toy variance**" in md
    assert "| toy | HOLDS |" in md and "figures/toy.png" in md
    assert (out / "figures" / "toy.png").is_file()
    # a rerun into the folder resolves to the same config and reuses the finished result
    main(["reproduce", "toy", "--profile", "test", "--out", str(out)])
    assert CALLS == ["test"]


def test_registration_refuses_what_does_not_fit(toy):
    with pytest.raises(ValueError, match="registered twice"):
        register_experiment("toy", ToyProfile, title="x", profiles=TOY_PROFILES)
    with pytest.raises(ValueError, match="a value for each of test, quick, default, full"):
        register_experiment("toy2", ToyProfile, title="x", profiles={"test": TOY_PROFILES["test"]})
    with pytest.raises(ValueError, match="requires nothing-here"):
        register_experiment("toy2", None, title="x", requires=("nothing-here",))
    with pytest.raises(ValueError, match="smaller order"):
        register_experiment("toy2", None, title="x", order=0, requires=("learned",))
    with pytest.raises(TypeError, match="Profile dataclass"):
        register_experiment("toy2", dict, title="x", profiles=TOY_PROFILES)  # type: ignore[arg-type]
    assert "toy2" not in EXPERIMENTS


def test_selection_adds_requirements_in_run_order():
    assert select(["images", "steps"]) == ["learned", "steps", "images"]
    assert select(None) == [
        "paths", "learned", "steps", "free-energy", "denoise-jko", "images", "one-step",
        "guidance",
    ]  # fmt: skip
    assert select(["one-step"]) == ["learned", "images", "one-step"]
    with pytest.raises(ValueError, match="unknown experiment"):
        select(["nonsense"])


# ------------------------------------------------------------------ size


def test_no_function_in_experiments_is_longer_than_80_lines():
    long = []
    for path in sorted(SRC.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
