"""Run folders: train a method on a data source, reload it, sample it with its own settings.

A run folder holds ``config.json`` (method recipe, model, data and its scaling, training
settings: everything needed to rebuild the model and its sampler), ``checkpoint.safetensors``
and ``metrics.jsonl``; a rectified flow with reflow adds ``reflow-<k>/`` stages.

    cfg = make_config("otcfm", "moons", steps=2000)
    train_run(cfg, "runs/otcfm")
    run = load_run("runs/otcfm")
    res = run.sample(2000, nfe=2, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import _atomic
from ..data import Standardizer, make_source
from ..models import build_model, place, resolve_device
from ..objectives import (
    build_objective,
    build_path,
    method_config,
    ot_stream_config,
    validate_recipe,
)
from ..paths import OTPairStream, ve_sigma_max_from_data
from ..samplers import Field, SampleResult, get_sampler
from .blockwise import JKOFlowRun, jko_spec, train_jko_flow
from .loop import TrainConfig, TrainResult, load_weights, train
from .sampling import sampling_plan


def make_config(
    method: str,
    data: str,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    width: int = 128,
    depth: int = 3,
    activation: str = "silu",
    time_embedding: str | None = None,
    scale: str = "none",
    ema_decay: float = 0.999,
    warmup: int = 100,
    decay: str = "cosine",
    grad_clip: float | None = 1.0,
    method_overrides: dict | None = None,
) -> dict[str, Any]:
    """A complete, JSON-serialisable run configuration (validated now, not at step 1,000)."""
    recipe = method_config(method, **(method_overrides or {}))
    validate_recipe(recipe, total_steps=steps)
    source = make_source(data)
    if scale not in ("none", "standard"):
        raise ValueError(f"scale {scale!r}: choose none or standard")
    if recipe.get("trainer") == "blockwise":  # the JKO flow: one "step" per block
        steps = jko_spec(recipe)["blocks"]
    train_cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                            ema_decay=ema_decay, warmup=warmup, decay=decay, grad_clip=grad_clip)
    kind = recipe.get("model_kind", "mlp")
    model = {"kind": kind, "shape": list(source.shape), "width": width, "depth": depth,
             "activation": activation}
    if time_embedding is not None:
        model["time_embedding"] = time_embedding
    if kind == "jko":
        model = {"kind": "jko", "shape": list(source.shape)}
    if kind == "energy":
        model["time_embedding"] = "none"
    return {"version": 1, "method": recipe, "model": model,
            "data": {"spec": source.spec, "scale": scale, "standardizer": None},
            "train": asdict(train_cfg)}


def _finalise_config(cfg: dict, source) -> dict:
    """Fix what depends on the data: the standardizer and the VE sigma_max."""
    cfg = json.loads(json.dumps(cfg))
    g = torch.Generator().manual_seed(cfg["train"]["seed"] + 7919)
    if cfg["data"]["scale"] == "standard" and cfg["data"]["standardizer"] is None:
        cfg["data"]["standardizer"] = source.fit_standardizer(generator=g).to_dict()
    sched = cfg["method"].get("schedule", {})
    if sched.get("name") == "ve" and sched.get("sigma_max") is None:
        x = _scaler(cfg).transform(source.sample(2048, g).to(torch.float64))
        sched["sigma_max"] = float(ve_sigma_max_from_data(x))
    return cfg


def _scaler(cfg: dict) -> Standardizer:
    st = cfg["data"].get("standardizer")
    return Standardizer.from_dict(st) if st else Standardizer.identity()


def _stage_dirs(out: Path, cfg: dict) -> list[Path]:
    rounds = cfg["method"].get("reflow", {}).get("rounds", 0)
    return [out] + [out / f"reflow-{k}" for k in range(1, rounds + 1)]


def _complete(stage: Path, steps: int) -> bool:
    p = stage / "checkpoint.safetensors"
    if not p.exists():
        return False
    from .checkpoint import load

    return int(load(p)[1]["step"]) >= steps


def train_run(
    cfg: dict, out: str | Path, *, resume: bool = False,
    progress: Callable[[str, int, dict], None] | None = None, device: str = "cpu",
) -> list[TrainResult]:
    """Train the run described by ``cfg`` into ``out`` (see :func:`make_config`); ``device``
    runs the network there (:func:`wasserflow.models.place`; the JKO flow always fits on the
    CPU in float64)."""
    out = Path(out)
    resolve_device(device)  # before anything is written
    source = make_source(cfg["data"]["spec"])
    cfg_path = out / "config.json"
    if cfg_path.exists():
        if not resume:
            raise ValueError(f"{out} already holds a run: pass --resume to continue it, or choose "
                             "a new output folder")
        cfg = json.loads(cfg_path.read_text())
    else:
        cfg = _finalise_config(cfg, source)
        _atomic.write_json(cfg_path, cfg)
    tcfg = TrainConfig(**cfg["train"])
    scaler = _scaler(cfg)
    if cfg["method"].get("trainer") == "blockwise":
        def particles(n, g):
            return scaler.transform(source.sample(n, g))
        cb = (lambda s, r: progress(out.name, s, r)) if progress else None
        return [train_jko_flow(cfg, out, particles, progress=cb)]
    results = []
    stages = _stage_dirs(out, cfg)
    model = place(build_model(cfg["model"], seed=tcfg.seed), device)
    for k, stage in enumerate(stages):
        if k > 0 and _complete(stage, tcfg.steps):
            continue
        objective = build_objective(cfg["method"], total_steps=tcfg.steps, stage=k)
        if k == 0:
            def sample_data(n, g):
                return scaler.transform(source.sample(n, g))
            sample_data = _ot_pair_stream(cfg, tcfg, sample_data) or sample_data
        else:
            pairs = _reflow_pairs(cfg, stages[k - 1], scaler, tcfg.seed + k, device)
            def sample_data(n, g, pairs=pairs):
                return pairs[torch.randint(0, len(pairs), (n,), generator=g)]
            # reflow starts from the previous stage's (EMA) weights
            model.load_state_dict(load_weights(stages[k - 1] / "checkpoint.safetensors"))
        cb = (lambda s, r, name=stage.name: progress(name, s, r)) if progress else None
        results.append(train(model, objective, sample_data, tcfg, stage, resume=True, progress=cb))
    return results


def _ot_pair_stream(cfg: dict, tcfg: TrainConfig,
                    sample_data: Callable[[int, torch.Generator], Tensor]) -> OTPairStream | None:
    """OT-CFM's minibatch-OT pair stream (exact OT on ``ot_batch`` points, prefetched in a
    background thread), seeded by the run's seed; None for recipes that couple in the objective."""
    stream = ot_stream_config(cfg["method"], tcfg.batch_size)
    if stream is None:
        return None
    return OTPairStream(sample_data, stream, seed=tcfg.seed, total_steps=tcfg.steps)


def _reflow_pairs(cfg: dict, prev: Path, scaler, seed: int, device: str = "cpu") -> Tensor:
    """(N, 2, ...) pairs (noise, flow(noise)) of the previous stage, in training coordinates."""
    spec = cfg["method"]["reflow"]
    run = TrainedRun.from_stage(cfg, prev, device)
    g = torch.Generator().manual_seed(seed)
    res = run.sample(spec["pairs"], sampler="euler", nfe=spec["nfe"], generator=g,
                     data_space=False, return_start=True)
    return torch.stack([res.start, res.x], dim=1).detach().to(torch.float32)


@dataclass
class RunSample:
    """Samples of a trained run. ``x`` in data space unless asked otherwise; ``start`` the noise."""

    x: Tensor
    start: Tensor
    nfe: int
    trajectory: Tensor | None
    times: Tensor | None
    sampler: str


class TrainedRun:
    """A trained model with its path, parametrisation, sampler defaults and data scaling."""

    def __init__(self, cfg: dict, model: nn.Module, run_dir: Path):
        self.config = cfg
        self.model = model.eval()
        self.run_dir = run_dir
        self.recipe = cfg["method"]
        self.path = build_path(self.recipe)
        self.scaler = _scaler(cfg)
        self.shape = tuple(cfg["model"]["shape"])

    @classmethod
    def from_stage(cls, cfg: dict, stage: Path, device: str = "cpu") -> TrainedRun:
        model = build_model(cfg["model"], seed=0)
        model.load_state_dict(load_weights(stage / "checkpoint.safetensors"))
        return cls(cfg, place(model, device), stage)

    @property
    def method(self) -> str:
        return self.recipe["method"]

    def field(self) -> Field:
        """The model as a :class:`~wasserflow.samplers.Field` on the t clock."""
        model, path = self.model, self.path
        time_input = self.recipe.get("time_input", "t")

        def fn(x: Tensor, t: Tensor) -> Tensor:
            tin = path.network_time(t, time_input).to(torch.float32)
            return model(x.to(torch.float32), tin).to(x.dtype)

        return Field(fn=fn, prediction=self.recipe["prediction"], path=self.path)

    def sample(
        self,
        n: int,
        *,
        sampler: str | None = None,
        nfe: int | None = None,
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
        data_space: bool = True,
        return_start: bool = False,
        options: dict | None = None,
    ) -> RunSample:
        """n samples with ``sampler`` (default: the method's) at about ``nfe`` evaluations."""
        name = sampler or self.recipe["sampler"]["name"]
        spec = get_sampler(name)
        plan = sampling_plan(self.recipe, name, nfe)
        opts = {**plan.options, **(options or {})}
        x0 = self.path.sample_reference((n, *self.shape), generator, dtype=torch.float64)
        field = self.field()
        with torch.no_grad():  # an energy model takes its gradient under enable_grad itself
            res: SampleResult = spec(field, x0, plan.grid, generator=generator,
                                     return_trajectory=return_trajectory, **opts)
            x, traj, used = res.x, res.trajectory, res.nfe
            if plan.denoise_at is not None:
                x = field.x1_and_epsilon(x, torch.full((n,), plan.denoise_at, dtype=x.dtype))[0]
                used += 1
                if traj is not None and res.times is not None:
                    traj = torch.cat([traj, x[None]])
                    res = SampleResult(x=x, nfe=used, trajectory=traj, times=torch.cat(
                        [res.times, torch.ones(1, dtype=res.times.dtype)]))
        if data_space:
            x = self.scaler.inverse(x)
            if traj is not None:
                traj = self.scaler.inverse(traj.reshape(-1, *self.shape)).reshape(traj.shape)
        return RunSample(x=x.detach(), start=x0, nfe=used,
                         trajectory=None if traj is None else traj.detach(),
                         times=res.times if traj is not None else None, sampler=name)


def load_run(out: str | Path, device: str = "cpu") -> TrainedRun | JKOFlowRun:
    """The trained model of a run folder (its last completed stage, EMA weights; a
    :class:`~wasserflow.engine.blockwise.JKOFlowRun` for method jko-flow); ``device`` runs the
    network there, samples come back on the CPU."""
    out = Path(out)
    resolve_device(device)
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise ValueError(f"{out} is not a wasserflow run folder (no config.json): train one with "
                         "'wasserflow train --out DIR'")
    try:
        cfg = json.loads(cfg_path.read_text())
        stages = _stage_dirs(out, cfg)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{cfg_path} is not a valid run configuration ({e})") from e
    done = [s for s in stages if (s / "checkpoint.safetensors").exists()]
    if not done:
        raise ValueError(f"{out} has no checkpoint yet: training has not saved one")
    if cfg["method"].get("trainer") == "blockwise":
        return JKOFlowRun.from_stage(cfg, out, _scaler(cfg))
    return TrainedRun.from_stage(cfg, done[-1], device)
