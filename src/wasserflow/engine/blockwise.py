"""Block-by-block training and sampling of the JKO flow (method ``jko-flow``).

Unlike the regression methods there is no stochastic-gradient loop: block k is the exact
minimiser (L-BFGS, float64) of one JKO step's objective on the training particles pushed
through blocks 1..k-1 (:mod:`wasserflow.models.jko_flow`). A block is the unit of progress:
after each one the checkpoint (all blocks so far, the generator state) is written atomically and
a line goes to ``metrics.jsonl``, so an interrupted run resumes at the next block and a resumed
run equals an uninterrupted one. Each line records the step h, J(T) and J(id), and the free
energy of the pushed particles up to the data's unknown entropy,

    F(rho_k) - F(rho_0) + E V(x_0) = E V(x_k) - E sum_{j <= k} log det DT_j,

which the JKO scheme never increases.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ..geometry import fit_ridge_jko_step
from ..models.jko_flow import JKO_FLOW_DEFAULTS, JKOFlow, jko_step_sizes
from . import checkpoint as ckpt
from .loop import TrainResult, truncate_metrics


def _gaussian_energy(x: Tensor) -> Tensor:
    return 0.5 * (x * x).sum(-1)


def jko_spec(recipe: dict) -> dict:
    """The recipe's JKO flow options over :data:`JKO_FLOW_DEFAULTS`, validated."""
    spec = {**JKO_FLOW_DEFAULTS, **recipe.get("jko", {})}
    unknown = set(spec) - set(JKO_FLOW_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown jko-flow options {sorted(unknown)}: use "
                         f"{sorted(JKO_FLOW_DEFAULTS)}")
    jko_step_sizes(spec["blocks"], spec["tau"], spec["ratio"])  # validates them
    for key, least in (("units", 0), ("particles", 2), ("max_iter", 1)):
        v = spec[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ValueError(f"jko-flow option {key} must be an integer >= {least}, got {v!r}")
    return spec


def train_jko_flow(
    cfg: dict, out: Path, sample_data: Callable[[int, torch.Generator], Tensor], *,
    progress: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Fit the blocks of ``cfg``'s JKO flow on particles from ``sample_data`` into ``out``."""
    spec = jko_spec(cfg["method"])
    steps = jko_step_sizes(spec["blocks"], spec["tau"], spec["ratio"])
    seed = int(cfg["train"]["seed"])
    out.mkdir(parents=True, exist_ok=True)
    path, metrics = out / "checkpoint.safetensors", out / "metrics.jsonl"
    g = torch.Generator().manual_seed(seed)
    x = sample_data(spec["particles"], g).reshape(spec["particles"], -1).to(torch.float64)
    maps, start = [], 0
    if path.exists():
        tensors, meta = ckpt.load(path)
        flow = JKOFlow.from_tensors(tensors)
        if flow.steps != steps[: len(flow.steps)]:
            raise ValueError(f"cannot resume {path}: its step sizes differ from the config's")
        maps, start = list(flow.maps), len(flow.maps)
        g.set_state(tensors["rng"])
    log_det = torch.zeros(x.shape[0], dtype=torch.float64)
    for T in maps:
        x, ld = T.forward(x)
        log_det = log_det + ld
    truncate_metrics(metrics, start)
    t0 = time.perf_counter()
    last = float("nan")
    for k in range(start, len(steps)):
        fit = fit_ridge_jko_step(x, _gaussian_energy, steps[k], units=spec["units"],
                                 init_scale=spec["init_scale"], max_iter=spec["max_iter"],
                                 generator=g)
        with torch.no_grad():
            x, ld = fit.map.forward(x)
        log_det = log_det + ld
        maps.append(fit.map)
        last = fit.objective
        record = {"step": k + 1, "loss": fit.objective, "objective_identity":
                  fit.objective_identity, "h": steps[k], "accepted": fit.accepted,
                  "iterations": fit.iterations,
                  "free_energy": float(_gaussian_energy(x).mean() - log_det.mean()),
                  "seconds": time.perf_counter() - t0}
        flow = JKOFlow(tuple(maps), steps[: k + 1])
        ckpt.save(path, {**flow.tensors(), "rng": g.get_state().clone()},
                  {"step": k + 1, "kind": "jko-flow"})
        with open(metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
        if progress is not None:
            progress(k + 1, record)
    return TrainResult(steps=len(steps), final_loss=last, seconds=time.perf_counter() - t0,
                       resumed_from=start)


class JKOFlowRun:
    """A trained JKO flow with the interface of :class:`~wasserflow.engine.TrainedRun`.

    Its number of evaluations is fixed by the blocks: ``nfe`` may be None or the number of
    blocks K; ``sampler`` may be None or ``"jko"`` (the blocks inverted by Newton's method).
    """

    sampler_name = "jko"

    def __init__(self, cfg: dict, flow: JKOFlow, run_dir: Path, scaler):
        self.config = cfg
        self.flow = flow
        self.run_dir = run_dir
        self.recipe = cfg["method"]
        self.scaler = scaler
        self.shape = tuple(cfg["model"]["shape"])

    @classmethod
    def from_stage(cls, cfg: dict, stage: Path, scaler) -> JKOFlowRun:
        tensors, _ = ckpt.load(stage / "checkpoint.safetensors")
        return cls(cfg, JKOFlow.from_tensors(tensors), stage, scaler)

    @property
    def method(self) -> str:
        return self.recipe["method"]

    @property
    def blocks(self) -> int:
        return len(self.flow.maps)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact model log-density at data-space points x (the data scaling's Jacobian included)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        n = x.shape[0]
        y = self.scaler.transform(x).reshape(n, -1).to(torch.float64)
        return self.flow.log_prob(y) + self.scaler.log_abs_det(x.shape[1:])

    def sample(self, n: int, *, sampler: str | None = None, nfe: int | None = None,
               generator: torch.Generator | None = None, return_trajectory: bool = False,
               data_space: bool = True, return_start: bool = False, options: dict | None = None):
        from .runs import RunSample

        if sampler not in (None, self.sampler_name):
            raise ValueError(f"a JKO flow samples by inverting its blocks (sampler 'jko'), not "
                             f"{sampler!r}")
        if nfe is not None and nfe != self.blocks:
            raise ValueError(f"this JKO flow has {self.blocks} blocks, so it takes exactly "
                             f"{self.blocks} steps: pass nfe={self.blocks} or none")
        if options:
            raise ValueError(f"the JKO flow sampler takes no options, got {sorted(options)}")
        with torch.no_grad():
            s = self.flow.sample(n, generator, return_trajectory=return_trajectory)
        x, traj = s.x.reshape(n, *self.shape), s.trajectory
        if traj is not None:
            traj = traj.reshape(traj.shape[0], n, *self.shape)
        if data_space:
            x = self.scaler.inverse(x)
            if traj is not None:
                traj = self.scaler.inverse(traj.reshape(-1, *self.shape)).reshape(traj.shape)
        return RunSample(x=x, start=s.start.reshape(n, *self.shape), nfe=s.evaluations,
                         trajectory=traj, times=s.times, sampler=self.sampler_name)

