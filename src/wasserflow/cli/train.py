"""``wasserflow train``, ``sample`` and ``evaluate``: one engine for every model family."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console

from .. import (
    _atomic,
    interop,  # noqa: F401  (registers the diffusers: and torchcfm: teachers)
)
from .._outputs import output_file, output_folder
from ..data import data_help
from ..engine import GenerativeModel, RunConfig, TrainResult
from ..engine.methods import METHODS
from ..errors import Interrupted, RunFolderError
from ..objectives import objective_spec
from .app import UsageError, app, console
from .guidance import (
    CfgWOption,
    ClassOption,
    GuidanceOption,
    IntervalOption,
    guidance_of,
    parse_scales,
    print_sweep,
)
from .output import ProgressReport, bar_columns, print_table


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
    if p["conditional"] and stored.condition is None:
        given["condition"] = {}  # refused below: a run cannot become conditional on resume
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


MethodOption = Annotated[str, typer.Option(help=", ".join(METHODS) + " (required unless --resume)")]
DataOption = Annotated[
    str,
    typer.Option(
        help=data_help() + " (,flip: random horizontal flips; required unless --resume)",
    ),
]
StepsOption = Annotated[
    int,
    typer.Option(
        min=1,
        help="optimiser steps (default 2000); for jko-flow "
        "the number of blocks (JKO steps, default 24)",
    ),
]
RunOutOption = Annotated[Path, typer.Option("--out", "-o", help="run folder")]
BackboneOption = Annotated[
    str, typer.Option("--model", help="the backbone (a registered model name)")
]
ModelSetOption = Annotated[
    list[str],
    typer.Option(
        "--model-set",
        help="a backbone option, KEY=VALUE, repeatable: e.g. --model-set width=64",
    ),
]
WidthOption = Annotated[int, typer.Option(min=1, help="the MLP's width (= --model-set width=...)")]
DepthOption = Annotated[int, typer.Option(min=1, help="the MLP's hidden layers")]
ActivationOption = Annotated[str, typer.Option(help="the MLP's activation (default silu)")]
TimeEmbeddingOption = Annotated[
    str,
    typer.Option(
        help="the MLP's time features: sinusoidal "
        "(default) or linear (t as an input, TorchCFM's net)",
    ),
]
SetOption = Annotated[
    list[str],
    typer.Option(
        "--set",
        help="override a key of the run configuration, "
        "KEY=VALUE (JSON or a string), repeatable: dotted keys "
        "(objective.prediction, coupling.ot_batch, train.log_every) "
        "or short ones (prediction, time_input, times, schedule, "
        "sampler, ot_batch, ...)",
    ),
]
ScaleOption = Annotated[str, typer.Option(help="data scaling: none or standard")]
GradClipOption = Annotated[float, typer.Option(help="gradient-norm clipping (0: off)")]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="continue the run in --out (which must exist and hold one) from its last "
        "checkpoint, with its own config.json. --steps and --lr may change it (each change is "
        "recorded in history.jsonl); any other option given must equal the run's",
    ),
]
DeviceOption = Annotated[str, typer.Option(help="where the network runs: cpu or cuda")]
ConditionalOption = Annotated[
    bool,
    typer.Option(
        "--conditional",
        help="class-conditional: the network takes the data's labels (a labelled data set), "
        "each dropped to a null class with probability condition.label_dropout (0.1), so it "
        "samples with classifier-free guidance (sample --class C --guidance S)",
    ),
]
NprocOption = Annotated[
    int,
    typer.Option(
        "--nproc",
        min=1,
        help="data-parallel processes on this machine: runs this command under "
        "'torchrun --standalone --nproc-per-node N' (one GPU each with --device cuda); "
        "--batch-size stays the global batch",
    ),
]


@app.command("train")
def train_command(
    ctx: typer.Context,
    method: MethodOption = None,
    data: DataOption = None,
    steps: StepsOption = None,
    out: RunOutOption = ...,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    lr: Annotated[float, typer.Option()] = 1e-3,
    seed: Annotated[int, typer.Option()] = 0,
    model: BackboneOption = "mlp",
    model_set: ModelSetOption = [],  # noqa: B006 (typer reads the default, never mutates it)
    width: WidthOption = None,
    depth: DepthOption = None,
    activation: ActivationOption = None,
    time_embedding: TimeEmbeddingOption = None,
    set_: SetOption = [],  # noqa: B006
    scale: ScaleOption = "none",
    grad_clip: GradClipOption = 1.0,
    resume: ResumeOption = False,
    device: DeviceOption = "cpu",
    nproc: NprocOption = 1,
    conditional: ConditionalOption = False,
) -> None:
    """Train one model family on one data set; checkpoints and metrics go to --out.

    A run folder is written by one process at a time (a second is refused, naming the first's
    pid). Ctrl-C keeps the last checkpoint: continue with --resume. Under torchrun
    (``torchrun --nproc-per-node N -m wasserflow train ...``) the N processes train one run
    data-parallel with the one-process objective; rank 0 writes the folder.
    """
    from ..engine import distributed, train_run

    if nproc > 1 and not distributed.launched():
        _relaunch_under_torchrun(nproc)
    ranks, device = distributed.setup(device)
    cfg, changes = _train_config(ctx, out, resume)
    if ranks is not None and not ranks.main:  # other ranks train silently; rank 0 reports
        try:
            train_run(cfg, out, resume=resume, changes=changes, device=device, ranks=ranks)
        finally:
            distributed.shutdown()
        return
    results = _train_with_progress(cfg, out, resume, changes, device, ranks)
    last = results[-1] if results else None
    if last is not None and last.resumed_from < last.steps:
        console.print(
            f"trained {last.steps} steps, final loss {last.final_loss:.4g}, "
            f"{last.seconds:.1f} s; run folder {out}"
        )
    else:
        console.print(f"{out} was already complete")


def _relaunch_under_torchrun(nproc: int) -> None:
    """Replace this process by ``torchrun`` running the same command on ``nproc`` ranks."""
    import sys

    from ..engine import distributed

    argv = sys.argv[1:]
    if not argv or argv[0] != "train":
        raise UsageError("--nproc works from the command line: launch torchrun yourself")
    cmd = distributed.torchrun_argv(nproc, argv)
    os.execv(cmd[0], cmd)


def _train_config(ctx: typer.Context, out: Path, resume: bool) -> tuple[RunConfig, dict | None]:
    """The run to train, from the command line's options, and the changes asked of a resumed
    run (None for a new run)."""
    from ..engine import make_config

    p = dict(ctx.params)
    if resume:
        return _resumed_config(ctx, out, p)
    for name, flag in (("method", "--method"), ("data", "--data")):
        if p[name] is None:
            raise UsageError(f"{flag} is required to start a run (or pass --resume)")
    cfg = make_config(
        p["method"],
        p["data"],
        steps=p["steps"],
        batch_size=p["batch_size"],
        lr=p["lr"],
        seed=p["seed"],
        model=p["model"],
        model_options=_parse_sets(p["model_set"], "--model-set"),
        **{k: p[k] for k in _MODEL_OPTIONS},
        scale=p["scale"],
        grad_clip=p["grad_clip"] or None,
        overrides={**({"condition": {}} if p["conditional"] else {}), **_parse_sets(p["set_"])}
        or None,
    )
    return cfg, None


def _train_with_progress(
    cfg: RunConfig, out: Path, resume: bool, changes: dict | None, device: str, ranks
) -> list[TrainResult]:
    """Train on rank 0 (or alone) with a progress bar; the changes of a resumed run are
    printed once training has taken them."""
    from ..engine import distributed, train_run

    total = (changes or {}).get("train.steps", cfg.train.steps)
    with ProgressReport(
        console,
        total * cfg.stages,
        "{description}: step {completed}/{total}, loss {loss} ({elapsed})",
        bar_columns(
            "[bold]{task.description}", "{task.completed}/{task.total} loss {task.fields[loss]}"
        ),
        description=f"{cfg.method} on {cfg.data.spec}",
        loss="-",
    ) as bar:
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
            if off + step > bar.total:  # a stage more (a teacher trained first)
                bar.grow(off + max(step, total))
            bar.update(off + step, loss=f"{record['loss']:.4g}")

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
    return results


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
    class_: ClassOption = None,
    guidance: GuidanceOption = None,
    cfg_w: CfgWOption = None,
    guidance_interval: IntervalOption = None,
) -> None:
    """Draw samples from a trained run with the sampler its checkpoint config prescribes;
    a class-conditional run samples --class C, guided at --guidance S (s = 1: off).

    Under torchrun (``torchrun --nproc-per-node N -m wasserflow sample ...``) the N processes
    share the network's evaluations and draw the one-process samples; rank 0 writes them."""
    from ..engine import distributed, load_run

    if out.suffix not in (".npy", ".pt", ".csv"):
        raise UsageError(f"{out}: the output must end in .npy, .pt or .csv")
    output_file(out)
    g = guidance_of(guidance, cfg_w, guidance_interval)
    ranks, device = distributed.setup(device)
    try:
        r = load_run(run, device=device, ranks=ranks)
        from ..samplers import get_sampler

        # the kinetic energy is not written: samplers that can skip it do
        skip = "energy" in get_sampler(sampler or r.default_sampler).options()
        try:
            res = r.sample(
                n,
                sampler=sampler,
                nfe=nfe,
                generator=torch.Generator().manual_seed(seed),
                options={"energy": False} if skip else None,
                labels=class_,
                guidance=g,
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
    how = f"{res.sampler}, {res.nfe} NFE"
    if class_ is not None:
        baked = r.context().distilled_guidance
        s_ = baked if baked is not None else (1.0 if g is None else g.scale)
        how += (
            f", {res.passes} network passes, class {class_}, guidance s = {s_:g} (w = {s_ - 1:g})"
            + (", distilled into the model" if baked is not None else "")
        )
    console.print(f"{n} samples ({how}) written to {out}")


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


EvalNfeOption = Annotated[
    str,
    typer.Option(
        help="NFE budgets, comma-separated; 'adaptive' samples with dopri5 (default "
        "1,2,4,8,16; image runs 1,2,4,8,16,32,100,adaptive; a JKO flow: its own blocks)",
    ),
]
FeaturesOption = Annotated[
    str,
    typer.Option(
        help="Frechet distance features: digits8, mnist28, inception, a .safetensors feature "
        "net, or none (default: the image shape's own; none for point clouds)",
    ),
]
GridsOption = Annotated[
    Path,
    typer.Option(
        help="image runs: write a PNG grid of the samples of each budget into this folder"
    ),
]
SourceOption = Annotated[
    str,
    typer.Option(
        "--from",
        help="a model trained elsewhere: diffusers:DIR (save_pretrained folder) or "
        "torchcfm:CKPT (a state dict, CKPT#KEY one entry of it; with --model, --model-set)",
    ),
]


@app.command("evaluate")
def evaluate_command(
    run: Annotated[
        Path, typer.Argument(help="run folder (or --from for a model trained elsewhere)")
    ] = None,
    nfe: EvalNfeOption = None,
    n: Annotated[int, typer.Option(min=2, help="generated and reference data points")] = 2000,
    sampler: Annotated[str, typer.Option(help="sampler (default: the method's own)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    features: FeaturesOption = None,
    grids: GridsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    device: DeviceOption = "cpu",
    source: SourceOption = None,
    model: Annotated[str, typer.Option(help="--from torchcfm: the backbone (unet, mlp)")] = None,
    model_set: Annotated[
        list[str],
        typer.Option(
            "--model-set", help="--from torchcfm: a backbone option, KEY=VALUE, repeatable"
        ),
    ] = [],  # noqa: B006 (typer reads the default, never mutates it)
    data: Annotated[
        str, typer.Option(help="--from: the data spec the samples are compared with")
    ] = None,
    guidance: Annotated[
        str,
        typer.Option(
            help="class-conditional runs: guidance scales s to sweep, e.g. 1,1.5,2,3 (per-class "
            "FD or W2, the classifier's accuracy on the samples, path energy; one --nfe budget)",
        ),
    ] = None,
    n_per_class: Annotated[
        int, typer.Option(min=2, help="--guidance: samples per class (default n / classes)")
    ] = None,
    guidance_interval: IntervalOption = None,
) -> None:
    """W2 (and FD for images) to the data, NFE used, and the path-energy decomposition of the
    ODE each sampler solved (path energy = curvature + coupling gap + W2^2).

    Under torchrun the N processes share the network's evaluations of a run folder's sampling
    (every rank measures the same samples); rank 0 alone prints and writes the grids."""
    from ..engine import distributed
    from .external import evaluated_model

    given = None if nfe is None else _parse_nfes(nfe)
    ranks, device = distributed.setup(device)
    main = ranks is None or ranks.main
    try:
        r: GenerativeModel = evaluated_model(
            source, run, model=model, model_set=model_set, data=data, device=device
        )
        extractor = _features_for(r, features, device)
        if guidance is not None:
            per = n_per_class or max(2, n // (r.num_classes or 1))
            opts = {"sampler": sampler, "seed": seed, "features": extractor}
            return _sweep(r, guidance, given, per, guidance_interval, as_json, main, opts)
        budgets = _budgets(r, given, sampler)
        sink = _grid_sink(r, grids)  # on every rank: each refuses a bad --grids alike
        shown = console if main and not as_json else _QUIET
        opts = {"n": n, "seed": seed, "sampler": sampler, "features": extractor}
        rows = _evaluated(r, budgets, shown, sink if main else None, opts)
    finally:
        distributed.shutdown()
    if not main:
        return  # every rank measured the same samples; rank 0 reports
    if as_json:
        name = str(run) if run is not None else source
        results = [row.to_dict() for row in rows]
        typer.echo(json.dumps({"run": name, "method": r.method, "results": results}))
        return
    _print_rows(r, rows, n, extractor is not None)


def _evaluated(r: GenerativeModel, budgets, shown, sink, opts: dict) -> list:
    """evaluate_run over ``budgets`` with a progress line per budget on ``shown``."""
    from ..metrics import evaluate_run

    with ProgressReport(
        shown,
        len(budgets),
        "evaluated {description} ({completed}/{total} budgets, {elapsed})",
        bar_columns("[bold]{task.description}", "{task.completed}/{task.total} budgets"),
        every=0.0,
        description=f"{r.method}: sampling",
    ) as bar:
        return evaluate_run(r, budgets, on_samples=_reporting(bar, sink), **opts)


def _sweep(r, scales, given, per, interval, as_json, main, opts) -> None:
    """``evaluate --guidance``: the guidance sweep of a class-conditional model (``per``
    samples per class; ``opts``: the sampler, seed and feature extractor)."""
    from ..metrics import ADAPTIVE, guidance_sweep
    from ..samplers import adaptive_sampler
    from .guidance import parse_interval

    if r.num_classes is None:
        raise UsageError(f"--guidance needs a class-conditional run; {r.method} is not one")
    if given is not None and len(given) != 1:
        raise UsageError("--guidance sweeps the scale at one budget: give one --nfe value")
    nfe = None if given is None else given[0]
    if nfe == ADAPTIVE:
        opts, nfe = {**opts, "sampler": adaptive_sampler()}, None
    rows = guidance_sweep(
        r,
        parse_scales(scales),
        n_per_class=per,
        nfe=nfe,
        interval=parse_interval(interval),
        **opts,
    )
    if not main:
        return None
    if as_json:
        typer.echo(json.dumps({"method": r.method, "results": [row.to_dict() for row in rows]}))
        return None
    print_sweep(r, rows, per)
    return None


def _budgets(r: GenerativeModel, given: list | None, sampler: str | None) -> list:
    """The NFE budgets to evaluate: those given, or the defaults of the model's shape that its
    sampler can take (adaptive for images, when dopri5 can drive it)."""
    if given is not None:
        return given
    image = len(r.shape) == 3
    nfes = IMAGE_NFES if image else [1, 2, 4, 8, 16]
    adaptive = ["adaptive"] if image and r.supports("dopri5") else []
    return r.budgets([k for k in nfes if k != "adaptive"], sampler) + adaptive


_QUIET = Console(quiet=True)


def _reporting(bar: ProgressReport, sink):
    """``evaluate_run``'s callback: the progress line of each budget, then ``sink``."""
    done = []

    def on_samples(row, x) -> None:
        done.append(row)
        bar.update(len(done), description=f"{row.sampler} at NFE {row.nfe}: W2 {row.w2:.4g}")
        if sink is not None:
            sink(row, x)

    return on_samples


def _grid_sink(r: GenerativeModel, grids: Path | None):
    """``--grids``: a callback writing each budget's samples as a PNG grid (None without)."""
    if grids is None:
        return None
    if len(r.shape) != 3:
        raise UsageError("--grids needs an image run: this run's samples are points")
    output_folder(grids, "--grids folder")
    from .._image_grid import save_image_grid

    def sink(row, x):
        name = f"{row.sampler}-nfe{row.nfe_requested or 'adaptive'}.png"
        save_image_grid(x[:64], grids / name, scale=4 if r.shape[-1] <= 16 else 2)

    return sink


def _print_rows(r: GenerativeModel, rows: list, n: int, fd: bool) -> None:
    """The evaluation as a table, with the path-energy decomposition explained."""
    m = rows[0].n_data if rows else n
    cols = ["sampler", "NFE", "W2"] + (["FD"] if fd else [])
    cols += ["path energy", "curvature", "coupling gap", "W2^2(noise, samples)", "seconds"]
    f = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    b = lambda v: "-" if v is None else v.bracket()  # noqa: E731  an interval: [lower, upper]
    cells = [
        [row.sampler, str(row.nfe), f(row.w2), *([f(row.fd)] if fd else [])]
        + [f(row.action), f(row.curvature), b(row.coupling_gap), b(row.endpoint_w2_squared)]
        + [f"{row.seconds:.2f}"]
        for row in rows
    ]
    title = f"{r.method}: {n} samples against {m} data points"
    print_table(console, title, cols, cells, keys=2)
    console.print(
        "path energy = E int |v|^2 dt along the solved ODE, in the model's space; "
        "curvature = path energy - E|x1 - x0|^2, coupling gap = E|x1 - x0|^2 - W2^2, "
        "bracketed at 95 % (wasserflow.metrics.coupling_gap: in high dimension no sample "
        "resolves it to a point)"
    )
