"""The command line's output: tables never cut a cell, a pipe gets wide lines, and progress
reaches a pipe line by line as it happens."""

import io

import pytest

from wasserflow.cli.output import PIPE_WIDTH, ProgressReport, WideConsole, bar_columns, print_table

COLUMNS = ["sampler", "NFE", "W2", "FD", "path energy", "curvature", "coupling gap"]
COLUMNS += ["W2^2(noise, samples)", "seconds"]
ROWS = [
    ["euler", "1", "1.113e-05", "123.4", "-1.22e-05", "4.567", "0.0123 [0.011, 0.014]"]
    + ["12.34 [12.1, 12.5]", "0.12"],
    ["dopri5", "126", "0.04567", "3.456e+04", "2.345", "-0.001234", "-1.22e-05", "2.3456"]
    + ["130.25"],
]


def rendered(width: int | None, terminal: bool) -> str:
    buf = io.StringIO()
    console = WideConsole(file=buf, width=width, force_terminal=terminal, color_system=None)
    print_table(console, "otcfm: 2000 samples against 2000 data points", COLUMNS, ROWS, keys=2)
    return buf.getvalue()


@pytest.mark.parametrize("width", [80, 60, 40])
def test_a_narrow_terminal_splits_the_table_and_cuts_no_cell(width):
    text = rendered(width, True)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    words = {w for line in text.splitlines() for w in line.replace("│", " ").split()}
    for row in ROWS:
        for cell in row:
            assert set(cell.split()) <= words, cell  # every number whole on one line
    for header in COLUMNS:
        assert set(header.split()) <= words, header


def test_a_pipe_gets_one_line_per_row():
    text = rendered(None, False)
    assert WideConsole(file=io.StringIO()).width == PIPE_WIDTH
    assert WideConsole(file=io.StringIO(), width=80).width == 80  # a width given is kept
    for row in ROWS:
        assert any(all(c in line for c in row) for line in text.splitlines()), row
    assert "(1/" not in text  # not split


class Recorder(io.StringIO):
    """A pipe that remembers what had been flushed at each flush."""

    def __init__(self):
        super().__init__()
        self.flushed: list[str] = []

    def flush(self):
        self.flushed.append(self.getvalue())


def test_progress_in_a_pipe_is_plain_lines_flushed_as_they_go():
    pipe = Recorder()
    console = WideConsole(file=pipe)
    report = ProgressReport(
        console,
        10,
        "{part}: {description} ({completed}/{total}, {percent:.0f} %, {elapsed})",
        bar_columns("{task.fields[part]}", "{task.description}"),
        stage="part",
        every=3600.0,
        part="a",
        description="",
    )
    with report:
        report.update(1, description="first")  # the first update prints
        report.update(2, description="second")  # same stage, within `every`: silent
        report.update(5, part="b", description="third")  # a new stage prints
        assert pipe.flushed and pipe.flushed[-1].splitlines()[-1].startswith("b: third (5/10")
        report.update(10, description="done")  # the end prints
    lines = pipe.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["a: first", "b: third", "b: done"]
    assert lines[-1].startswith("b: done (10/10, 100 %, 0:00:0")
    assert "\x1b" not in pipe.getvalue()  # no terminal codes in a log


def test_help_paragraphs_are_not_hard_wrapped(capsys, monkeypatch):
    from _cli import run

    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run(["train", "--help"], capsys)
    assert code == 0
    assert any("naming the first's pid" in line for line in out.splitlines()), out


def test_reflow_joins_lines_but_keeps_lists_and_indented_lines():
    from wasserflow.cli.app import reflow

    text = "A first\nline.\n\nA second\nparagraph:\n* one\n  item\n* two\n\n    code line\n    more"
    assert reflow(text) == (
        "A first line.\n\nA second paragraph:\n* one\n  item\n* two\n\n    code line\n    more"
    )
    assert reflow(reflow(text)) == reflow(text)
