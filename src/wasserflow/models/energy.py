"""Energy -> field: the velocity v(x) = -grad_x E(x) of a scalar potential (Energy Matching).

Energy Matching (Balcerak et al. 2025, arXiv:2504.10612) learns one time-independent scalar
potential E; samples follow x' = -grad E(x) (then Langevin on exp(-E / T) near the data).
:class:`PotentialField` exposes that field with the common ``forward(x, t)`` signature so
samplers and metrics treat it like any other velocity field.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..geometry import energy_gradient


class PotentialField(nn.Module):
    """v(x, t) = -grad_x E(x[, t]) for a potential module E: (N, *shape) -> (N,).

    The gradient is taken with ``torch.autograd.grad`` under ``torch.enable_grad()`` (so it works
    inside ``torch.no_grad()`` sampling loops). ``create_graph`` (needed to train through the
    field, second-order) defaults to: grad mode was enabled by the caller and (the module is in
    training mode or x requires grad). Without a graph the field is returned detached.
    """

    def __init__(self, potential: nn.Module):
        super().__init__()
        self.potential = potential

    def energy(self, x: Tensor, t: Tensor | float | None = None, *conditions: Tensor) -> Tensor:
        """``E(x[, t][, c...])``, shape (N,) (``conditions``: the potential's extra inputs, such
        as class labels)."""
        return self.potential(x, t, *conditions)

    def forward(
        self,
        x: Tensor,
        t: Tensor | float | None = None,
        *conditions: Tensor,
        create_graph: bool | None = None,
    ) -> Tensor:
        """``-grad_x E(x[, t][, c...])``, same shape as x (t is ignored by a time-independent
        potential)."""
        outer_grad = torch.is_grad_enabled()
        if create_graph is None:
            create_graph = outer_grad and (self.training or x.requires_grad)
        g = energy_gradient(
            lambda y: self.potential(y, t, *conditions),
            x,
            create_graph=create_graph,
            through_input=x.requires_grad and outer_grad,
        )
        return -g if create_graph else -g.detach()
