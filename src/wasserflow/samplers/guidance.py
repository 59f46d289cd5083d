"""Classifier-free guidance (Ho & Salimans 2022) inside the field every sampler drives.

A class-conditional model f(x, t, y) trained with its labels dropped to a null class K some of
the time is also the unconditional model f(x, t, K). Guidance at scale s samples with

    f_s(x, t) = f(x, t, K) + s (f(x, t, c) - f(x, t, K))  =  s f(x, t, c) + (1 - s) f(x, t, K),

s = 1 the conditional model (guidance off; diffusers' ``guidance_scale``, EDM2's
``guidance``, k-diffusion's ``cfg_scale``), s = 0 the unconditional one, s > 1 extrapolation
past the conditional model. Ho & Salimans' w (flow_matching's ``cfg_scale``) is s - 1:
:meth:`Guidance.from_w`. Any real s is allowed (0 < s < 1 interpolates, s < 0 guides away).

**Where the guidance lives.** :func:`guided_field` returns a :class:`Field` whose ``fn`` is the
guided network output, of the network's own parametrisation, so every registered sampler (ODE,
SDE, exponential integrators, DDIM / DDPM) runs guided without knowing it. The combination is
formed in the network's own output by default, or in any other parametrisation
(``Guidance.space``) through the hub (:func:`wasserflow.paths.parametrization.guide`): the
conversions are affine with a common x term, so every choice gives the same field up to
round-off (tested in float64 for the five parametrisations), except at a singular point of a
conversion, where only the network's own output stays finite. For an exact oracle with a
separate score, the score is guided alike (it is affine in the same outputs).

**Interval.** ``Guidance.interval = (t_lo, t_hi)`` guides only at model times t in
[t_lo, t_hi] (t = 0 noise, t = 1 data) and evaluates the conditional model alone elsewhere
(Kynkaeaenniemi et al. 2024 guide only in the middle noise levels; the interval here is in
model time, not in step indices, so it means the same at every NFE).

**Cost.** A guided evaluation needs the conditional and the unconditional output. Batched
(``Guidance.batched``, the default: k-diffusion's one forward of a doubled batch), that is one
network pass over 2n rows; unbatched, two passes of n rows. :class:`PassCounter` records the
passes and the rows the network saw, beside the solver's own NFE (its evaluations of the
field), so a table can give both: a guided solve of k evaluations costs k passes batched, 2k
unbatched, and 2 k n rows either way (flow_matching's ``CFGScaledModel`` counts one NFE per
guided call).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from wasserflow.paths.parametrization import PREDICTIONS, guide

from .field import Field, FieldFn
from .flowmap import AverageFn, FlowMapField

LabelledField = Callable[[Tensor], Field]
"""labels (m,) int64 -> the model as a Field whose rows carry those labels (K: the null class),
evaluated on batches of m rows."""


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance settings (module doc).

    Attributes:
        scale: s (1: off, the conditional model; 0: the unconditional model).
        interval: (t_lo, t_hi) in model time where guidance acts (None: everywhere).
        batched: evaluate conditional and unconditional outputs in one pass of 2n rows.
        space: the parametrisation the combination is formed in (None: the network's own).
    """

    scale: float = 1.0
    interval: tuple[float, float] | None = None
    batched: bool = True
    space: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not math.isfinite(float(self.scale)):
            raise ValueError(f"the guidance scale must be a finite number, got {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))
        if self.interval is not None:
            lo, hi = (float(v) for v in self.interval)
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(
                    f"the guidance interval (t_lo, t_hi) needs 0 <= t_lo <= t_hi <= 1 in model "
                    f"time (t = 0 noise, t = 1 data), got {tuple(self.interval)}"
                )
            object.__setattr__(self, "interval", (lo, hi))
        if self.space is not None and self.space not in PREDICTIONS:
            raise ValueError(f"guidance space {self.space!r}: choose one of {PREDICTIONS}")

    @classmethod
    def from_w(cls, w: float, **options) -> Guidance:
        """Guidance of Ho & Salimans' weight w = s - 1 ((1 + w) cond - w uncond)."""
        return cls(scale=1.0 + float(w), **options)

    @property
    def w(self) -> float:
        """Ho & Salimans' w = s - 1."""
        return self.scale - 1.0

    @property
    def enabled(self) -> bool:
        """Whether guidance changes anything (s != 1 on a non-empty interval)."""
        return self.scale != 1.0

    def active(self, t: Tensor) -> Tensor:
        """Which rows of the per-sample times t (n,) are guided."""
        if self.interval is None:
            return torch.ones(t.shape, dtype=torch.bool, device=t.device)
        lo, hi = self.interval
        return (t >= lo) & (t <= hi)


def as_guidance(guidance: Guidance | float | None) -> Guidance:
    """A :class:`Guidance` from one, a scale s, or None (off)."""
    if guidance is None:
        return Guidance()
    if isinstance(guidance, Guidance):
        return guidance
    return Guidance(scale=guidance)


@dataclass
class PassCounter:
    """Network passes (calls of the network) and the rows they evaluated, counted by a
    :func:`guided_field` (module doc)."""

    passes: int = 0
    rows: int = 0

    def add(self, rows: int) -> None:
        self.passes += 1
        self.rows += int(rows)


class _Counted:
    """fn(x, t, *extra) counted as one pass of x's rows (a field's output, or a flow map's
    average velocity with its end time s as the extra argument)."""

    def __init__(self, fn: FieldFn | AverageFn, counter: PassCounter):
        self.fn, self.counter = fn, counter

    def __call__(self, x: Tensor, t: Tensor, *extra: Tensor) -> Tensor:
        self.counter.add(x.shape[0])
        return self.fn(x, t, *extra)


def counted_field(field: Field, counter: PassCounter) -> Field:
    """``field`` with every call of its network output counted by ``counter`` (a subclass
    keeps its class and its other members; a flow map's jumps, calls of its average
    velocity, are counted too)."""
    if isinstance(field, FlowMapField):
        average = _Counted(field.average, counter)
        return FlowMapField.from_average(average, field.path, instantaneous=field.instantaneous)
    return dataclasses.replace(field, fn=_Counted(field.fn, counter))


class GuidedFn:
    """The guided output u + s (c - u) of a labelled model at (x, t) (module doc): ``cond``
    evaluates the rows with their classes, ``uncond`` with the null class, ``both`` (batched) a
    doubled batch [classes; null]; rows outside the guidance interval get ``cond`` alone. Extra
    per-row arguments after t (a flow map's end time s) are passed through (doubled with the
    batch)."""

    def __init__(
        self,
        cond: FieldFn,
        uncond: FieldFn | None,
        both: FieldFn | None,
        guidance: Guidance,
        prediction: str,
        coefficients: Callable[[Tensor], object] | None,
    ):
        self.cond, self.uncond, self.both = cond, uncond, both
        self.guidance, self.prediction, self.coefficients = guidance, prediction, coefficients

    def __call__(self, x: Tensor, t: Tensor, *extra: Tensor) -> Tensor:
        active = self.guidance.active(t)
        if not bool(active.any()):
            return self.cond(x, t, *extra)
        if self.both is not None:
            out = self.both(*(torch.cat([v, v]) for v in (x, t, *extra)))
            c, u = out[: x.shape[0]], out[x.shape[0] :]
        else:
            c, u = self.cond(x, t, *extra), self.uncond(x, t, *extra)
        g = self.guidance
        coeffs = None if g.space in (None, self.prediction) else self.coefficients(t)
        out = guide(x, c, u, g.scale, coeffs, self.prediction, g.space)
        if bool(active.all()):
            return out
        return torch.where(active.reshape(-1, *([1] * (x.dim() - 1))), out, c)


def guided_field(
    labelled: LabelledField,
    labels: Tensor,
    null: int,
    guidance: Guidance | float | None = None,
    counter: PassCounter | None = None,
) -> Field:
    """The field a sampler drives to sample the classes ``labels`` (n,) with ``guidance``.

    ``labelled(y)`` is the model as a :class:`Field` for batches whose rows carry the labels y
    (``null`` = K, the unconditional model). With guidance off (s = 1) this is
    ``labelled(labels)`` itself, one pass per evaluation; otherwise a Field of the same
    parametrisation and path whose output is the guided one (:class:`GuidedFn`), its score
    (when the model has a separate one, an oracle) guided alike. ``counter`` counts the
    network passes (module doc).
    """
    g = as_guidance(guidance)
    labels = labels.reshape(-1)
    counter = counter if counter is not None else PassCounter()
    cond = labelled(labels)
    if not g.enabled:
        return counted_field(cond, counter)
    if isinstance(cond, FlowMapField):
        return _guided_flow_map(labelled, cond, labels, null, g, counter)
    nulls = torch.full_like(labels, int(null))
    coefficients = cond.coefficients if cond.path is not None else None
    if g.batched:
        both = labelled(torch.cat([labels, nulls]))
        fns = (_Counted(cond.fn, counter), None, _Counted(both.fn, counter))
        scores = (cond.score_fn, None, both.score_fn)
    else:
        uncond = labelled(nulls)
        fns = (_Counted(cond.fn, counter), _Counted(uncond.fn, counter), None)
        scores = (cond.score_fn, uncond.score_fn, None)
    fn = GuidedFn(*fns, g, cond.prediction, coefficients)
    score_fn = None
    if cond.score_fn is not None:  # an exact score (an oracle) is guided as a score
        score_fn = GuidedFn(*scores, Guidance(g.scale, g.interval), "score", None)
    return Field(fn=fn, prediction=cond.prediction, path=cond.path, score_fn=score_fn)


def _guided_flow_map(
    labelled: LabelledField,
    cond: FlowMapField,
    labels: Tensor,
    null: int,
    g: Guidance,
    counter: PassCounter,
) -> FlowMapField:
    """A flow map guided in its average velocity (:class:`GuidedFn` on u(x, t, s)): each jump
    X(x, t, s) = x + (s - t) (u_K + s_g (u_c - u_K)). This is the guidance shortcut models
    sample with (Frans et al. 2024); it is not the flow map of the guided ODE, which the
    jumps approach as they shorten. ``Guidance.space`` does not apply (the average velocity
    is the only output)."""
    if g.space not in (None, "velocity"):
        raise ValueError(
            f"a flow map is guided in its average velocity: drop guidance space {g.space!r}"
        )
    nulls = torch.full_like(labels, int(null))
    cond_fn = _Counted(cond.average, counter)
    if g.batched:
        both = _Counted(labelled(torch.cat([labels, nulls])).average, counter)
        average = GuidedFn(cond_fn, None, both, g, "velocity", None)
    else:
        uncond = _Counted(labelled(nulls).average, counter)
        average = GuidedFn(cond_fn, uncond, None, g, "velocity", None)
    return FlowMapField.from_average(average, cond.path, instantaneous=cond.instantaneous)


def oracle_labelled(oracle) -> LabelledField:
    """The exact labelled field of a :class:`~wasserflow.paths.ClassOracle` (class c the
    component c, the null class the mixture), velocity and score, for :func:`guided_field`."""

    def labelled(labels: Tensor) -> Field:
        return Field(
            fn=lambda x, t: oracle.velocity(x, t, labels),
            prediction="velocity",
            path=oracle.path,
            score_fn=lambda x, t: oracle.score(x, t, labels),
        )

    return labelled


__all__ = [
    "Guidance",
    "GuidedFn",
    "LabelledField",
    "PassCounter",
    "as_guidance",
    "counted_field",
    "guided_field",
    "oracle_labelled",
]
