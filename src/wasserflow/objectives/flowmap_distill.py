"""Flow-map distillation: a student learns the flow map of a trained model's ODE, solved by
wasserflow's own samplers (Lagrangian flow map matching, Boffi, Albergo & Vanden-Eijnden 2024,
arXiv:2406.07507, with the teacher's trajectories computed once).

The teacher is any :class:`~wasserflow.engine.GenerativeModel` that has a deterministic sampler:
a trained run folder, a diffusers or TorchCFM model (``teacher="diffusers:DIR"``,
``"torchcfm:CKPT#KEY"`` with ``teacher_model``; :mod:`wasserflow.interop`), or, with no teacher
given, one trained first inside the run folder (``teacher/``, by ``teacher_method``, the run's
model, data and training settings: its seconds are part of the run's). Before the student
trains, ``pairs`` noises are carried to the data by ``teacher_sampler`` on a uniform grid of
``teacher_nfe`` evaluations, and each trajectory is kept at the K + 1 times t_k = k / K
(K = ``frames``, a power of 2): batches of these frames (B, K + 1, ...) are the student's data.
Each sample of a batch is one jump between two frames, a step of 2^l frames (l uniform in
{0, ..., log2 K}, so the jumps of 1, 2, 4, ..., K uniform steps that sampling at that many NFE
takes are all trained) from a start i uniform among those that fit:

    loss_i = |u(x_{t_i}, t_i, t_j) - (x_{t_j} - x_{t_i}) / (t_j - t_i)|^2,

the student's average velocity against the teacher's chord. The student samples by its jumps
(the ``flowmap`` sampler); it learns no instantaneous velocity (the ODE samplers are refused).
Its reference noise must be the teacher's and its data scaling too (checked when the teacher is
loaded): the frames are used in the teacher's coordinates. With ``frames = 1`` and a teacher
solved by ``teacher_sampler`` at ``teacher_nfe``, the student's one jump learns that few-step
solve itself (progressive distillation's target, Salimans & Ho 2022: one student step for two
teacher steps at ``midpoint``, 2 NFE).

``init``: the student starts from its teacher (``"teacher"``, the default; :class:`TeacherStart`:
u(x, t, s) = v(x, t) before the first step) or from the backbone's own random weights
(``"random"``). Starting from the teacher needs a teacher whose network is the velocity on the
t clock (``velocity_network()``: a wasserflow run of a velocity-predicting method, or a
TorchCFM state dict in a wasserflow backbone, ``torchcfm:CKPT`` with ``teacher_model``) with
the student's backbone, and the time factor 1 (the copied time embedding sees t itself; this
objective has no JVP, so it needs no smaller factor); a diffusers teacher or another network
takes ``init = "random"``. On the 8 x 8 digits at 40 s per row (teacher and student) the
one-jump FD fell from 66-83 to 22-30 on seeds 0-2 with it and the teacher's 2-NFE midpoint map
as the target (benchmarks/README.md, "Flow maps"); on a curved Gaussian flow (I-CFM) at 60
steps the one-jump error fell from 0.066 to 0.0008 of E|X - x|^2 (tests/objectives).

A class-conditional student (``--conditional``) needs a class-conditional teacher on the same
classes (one trained first inherits the run's): trajectory i is the teacher's ODE for class
y_i, the data's classes dropped to the null class K with the run's label dropout (so the null
class learns the unconditional teacher; the loop drops no more: ``labels_dropped``), guided at
``teacher_guidance`` s (classifier-free, :mod:`wasserflow.samplers.guidance`). With s != 1 the
student's jumps follow the guided ODE itself, one network pass per jump instead of two (the
guided distillation of Meng et al. 2023, arXiv:2210.03142); its sampling context records s and
guidance on top of it is refused. On gmm2d (tests/objectives) the one jump of each class lands
within 5e-5 of E|X - x|^2 of the guided teacher's map at 300 steps.

The student sees only these ``pairs`` trajectories, so their number bounds how well it learns
the map away from them: on 2-D moons (MLP 3 x 64, 20,000 student steps) 8,192 trajectories left
the one-jump W2 at 0.33, 65,536 brought it to 0.22-0.24, within 0.03 of the teacher's converged
ODE (benchmarks/README.md, "Flow maps"). Where the teacher is cheap to solve, give many.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..models import align_conditions
from ..paths import LabelledBatch
from ..samplers import AverageNetworkFn, SamplingContext, get_sampler, uniform_grid
from .flowmap import FlowMapSpec, check_power_of_two, check_times, expand, squared_norm
from .registry import LossSetup, TeacherSpec, TrainJob, TrainResult, register_objective

CHUNK = 1024
"""Trajectories solved per teacher call (bounds the memory of the recorded frames)."""
INITS = ("teacher", "random")
"""The student's first weights: its teacher's velocity network, or the backbone's own."""


def jump_indices(n: int, frames: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(i, j), each (n,) int64: frame indices of jumps of 2^l frames, l ~ U{0..log2 K}, the start
    i uniform among 0..K - 2^l (module doc)."""
    levels = int(math.log2(frames)) + 1
    step = torch.pow(2, torch.randint(0, levels, (n,), generator=generator))
    i = (torch.rand(n, generator=generator, dtype=torch.float64) * (frames - step + 1)).long()
    return i, i + step


@dataclass(frozen=True)
class FlowMapDistill:
    """The distillation loss on batches of teacher frames (B, K + 1, ...) at t_k = k / K."""

    frames: int = 8

    def loss(
        self, model: nn.Module, batch: Tensor, generator: torch.Generator, step: int = 0
    ) -> Tensor:
        """Per-sample losses (B,) (module doc)."""
        k = self.frames
        if batch.dim() < 3 or batch.shape[1] != k + 1:
            raise ValueError(
                f"flow-map distillation trains on batches of teacher frames (B, {k + 1}, ...), "
                f"got shape {tuple(batch.shape)}"
            )
        n = batch.shape[0]
        i, j = jump_indices(n, k, generator)
        rows = torch.arange(n)
        xi, xj = batch[rows, i], batch[rows, j]
        t, s = i.to(batch.dtype) / k, j.to(batch.dtype) / k
        target = (xj - xi) / expand(s - t, xi)
        return squared_norm(AverageNetworkFn(model)(xi, t, s) - target)

    __call__ = loss


@dataclass(frozen=True)
class FrameBatches:
    """Batches of n trajectories drawn (with replacement) from the teacher's frames, with their
    classes (a :class:`~wasserflow.paths.LabelledBatch`) where ``labels`` is given."""

    frames: Tensor
    labels: Tensor | None = None

    def __call__(self, n: int, generator: torch.Generator) -> Tensor | LabelledBatch:
        idx = torch.randint(0, self.frames.shape[0], (n,), generator=generator)
        if self.labels is None:
            return self.frames[idx]
        return LabelledBatch(self.frames[idx], self.labels[idx])


def frame_labels(teacher: Any, job: TrainJob, objective: FlowMapDistillObjective) -> Tensor | None:
    """The class of each teacher trajectory of a class-conditional student (None for an
    unconditional one): ``pairs`` draws of the data's classes, each dropped to the null class
    K with the run's label dropout (the teacher's unconditional trajectories: what the
    student's null class learns). The teacher must be class-conditional on the same K."""
    k = job.num_classes
    if k is None:
        return None
    if teacher.num_classes != k:
        has = "is not class-conditional" if teacher.num_classes is None else (
            f"has {teacher.num_classes} classes")  # fmt: skip
        raise InputError(
            f"the student has {k} classes and its teacher ({teacher.method}) {has}: distil "
            "a teacher trained with --conditional on the run's data, or drop --conditional"
        )
    return job.labels(objective.pairs, torch.Generator().manual_seed(job.seed + 7_919))


def teacher_frames(
    teacher: Any, objective: FlowMapDistillObjective, seed: int, labels: Tensor | None = None
) -> Tensor:
    """(pairs, K + 1, ...) float32 frames of the teacher's ODE at t_k = k / K in its model space
    (module doc), from noise drawn with the seed, trajectory i of class ``labels[i]`` guided at
    ``teacher_guidance`` where labels are given; refused in one line if not finite."""
    spec = get_sampler(objective.teacher_sampler)
    steps = objective.teacher_nfe // spec.nfe_per_step
    every = steps // objective.frames
    g = torch.Generator().manual_seed(seed + 104_729)
    parts = []
    for lo in range(0, objective.pairs, CHUNK):
        hi = min(lo + CHUNK, objective.pairs)
        conditional = {} if labels is None else {
            "labels": labels[lo:hi], "guidance": objective.teacher_guidance}  # fmt: skip
        res = teacher.sample(
            hi - lo,
            sampler=spec.name,
            grid=uniform_grid(steps),
            generator=g,
            return_trajectory=True,
            data_space=False,
            **conditional,
        )
        parts.append(res.trajectory[::every].transpose(0, 1).to(torch.float32))
    frames = torch.cat(parts)
    if not torch.isfinite(frames).all():
        raise ValueError(
            f"the teacher's trajectories by {spec.name} are not finite (a field singular at "
            "t = 1?): use teacher_sampler euler or midpoint, which never evaluate there"
        )
    return frames


@dataclass(frozen=True)
class TeacherStart:
    """Start a student :class:`~wasserflow.objectives.flowmap.FlowMapNet` from its teacher's
    velocity network: the teacher's weights copied into the student's backbone (the same
    architecture, which adds only the step's embedding), that embedding's last linear layer
    set to zero. The student then starts as u(x, t, s) = v(x, t), one Euler step of the
    teacher over [t, s], and learns only how the jump departs from it (as consistency
    distillation's student starts from its teacher diffusion model, Song et al. 2023).

    The weights alone do not make the same network (a TorchCFM UNet sees t, wasserflow's 1000 t,
    with the same parameters), so the start is checked: on ``shape``-d probes, with the null
    class K where ``num_classes`` is given, the student's u(x, t, t) must be the teacher's
    v(x, t), or the start is refused in one line."""

    network: nn.Module
    shape: tuple[int, ...]
    num_classes: int | None = None

    def __call__(self, student: nn.Module) -> None:
        self.load(student)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, *self.shape, generator=g)
        t = torch.rand(4, generator=g)
        labels = () if self.num_classes is None else (torch.full((4,), self.num_classes),)
        device = next(self.network.parameters()).device
        with torch.no_grad():
            want = self.network(x.to(device), t.to(device), *(y.to(device) for y in labels))
            got = student(x, t, t, *labels)
        want = want.to("cpu", got.dtype)
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max())):
            raise InputError(
                "the teacher's weights in the student's backbone do not give the teacher's "
                f"velocity (largest difference {float((got - want).abs().max()):.3g}: the two "
                "models' options differ, e.g. time_scale): give the student the teacher's "
                "model options, or set objective.init random"
            )

    def load(self, student: nn.Module) -> None:
        """The teacher's weights into ``student.backbone``, the step embedding zeroed."""
        backbone = student.backbone
        own = backbone.state_dict()
        theirs = align_conditions(self.network.state_dict(), self.network, backbone)
        foreign = [k for k in theirs if k not in own or own[k].shape != theirs[k].shape]
        if foreign:
            raise InputError(
                f"the teacher's network is not the student's backbone (its {foreign[0]!r} "
                "has no match): give the student the teacher's model and options, or set "
                "objective.init random"
            )
        backbone.load_state_dict(theirs, strict=False)
        new = set(own) - set(theirs)
        last = [m for n, m in backbone.named_modules() if isinstance(m, nn.Linear)
                and f"{n}.weight" in new]  # fmt: skip
        if last:
            with torch.no_grad():
                last[-1].weight.zero_()
                if last[-1].bias is not None:
                    last[-1].bias.zero_()


def student_start(teacher: Any, objective: FlowMapDistillObjective) -> TeacherStart | None:
    """The student's first weights (``objective.init``): its teacher's (:class:`TeacherStart`)
    or None (the backbone's own initialisation)."""
    if objective.init == "random":
        return None
    network = teacher.velocity_network()
    if network is None:
        raise InputError(
            f"the teacher ({teacher.method}) has no velocity network for the student to start "
            "from: set objective.init random"
        )
    return TeacherStart(network, tuple(teacher.shape), teacher.num_classes)


@dataclass(frozen=True)
class FlowMapDistillObjective:
    """Flow-map distillation of a teacher's ODE (:class:`FlowMapDistill`, module doc)."""

    teacher: str | None = None
    teacher_method: str = "otcfm"
    teacher_steps: int | None = None
    teacher_model: str | None = None
    teacher_model_options: dict[str, Any] = field(default_factory=dict)
    teacher_sampler: str = "midpoint"
    teacher_nfe: int = 32
    frames: int = 8
    pairs: int = 4096
    init: str = "teacher"
    teacher_guidance: float = 1.0
    time_factor: float = 1.0
    kind: str = "flowmap_distill"

    def __post_init__(self) -> None:
        k = self.frames
        check_power_of_two("frames", k)
        if self.pairs < 1 or (self.teacher_steps is not None and self.teacher_steps < 1):
            raise ValueError("pairs and teacher_steps must be positive")
        check_times(1.0, self.time_factor)
        if not math.isfinite(self.teacher_guidance):
            raise ValueError(f"teacher_guidance must be finite, got {self.teacher_guidance}")
        if self.init not in INITS:
            raise ValueError(f"init {self.init!r}: choose one of {', '.join(INITS)}")
        if self.init == "teacher" and self.time_factor != 1.0:
            raise ValueError(
                f"init teacher starts from the teacher's time embedding, which sees t itself: "
                f"time_factor must be 1 (got {self.time_factor:g}), or set init random"
            )
        spec = get_sampler(self.teacher_sampler)
        if spec.stochastic or spec.adaptive or not spec.nfe_per_step or spec.needs_flow_map:
            raise ValueError(
                f"teacher_sampler {spec.name} does not solve the ODE on a fixed grid: use "
                "euler, midpoint, heun or rk4"
            )
        steps = self.teacher_nfe // spec.nfe_per_step
        if steps < 1 or steps % k:
            raise ValueError(
                f"teacher_nfe {self.teacher_nfe} gives {steps} {spec.name} steps, not a multiple "
                f"of frames = {k}: give teacher_nfe = {k * spec.nfe_per_step} x an integer"
            )


@register_objective("flowmap_distill", FlowMapDistillObjective)
class FlowMapDistillSpec(FlowMapSpec):
    """Flow-map distillation: a teacher's frames as data, a flow map without an instantaneous
    velocity, trained in one process."""

    title = "flow-map distillation"
    instantaneous = False
    data_parallel = False
    pair_batches = False
    labels_dropped = True

    def check(self, objective: FlowMapDistillObjective, run: Any) -> None:
        super().check(objective, run)
        if run.coupling.kind != "independent" or run.reflow.rounds or run.reflow.teacher:
            raise ValueError(
                "flow-map distillation learns its teacher's trajectories: leave coupling "
                "independent and reflow off (the teacher has its own coupling)"
            )
        if run.condition is None and objective.teacher_guidance != 1.0:
            raise ValueError(
                f"teacher_guidance {objective.teacher_guidance:g} guides the teacher toward "
                "each trajectory's class: train the student with --conditional"
            )

    def teacher(self, objective: FlowMapDistillObjective) -> TeacherSpec:
        return TeacherSpec(
            source=objective.teacher,
            method=objective.teacher_method,
            steps=objective.teacher_steps,
            model=objective.teacher_model,
            model_options=dict(objective.teacher_model_options),
        )

    def loss(self, objective: FlowMapDistillObjective, setup: LossSetup) -> FlowMapDistill:
        return FlowMapDistill(frames=objective.frames)

    def train(self, objective: FlowMapDistillObjective, job: TrainJob) -> list[TrainResult]:
        """Solve the teacher's trajectories, then train on their frames in the batch loop."""
        teacher = job.teacher(self.teacher(objective))
        start = student_start(teacher, objective)
        labels = frame_labels(teacher, job, objective)
        frames = teacher_frames(teacher, objective, job.seed, labels)
        return job.train_network(data=FrameBatches(frames, labels), init=start)

    def sampling_context(
        self, objective: FlowMapDistillObjective, base: SamplingContext, model: Any = None
    ) -> SamplingContext:
        ctx = super().sampling_context(objective, base, model)
        guided = objective.teacher_guidance != 1.0
        return dataclasses.replace(
            ctx, distilled_guidance=objective.teacher_guidance if guided else None
        )
