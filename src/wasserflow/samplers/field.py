"""The one object every sampler consumes: a model output on the t clock and its parametrisation.

``Field(fn, prediction="velocity", path=None, score_fn=None)``: ``fn(x, t)`` takes x (n, ...)
and t (n,) (one time per sample, x's dtype) and returns a prediction of x's shape. Knowing the
path (its schedule) the field converts between parametrisations (docs/design.md section 2, see
:mod:`wasserflow.paths.parametrization`), so a velocity model can drive DDIM and an epsilon
model can drive an ODE solver. ``score_fn`` optionally supplies an exact score (an oracle)
used in place of the conversion. A plain callable v(x, t) is accepted wherever a Field is.

``Field.from_network(net, path, prediction, time_input)`` is the one wrapper of a trained
network (EDM's preconditioner in spirit): the network sees its time input
(:meth:`~wasserflow.paths.AffinePath.network_time`: the clock or the log-SNR) and x in its own
dtype; the training loss calls the same wrapper (:class:`NetworkFn`) that every sampler calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from wasserflow.paths.affine import AffinePath
from wasserflow.paths.parametrization import PREDICTIONS, convert, x1_and_epsilon
from wasserflow.paths.schedules import ScheduleOutput

FieldFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class NetworkFn:
    """``net(x, tau(t))`` with tau the network's time input on ``path`` (``time_input`` "t" or
    "logsnr"), x and tau cast to the network's dtype and the output back to x's dtype.

    ``coefficients`` (the schedule at t) skips re-evaluating the schedule (the training loss
    has them already)."""

    net: Callable[..., Tensor]
    path: AffinePath | None = None
    time_input: str = "t"

    def __call__(self, x: Tensor, t: Tensor, coefficients: ScheduleOutput | None = None) -> Tensor:
        if self.time_input == "t" or self.path is None:
            tin = t
        else:
            tin = self.path.network_time(t, self.time_input, coefficients)
        p = self._first_parameter
        dtype = torch.float32 if p is None else p.dtype
        if dtype == x.dtype:
            return self.net(x, tin.to(dtype))
        return self.net(x.to(dtype), tin.to(dtype)).to(x.dtype)

    @cached_property
    def _first_parameter(self) -> Tensor | None:
        """The network's first parameter (None: it has none), looked up once: its dtype is the
        network's, also after ``net.to(dtype)``, which converts parameters in place."""
        params = getattr(self.net, "parameters", None)
        return next(params(), None) if callable(params) else None


@dataclass(frozen=True)
class Field:
    """A model output ``fn(x, t)`` of kind ``prediction`` (epsilon, x1, score, velocity or v_prediction).

    Attributes:
        fn: the network or closed-form field.
        prediction: what ``fn`` predicts; anything but "velocity" needs ``path``.
        path: the affine path whose schedule converts between parametrisations.
        score_fn: an optional separate score s(x, t) (e.g. an exact oracle).
    """

    fn: FieldFn
    prediction: str = "velocity"
    path: AffinePath | None = None
    score_fn: FieldFn | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ValueError("Field.fn must be a callable fn(x, t)")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {self.prediction!r}: choose one of {PREDICTIONS}")
        if self.prediction != "velocity" and self.path is None:
            raise ValueError(
                f"a {self.prediction!r} prediction needs the path to convert it: "
                "pass path=AffinePath(schedule)"
            )

    @classmethod
    def from_network(
        cls,
        net: Callable[..., Tensor],
        path: AffinePath | None,
        prediction: str = "velocity",
        time_input: str = "t",
    ) -> Field:
        """A trained network ``net(x, tau)`` that predicts ``prediction`` on ``path`` with
        time input ``time_input`` (:class:`NetworkFn`)."""
        if time_input != "t" and path is None:
            raise ValueError(f"time_input {time_input!r} needs the path: pass path=")
        return cls(fn=NetworkFn(net, path, time_input), prediction=prediction, path=path)

    @classmethod
    def from_oracle(cls, oracle) -> Field:
        """The exact field of a :class:`~wasserflow.paths.oracle.MixtureOracle`."""
        return cls(
            fn=oracle.velocity, prediction="velocity", path=oracle.path, score_fn=oracle.score
        )

    def coefficients(self, t: Tensor) -> ScheduleOutput:
        if self.path is None:
            raise ValueError(
                "this sampler needs the path's schedule: build the Field with "
                "path=AffinePath(schedule)"
            )
        return self.path.coefficients(t)

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """v_t(x) (one evaluation of fn)."""
        out = self.fn(x, t)
        if self.prediction == "velocity":
            return out
        return convert(x, out, self.coefficients(t), self.prediction, "velocity")

    def score(self, x: Tensor, t: Tensor) -> Tensor:
        """grad log p_t(x): ``score_fn`` if given, else converted (needs path)."""
        if self.score_fn is not None:
            return self.score_fn(x, t)
        return convert(x, self.fn(x, t), self.coefficients(t), self.prediction, "score")

    def velocity_and_score(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(v_t(x), grad log p_t(x)) from one evaluation of fn (plus score_fn if given)."""
        out = self.fn(x, t)
        if self.score_fn is not None:
            v = (
                out
                if self.prediction == "velocity"
                else convert(x, out, self.coefficients(t), self.prediction, "velocity")
            )
            return v, self.score_fn(x, t)
        c = self.coefficients(t)
        v = (
            out
            if self.prediction == "velocity"
            else convert(x, out, c, self.prediction, "velocity")
        )
        return v, convert(x, out, c, self.prediction, "score")

    def x1_and_epsilon(
        self, x: Tensor, t: Tensor, coefficients: ScheduleOutput | None = None
    ) -> tuple[Tensor, Tensor]:
        """(x1_hat, eps_hat) with x = alpha_t x1_hat + sigma_t eps_hat (one evaluation).

        ``coefficients`` (the schedule at t, tensors or floats) skips re-evaluating it."""
        c = self.coefficients(t) if coefficients is None else coefficients
        return x1_and_epsilon(x, self.fn(x, t), self.prediction, c)


def as_field(field: Field | FieldFn) -> Field:
    """A Field from a Field or a plain velocity callable v(x, t)."""
    if isinstance(field, Field):
        return field
    if callable(field):
        return Field(fn=field)
    raise ValueError("field must be a wasserflow.samplers.Field or a callable v(x, t)")
