"""The JKO flow as an objective (method ``jko-flow``): fitted block by block, no network.

Unlike the regression objectives there is no stochastic-gradient loop: block k is the exact
minimiser (L-BFGS, float64) of one JKO step's objective on the training particles pushed
through blocks 1..k-1 (:mod:`wasserflow.models.jko_flow`). A block is the unit of progress:
after each one the checkpoint (all blocks so far, the generator state) is written atomically and
a line goes to ``metrics.jsonl``, so an interrupted run resumes at the next block and a resumed
run equals an uninterrupted one. Each line records the step h, J(T) and J(id), and the free
energy of the pushed particles up to the data's unknown entropy,

    F(rho_k) - F(rho_0) + E V(x_0) = E V(x_k) - E sum_{j <= k} log det DT_j,

which the JKO scheme never increases. The objective kind "jko_flow" (:class:`JKOFlowObjective`,
its config) has no network and no path; its trained model is the :class:`JKOFlow`, which the
registered sampler ``jko`` inverts along the model's own steps, and a trained run of it has the
exact density (:class:`JKOFlowRun`).
"""

from __future__ import annotations

import dataclasses
import time
import typing
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import RunFolderError
from ..geometry import fit_ridge_jko_step
from ..models.jko_flow import JKOFlow, jko_step_sizes
from ..samplers import SamplingContext
from .registry import Checkpoint, ObjectiveSpec, TrainJob, TrainResult, register_objective


@dataclass(frozen=True)
class JKOFlowObjective:
    """The JKO flow: K blocks, each the exact minimiser of one JKO step of KL(. || N(0, I));
    steps h_k geometric with ``ratio``, summing to ``tau``; ``units`` ridges per block,
    ``particles`` training points, ``max_iter`` L-BFGS iterations, ``init_scale`` the initial
    ridge sharpness."""

    LABEL: typing.ClassVar[str] = "jko-flow options"
    blocks: int = 24
    tau: float = 4.0
    ratio: float = 1.25
    units: int = 64
    particles: int = 4000
    max_iter: int = 100
    init_scale: float = 6.0
    kind: str = "jko_flow"

    def __post_init__(self) -> None:
        jko_step_sizes(self.blocks, self.tau, self.ratio)  # validates them
        for key, least in (("units", 0), ("particles", 2), ("max_iter", 1)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise ValueError(f"jko-flow option {key} must be an integer >= {least}, got {v!r}")


class JKOFlowRun:
    """What a trained JKO flow adds to a run (:class:`~wasserflow.engine.TrainedRun`): the flow,
    its number of blocks and its exact log-density."""

    model: JKOFlow
    scaler: Any

    @property
    def flow(self) -> JKOFlow:
        return self.model

    @property
    def blocks(self) -> int:
        return len(self.model.maps)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact model log-density at data-space points x (the data scaling's Jacobian included)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        y = self.scaler.transform(x).reshape(x.shape[0], -1).to(torch.float64)
        return self.model.log_prob(y) + self.scaler.log_abs_det(x.shape[1:])


@register_objective("jko_flow", JKOFlowObjective)
class JKOFlowSpec(ObjectiveSpec):
    """The JKO flow: fitted block by block, sampled by its own inversion (sampler ``jko``)."""

    title = "the JKO flow"
    has_network = False
    data_parallel = False
    steps_key = "objective.blocks"
    ode_sampler = None
    run_mixin = JKOFlowRun

    def check(self, objective: JKOFlowObjective, run: Any) -> None:
        if run.model is not None or run.path is not None:
            raise ValueError("the JKO flow has no network and no path: model and path must be null")

    def train_steps(self, objective: JKOFlowObjective) -> int:
        """One training step per block."""
        return objective.blocks

    def train(self, objective: JKOFlowObjective, job: TrainJob) -> list[TrainResult]:
        return [fit_jko_flow(objective, job)]

    def load(self, objective: JKOFlowObjective, checkpoint: Checkpoint) -> JKOFlow:
        tensors = checkpoint.tensors()
        try:
            return JKOFlow.from_tensors(tensors)
        except (KeyError, RuntimeError, TypeError) as e:
            raise RunFolderError(f"{checkpoint.path} is not a JKO-flow checkpoint ({e})") from e

    def field(self, objective: JKOFlowObjective, model: JKOFlow, path: Any) -> JKOFlow:
        """The flow itself: the sampler ``jko`` runs its blocks backwards."""
        return model

    def sampling_context(
        self, objective: JKOFlowObjective, base: SamplingContext, model: Any = None
    ) -> SamplingContext:
        """The model's own block times (from noise to data); no score."""
        steps = None if model is None else model.times().flip(0)
        return dataclasses.replace(base, model_steps=steps, score_valid=False)

    def sample_shape(self, objective: JKOFlowObjective, model: JKOFlow, shape: Any) -> tuple:
        return (model.dim,)


def _gaussian_energy(x: Tensor) -> Tensor:
    return 0.5 * (x * x).sum(-1)


def _resume(job: TrainJob, steps: tuple[float, ...], g: torch.Generator) -> list:
    """The blocks of the job's checkpoint (none when fresh), the generator set to its state."""
    tensors = job.load_checkpoint()
    if tensors is None:
        return []
    try:
        flow = JKOFlow.from_tensors(tensors)
        g.set_state(tensors["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise RunFolderError(
            f"{job.checkpoint_path} is not a JKO-flow checkpoint of this run ({e}): restore it "
            "or train into a new folder"
        ) from e
    if flow.steps != steps[: len(flow.steps)]:
        raise RunFolderError(
            f"cannot resume {job.checkpoint_path}: its step sizes differ from the config's"
        )
    return list(flow.maps)


def fit_jko_flow(spec: JKOFlowObjective, job: TrainJob) -> TrainResult:
    """Fit the blocks of the JKO flow ``spec`` on particles of the job's data (module doc)."""
    steps = jko_step_sizes(spec.blocks, spec.tau, spec.ratio)
    g = torch.Generator().manual_seed(job.seed)
    x = job.data(spec.particles, g).reshape(spec.particles, -1).to(torch.float64)
    maps = _resume(job, steps, g)
    start = len(maps)
    log_det = torch.zeros(x.shape[0], dtype=torch.float64)
    for T in maps:
        x, ld = T.forward(x)
        log_det = log_det + ld
    job.restart(start)
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
        job.save_checkpoint(
            {**flow.tensors(), "rng": g.get_state().clone()}, {"step": k + 1, "kind": "jko-flow"}
        )
        job.log(k + 1, record)
    return TrainResult(
        steps=len(steps), final_loss=last, seconds=time.perf_counter() - t0, resumed_from=start
    )
