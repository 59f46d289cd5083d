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

from ..errors import RunFolderError
from ..geometry import fit_ridge_jko_step
from ..models.jko_flow import JKOFlow, jko_step_sizes
from . import checkpoint as ckpt
from .config import RunConfig
from .loop import TrainResult, truncate_metrics


def _gaussian_energy(x: Tensor) -> Tensor:
    return 0.5 * (x * x).sum(-1)


def train_jko_flow(
    cfg: RunConfig,
    out: Path,
    sample_data: Callable[[int, torch.Generator], Tensor],
    *,
    progress: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Fit the blocks of ``cfg``'s JKO flow on particles from ``sample_data`` into ``out``."""
    spec = cfg.objective  # a JKOFlowObjective
    steps = jko_step_sizes(spec.blocks, spec.tau, spec.ratio)
    seed = cfg.train.seed
    out.mkdir(parents=True, exist_ok=True)
    path, metrics = out / "checkpoint.safetensors", out / "metrics.jsonl"
    g = torch.Generator().manual_seed(seed)
    x = sample_data(spec.particles, g).reshape(spec.particles, -1).to(torch.float64)
    maps, start = [], 0
    if path.exists():
        tensors, meta = ckpt.load(path)
        try:
            flow = JKOFlow.from_tensors(tensors)
            g.set_state(tensors["rng"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise RunFolderError(
                f"{path} is not a JKO-flow checkpoint of this run ({e}): restore it or train "
                "into a new folder"
            ) from e
        if flow.steps != steps[: len(flow.steps)]:
            raise RunFolderError(f"cannot resume {path}: its step sizes differ from the config's")
        maps, start = list(flow.maps), len(flow.maps)
    log_det = torch.zeros(x.shape[0], dtype=torch.float64)
    for T in maps:
        x, ld = T.forward(x)
        log_det = log_det + ld
    truncate_metrics(metrics, start)
    t0 = time.perf_counter()
    last = float("nan")
    for k in range(start, len(steps)):
        fit = fit_ridge_jko_step(
            x,
            _gaussian_energy,
            steps[k],
            units=spec.units,
            init_scale=spec.init_scale,
            max_iter=spec.max_iter,
            generator=g,
        )
        with torch.no_grad():
            x, ld = fit.map.forward(x)
        log_det = log_det + ld
        maps.append(fit.map)
        last = fit.objective
        record = {
            "step": k + 1,
            "loss": fit.objective,
            "objective_identity": fit.objective_identity,
            "h": steps[k],
            "accepted": fit.accepted,
            "iterations": fit.iterations,
            "free_energy": float(_gaussian_energy(x).mean() - log_det.mean()),
            "seconds": time.perf_counter() - t0,
        }
        flow = JKOFlow(tuple(maps), steps[: k + 1])
        ckpt.save(
            path,
            {**flow.tensors(), "rng": g.get_state().clone()},
            {"step": k + 1, "kind": "jko-flow"},
        )
        with open(metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
        if progress is not None:
            progress(k + 1, record)
    return TrainResult(
        steps=len(steps), final_loss=last, seconds=time.perf_counter() - t0, resumed_from=start
    )
