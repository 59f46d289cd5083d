"""``wasserflow reproduce``: measure the paper's claims and write a report (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import EnvironmentProblem
from ..experiments import EXPERIMENTS
from .app import UsageError, app, console
from .output import ProgressReport, bar_columns


def _names() -> str:
    """The registered experiments, for the help: "a, b or c"."""
    names = list(EXPERIMENTS)
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


def _split(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def _run_with_bar(names: list[str], run):
    """``run(progress)`` under a progress bar in which each experiment has its weight."""
    weights = {n: EXPERIMENTS[n].weight for n in names}
    offset, acc = {}, 0.0
    for n in names:
        offset[n] = acc
        acc += weights[n]
    with ProgressReport(
        console,
        acc,
        "{part}: {description} ({percent:.0f} % of all, {elapsed})",
        bar_columns("[bold]{task.fields[part]}", "{task.percentage:>3.0f}%", "{task.description}"),
        stage="part",
        part="reproduce",
        description="",
    ) as bar:

        def progress(name: str, detail: str, frac: float) -> None:
            bar.update(offset[name] + frac * weights[name], part=name, description=detail)

        return run(progress)


@app.command("reproduce")
def reproduce_command(
    experiment: str = typer.Argument(
        None,
        help=f"{_names()} (comma-separated; default: all)",
    ),
    profile: str = typer.Option(
        "default",
        help="quick (< 3 min), default (< 8 min) on 2 CPU cores, full (GPU), test (the test suite)",
    ),
    methods: str = typer.Option(
        None, help="comma-separated methods (default: all of 'wasserflow train')"
    ),
    data: str = typer.Option(
        None, help="comma-separated data sets for 'learned' (default: the profile's)"
    ),
    image_data: str = typer.Option(
        None,
        help="image data for 'images' (default: the 8 x 8 digits): mnist:FILE, "
        "cifar10:FILE|FOLDER, images:FOLDER, array:FILE (with --profile full on a GPU)",
    ),
    out: Path = typer.Option(
        Path("wasserflow-out/reproduce"), "--out", "-o", help="run folder (a rerun into it resumes)"
    ),
    seed: int = typer.Option(0, min=0),
    seeds: int = typer.Option(
        None,
        min=1,
        max=100,
        help="train and sample with seeds --seed onwards, one folder each, and report their "
        "spread (default: the profile's, 3 for full and 1 otherwise)",
    ),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    workers: int = typer.Option(
        None,
        min=1,
        max=256,
        help="processes that train the models at once, one torch thread per core share "
        "(default: one per core on cpu, 1 on cuda)",
    ),
) -> None:
    """Run the experiments and write report.html, report.md and results.json to --out."""
    import torch

    from ..experiments import reproduce, resolve_config, select
    from ..experiments.workers import default_workers

    if device not in ("cpu", "cuda"):
        raise UsageError(f"--device {device!r}: choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise EnvironmentProblem("--device cuda: no CUDA device is available; use --device cpu")
    cfg = resolve_config(
        profile,
        methods=_split(methods),
        data=_split(data),
        image_data=image_data,
        seed=seed,
        seeds=seeds,
    )
    names = select(_split(experiment))
    workers = default_workers(device) if workers is None else workers
    results = _run_with_bar(
        names,
        lambda progress: reproduce(
            out, cfg, experiments=names, device=device, progress=progress, workers=workers
        ),
    )
    for n in names:
        r = results.get(n)
        if r is not None:
            mark = {
                True: "[green]holds[/]",
                False: "[red]does not hold[/]",
                None: "[yellow]pending[/]",
            }[r.verdict.holds]
            console.print(f"{n}: {mark} ({r.seconds:.1f} s)")
    console.print(f"report: {out / 'report.html'}")
