"""What a trained run's sampling returns (shared by every kind of run)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class RunSample:
    """Samples of a trained run: ``x`` in data space unless asked otherwise, ``start`` the
    noise they came from, the NFE used, the trajectory (F, n, ...) at ``times`` (F,) when
    asked for, the kinetic energy (n,) of each sample's path as solved, in the model's
    space (None for stochastic samplers; :mod:`wasserflow.samplers.kinetic`), and a flow
    map's deviation (n,) of its average velocities from its instantaneous ones when its
    sampler was asked for it (:func:`wasserflow.samplers.average_velocity_deviation`).

    ``nfe`` counts the sampler's evaluations of the field; ``passes`` the network calls they
    cost and ``rows`` the rows those calls evaluated (a guided evaluation is one call of 2n
    rows batched, two calls of n unbatched; :mod:`wasserflow.samplers.guidance`), None when the
    model is not a network field; ``labels`` the classes sampled (None: unconditional)."""

    x: Tensor
    start: Tensor
    nfe: int
    trajectory: Tensor | None
    times: Tensor | None
    sampler: str
    energy: Tensor | None = None
    passes: int | None = None
    rows: int | None = None
    labels: Tensor | None = None
    deviation: Tensor | None = None
