"""``wasserflow train``, ``sample`` and ``evaluate``: one engine for every model family."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .. import _atomic
from .._outputs import output_file, output_folder
from ..data import data_help
from ..engine.methods import METHODS
from ..errors import Interrupted, RunFolderError
from ..objectives import objective_spec
from .app import UsageError, app, console


def _parse_nfes(text: str) -> list[int | str]:
    from ..metrics import ADAPTIVE

    out: list[int | str] = []
    for part in text.split(","):
        part = part.strip()
        if part in ("adaptive", "auto"):
            out.append(ADAPTIVE)
            continue
        try:
            v = int(part)
        except ValueError:
            raise UsageError(
                f"--nfe {text!r}: give integers separated by commas, e.g. 1,2,4,8"
            ) from None
        if v < 1:
            raise UsageError(f"--nfe {text!r}: every NFE must be at least 1")
        out.append(v)
    return out


def _parse_sets(items: list[str], flag: str = "--set") -> dict:
    """``KEY=VALUE`` overrides; VALUE is JSON (numbers, objects) or a bare string."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"{flag} {item!r}: write KEY=VALUE, e.g. {flag} "
                + ("width=64" if flag == "--model-set" else "prediction=velocity")
            )
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


_MODEL_OPTIONS = ("width", "depth", "activation", "time_embedding")


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line (not left at its default)."""
    src = ctx.get_parameter_source(name)
    return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")


def _resume_settings(ctx: typer.Context, stored, p: dict) -> dict:
    """The settings given on the command line, as dotted keys of the stored run's config."""
    keys = {
        "lr": "train.lr",
        "batch_size": "train.batch_size",
        "seed": "train.seed",
        "grad_clip": "train.grad_clip",
        "scale": "data.scale",
        "data": "data.spec",
        "model": "model.name",
        "steps": objective_spec(stored.objective).steps_key,
        **{k: f"model.{k}" for k in _MODEL_OPTIONS},
    }
    given = {key: p[name] for name, key in keys.items() if _given(ctx, name)}
    if "train.grad_clip" in given:
        given["train.grad_clip"] = given["train.grad_clip"] or None
    given.update({f"model.{k}": v for k, v in _parse_sets(p["model_set"], "--model-set").items()})
    given.update(_parse_sets(p["set_"]))
    return given


def _resumed_config(ctx: typer.Context, out: Path, p: dict):
    """The run in ``out`` and the changes the command line asks of it (refused if not
    allowed on resume)."""
    from ..engine import load_config
    from ..engine.folder import CONFIG, changes_on_resume

    if not out.is_dir():
        raise RunFolderError(f"{out} does not exist: there is no run to resume (drop --resume)")
    if not (out / CONFIG).is_file():
        raise RunFolderError(f"{out} holds no run (no {CONFIG}): drop --resume to start one there")
    stored = load_config(out / CONFIG)
    method = p["method"] if _given(ctx, "method") else None
    try:
        changes = changes_on_resume(stored, _resume_settings(ctx, stored, p), method=method)
    except RunFolderError as e:
        raise RunFolderError(f"{out}: {e}") from None
    return stored, changes


@app.command("train")
def train_command(
    ctx: typer.Context,
    method: str = typer.Option(
        None,
        help=", ".join(METHODS) + " (required unless --resume)",
    ),
    data: str = typer.Option(
        None,
        help=data_help() + " (,flip: random horizontal flips; required unless --resume)",
    ),
    steps: int = typer.Option(
        None,
        min=1,
        help="optimiser steps (default 2000); for jko-flow "
        "the number of blocks (JKO steps, default 24)",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="run folder"),
    batch_size: int = typer.Option(256, min=1),
    lr: float = typer.Option(1e-3),
    seed: int = typer.Option(0),
    model: str = typer.Option("mlp", "--model", help="the backbone (a registered model name)"),
    model_set: list[str] = typer.Option(
        [],
        "--model-set",
        help="a backbone option, KEY=VALUE, repeatable: e.g. --model-set width=64",
    ),
    width: int = typer.Option(None, min=1, help="the MLP's width (= --model-set width=...)"),
    depth: int = typer.Option(None, min=1, help="the MLP's hidden layers"),
    activation: str = typer.Option(None, help="the MLP's activation (default silu)"),
    time_embedding: str = typer.Option(
        None,
        help="the MLP's time features: sinusoidal "
        "(default) or linear (t as an input, TorchCFM's net)",
    ),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="override a key of the run configuration, "
        "KEY=VALUE (JSON or a string), repeatable: dotted keys "
        "(objective.prediction, coupling.ot_batch, train.log_every) "
        "or short ones (prediction, time_input, times, schedule, "
        "sampler, ot_batch, ...)",
    ),
    scale: str = typer.Option("none", help="data scaling: none or standard"),
    grad_clip: float = typer.Option(1.0, help="gradient-norm clipping (0: off)"),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="continue the run in --out (which must exist and hold one) from its last "
        "checkpoint, with its own config.json. --steps and --lr may change it (each change is "
        "recorded in history.jsonl); any other option given must equal the run's",
    ),
    device: str = typer.Option("cpu", help="where the network runs: cpu or cuda"),
    nproc: int = typer.Option(
        1,
        "--nproc",
        min=1,
        help="data-parallel processes on this machine: runs this command under "
        "'torchrun --standalone --nproc-per-node N' (one GPU each with --device cuda); "
        "--batch-size stays the global batch",
    ),
) -> None:
    """Train one model family on one data set; checkpoints and metrics go to --out.

    A run folder is written by one process at a time (a second is refused, naming the first's
    pid). Ctrl-C keeps the last checkpoint: continue with --resume. Under torchrun
    (``torchrun --nproc-per-node N -m wasserflow train ...``) the N processes train one run
    data-parallel with the one-process objective; rank 0 writes the folder.
    """
    import sys

    from ..engine import distributed, make_config, train_run

    if nproc > 1 and not distributed.launched():
        argv = sys.argv[1:]
        if not argv or argv[0] != "train":
            raise UsageError("--nproc works from the command line: launch torchrun yourself")
        cmd = distributed.torchrun_argv(nproc, argv)
        os.execv(cmd[0], cmd)
    ranks, device = distributed.setup(device)
    main = ranks is None or ranks.main

    changes = None
    if resume:
        cfg, changes = _resumed_config(ctx, out, dict(ctx.params))
    else:
        for name, flag in (("method", "--method"), ("data", "--data")):
            if ctx.params[name] is None:
                raise UsageError(f"{flag} is required to start a run (or pass --resume)")
        cfg = make_config(
            method,
            data,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            model=model,
            model_options=_parse_sets(model_set, "--model-set"),
            width=width,
            depth=depth,
            activation=activation,
            time_embedding=time_embedding,
            scale=scale,
            grad_clip=grad_clip or None,
            overrides=_parse_sets(set_) or None,
        )
    total, stages = (changes or {}).get("train.steps", cfg.train.steps), cfg.stages
    if not main:  # other ranks train silently; rank 0 reports
        try:
            train_run(cfg, out, resume=resume, changes=changes, device=device, ranks=ranks)
        finally:
            distributed.shutdown()
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"{cfg.method} on {cfg.data.spec}", total=total * stages, loss="-")
        offsets: dict[str, int] = {}
        told = []

        def tell_changes() -> None:
            flat = cfg.to_dict()
            for key, new in (changes or {}).items():
                old = flat[key.split(".")[0]][key.split(".")[1]]
                console.print(f"changed {key} {old!r} -> {new!r} (recorded in history.jsonl)")
            told.append(True)

        def progress(stage: str, step: int, record: dict) -> None:
            if not told:
                tell_changes()
            off = offsets.setdefault(stage, len(offsets) * total)
            bar.update(task, completed=off + step, loss=f"{record['loss']:.4g}")

        try:
            results = train_run(
                cfg,
                out,
                resume=resume,
                changes=changes,
                progress=progress,
                device=device,
                ranks=ranks,
            )
        finally:
            distributed.shutdown()
        if not told:
            tell_changes()
    last = results[-1] if results else None
    if last is not None and last.resumed_from < last.steps:
        console.print(
            f"trained {last.steps} steps, final loss {last.final_loss:.4g}, "
            f"{last.seconds:.1f} s; run folder {out}"
        )
    else:
        console.print(f"{out} was already complete")


@app.command("sample")
def sample_command(
    run: Path = typer.Argument(..., help="run folder written by 'wasserflow train'"),
    sampler: str = typer.Option(None, help="sampler (default: the method's own)"),
    nfe: int = typer.Option(
        None, min=1, help="network evaluations (default: 100; dopri5 adaptive)"
    ),
    n: int = typer.Option(2000, min=1, help="number of samples"),
    out: Path = typer.Option(..., "--out", "-o", help=".npy, .pt or .csv file to write"),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu", help="where the network runs: cpu or cuda"),
) -> None:
    """Draw samples from a trained run with the sampler its checkpoint config prescribes.

    Under torchrun (``torchrun --nproc-per-node N -m wasserflow sample ...``) the N processes
    share the network's evaluations and draw the one-process samples; rank 0 writes them."""
    from ..engine import distributed, load_run

    if out.suffix not in (".npy", ".pt", ".csv"):
        raise UsageError(f"{out}: the output must end in .npy, .pt or .csv")
    output_file(out)
    ranks, device = distributed.setup(device)
    try:
        r = load_run(run, device=device, ranks=ranks)
        try:
            res = r.sample(
                n, sampler=sampler, nfe=nfe, generator=torch.Generator().manual_seed(seed)
            )
        except KeyboardInterrupt as e:
            raise Interrupted(f"interrupted while sampling: nothing was written to {out}") from e
    finally:
        distributed.shutdown()
    if ranks is not None and not ranks.main:
        return  # every rank holds the samples; rank 0 writes them
    x = res.x.to(torch.float32)
    with _atomic.atomic_path(out) as tmp:
        if out.suffix == ".npy":
            import numpy as np

            with open(tmp, "wb") as f:
                np.save(f, x.numpy())
        elif out.suffix == ".pt":
            torch.save(x, tmp)
        else:
            import numpy as np

            np.savetxt(tmp, x.reshape(n, -1).numpy(), delimiter=",")
    console.print(f"{n} samples ({res.sampler}, {res.nfe} NFE) written to {out}")


IMAGE_NFES: list[int | str] = [1, 2, 4, 8, 16, 32, 100, "adaptive"]
"""Default budgets of an image run (the 2-D default is 1, 2, 4, 8, 16)."""


def _features_for(r, features: str | None, device: str):
    """The feature extractor ``--features`` names (default: the image shape's own; none for
    point clouds; 'none' switches it off)."""
    if features == "none" or (features is None and len(r.shape) != 3):
        return None
    from ..metrics import default_feature_extractor, feature_extractor

    if features is None:
        return default_feature_extractor(r.shape, device)
    return feature_extractor(features, device)


@app.command("evaluate")
def evaluate_command(
    run: Path = typer.Argument(None, help="run folder (or --from for a model trained elsewhere)"),
    nfe: str = typer.Option(
        None,
        help="NFE budgets, comma-separated; 'adaptive' samples with dopri5 (default "
        "1,2,4,8,16; image runs 1,2,4,8,16,32,100,adaptive; a JKO flow: its own blocks)",
    ),
    n: int = typer.Option(2000, min=2, help="generated and reference data points"),
    sampler: str = typer.Option(None, help="sampler (default: the method's own)"),
    seed: int = typer.Option(0),
    features: str = typer.Option(
        None,
        help="Frechet distance features: digits8, mnist28, inception, a .safetensors feature "
        "net, or none (default: the image shape's own; none for point clouds)",
    ),
    grids: Path = typer.Option(
        None, help="image runs: write a PNG grid of the samples of each budget into this folder"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    device: str = typer.Option("cpu", help="where the network runs: cpu or cuda"),
    source: str = typer.Option(
        None,
        "--from",
        help="a model trained elsewhere: diffusers:DIR (save_pretrained folder) or "
        "torchcfm:CKPT (a state dict, CKPT#KEY one entry of it; with --model, --model-set)",
    ),
    model: str = typer.Option(None, help="--from torchcfm: the backbone (unet, mlp)"),
    model_set: list[str] = typer.Option(
        [], "--model-set", help="--from torchcfm: a backbone option, KEY=VALUE, repeatable"
    ),
    data: str = typer.Option(None, help="--from: the data spec the samples are compared with"),
) -> None:
    """W2 (and FD for images) to the data, NFE used, and the path-energy decomposition of the
    ODE each sampler solved (path energy = curvature + coupling gap + W2^2).

    Under torchrun the N processes share the network's evaluations of a run folder's sampling
    (every rank measures the same samples); rank 0 alone prints and writes the grids."""
    from ..engine import distributed
    from ..metrics import evaluate_run
    from .external import evaluated_model

    given = None if nfe is None else _parse_nfes(nfe)
    ranks, device = distributed.setup(device)
    main = ranks is None or ranks.main
    try:
        r = evaluated_model(source, run, model=model, model_set=model_set, data=data, device=device)
        image = len(r.shape) == 3
        nfes = (IMAGE_NFES if image else [1, 2, 4, 8, 16]) if given is None else given
        if given is None:
            nfes = r.budgets([k for k in nfes if k != "adaptive"], sampler) + (
                ["adaptive"] if image and "adaptive" in nfes and r.supports("dopri5") else []
            )
        extractor = _features_for(r, features, device)
        sink = None
        if grids is not None:
            if not image:
                raise UsageError("--grids needs an image run: this run's samples are points")
            output_folder(grids, "--grids folder")
            from .._image_grid import save_image_grid

            def sink(row, x):
                name = f"{row.sampler}-nfe{row.nfe_requested or 'adaptive'}.png"
                save_image_grid(x[:64], grids / name, scale=4 if r.shape[-1] <= 16 else 2)

        rows = evaluate_run(
            r,
            nfes,
            n=n,
            seed=seed,
            sampler=sampler,
            features=extractor,
            on_samples=sink if main else None,
        )
    finally:
        distributed.shutdown()
    if not main:
        return  # every rank measured the same samples; rank 0 reports
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run": str(run) if run is not None else source,
                    "method": r.method,
                    "results": [row.to_dict() for row in rows],
                }
            )
        )
        return
    m = rows[0].n_data if rows else n
    t = Table(title=f"{r.method}: {n} samples against {m} data points")
    cols = ["sampler", "NFE", "W2"] + (["FD"] if extractor is not None else [])
    cols += ["path energy", "curvature", "coupling gap", "W2^2(noise, samples)", "seconds"]
    for c in cols:
        t.add_column(c)
    f = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    for row in rows:
        t.add_row(
            row.sampler,
            str(row.nfe),
            f(row.w2),
            *([f(row.fd)] if extractor is not None else []),
            f(row.action),
            f(row.curvature),
            f(row.coupling_gap),
            f(row.endpoint_w2_squared),
            f"{row.seconds:.2f}",
        )
    console.print(t)
    console.print(
        "path energy = E int |v|^2 dt along the solved ODE, in the model's space; "
        "curvature = path energy - E|x1 - x0|^2, coupling gap = E|x1 - x0|^2 - W2^2"
    )
