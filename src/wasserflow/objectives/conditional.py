"""Class-conditional training of any network objective: the labels ride with the batch, are
dropped to the null class per sample, and reach the network as its last extra input.

:class:`ConditionalLoss` wraps the per-sample loss of any objective (path regression, Energy
Matching, a plugin): it takes a :class:`~wasserflow.paths.LabelledBatch` (the data and the
class of each row, or noise-data pairs and the class of each pair's data point), replaces each
label by the null class K with probability ``label_dropout`` (:func:`drop_labels`: one coin
per sample from the run's generator, as k-diffusion's ``masked_fill`` and Ho & Salimans 2022;
flow_matching drops whole batches instead), and calls the wrapped loss with the network bound
to those labels (:class:`~wasserflow.models.WithLabels`). The wrapped loss sees an unlabelled
batch and a network ``net(x, t)``, exactly as in an unconditional run, so every objective
trains conditionally unchanged, provided it keeps the rows of its batch in order.

Couplings that reorder the data (minibatch OT, the entropic plan) must move the labels with
the points: a conditional run couples its batches here (or in the OT pair stream) with
:func:`~wasserflow.paths.couple_labelled`, within each class or blind to the labels, and
hands the wrapped loss the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..models import WithLabels
from ..paths import LabelledBatch, couple_labelled
from .registry import LossFn


def drop_labels(
    labels: Tensor, num_classes: int, probability: float, generator: torch.Generator
) -> Tensor:
    """``labels`` with each entry replaced by the null class K = ``num_classes`` with
    probability ``probability``, independently per sample: y_i <- K where u_i < p, u_i ~ U[0, 1)
    drawn from ``generator`` (none drawn when p = 0)."""
    if probability == 0.0:
        return labels
    coins = torch.rand(labels.shape, generator=generator, device=labels.device)
    return torch.where(coins < probability, torch.full_like(labels, num_classes), labels)


@dataclass(frozen=True)
class ConditionalLoss:
    """The per-sample loss ``inner`` trained on labelled batches (module doc).

    Attributes:
        inner: the objective's loss (model, batch, generator, step) -> (B,).
        num_classes: K; labels lie in [0, K), K is the null class.
        label_dropout: the probability of dropping a label to K.
        coupling: a coupling to solve here on data batches (``ot``, ``entropic``), the pairs
            handed to ``inner`` (built with the ``pairs`` coupling); None: the batch goes to
            ``inner`` as it comes (data for an independent coupling, or pairs already).
        per_class: solve ``coupling`` within each class (False: blind to the labels).
        coupling_sigma: the entropic coupling's sigma (reg = 2 sigma^2).
    """

    inner: LossFn
    num_classes: int
    label_dropout: float = 0.1
    coupling: str | None = None
    per_class: bool = True
    coupling_sigma: float | None = None

    def __call__(
        self, model: nn.Module, batch: LabelledBatch, generator: torch.Generator, step: int = 0
    ) -> Tensor:
        if not isinstance(batch, LabelledBatch):
            raise ValueError(
                "a class-conditional loss takes labelled batches (data and labels): draw them "
                "with source.sample_labelled"
            )
        if self.coupling is not None:
            x = batch.x
            x0 = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            opts = {"sigma": self.coupling_sigma} if self.coupling == "entropic" else {}
            batch = couple_labelled(
                self.coupling, x0, batch, generator, per_class=self.per_class, **opts
            )
        y = drop_labels(batch.y, self.num_classes, self.label_dropout, generator)
        return self.inner(WithLabels(model, y), batch.x, generator, step)


__all__ = ["ConditionalLoss", "drop_labels"]
