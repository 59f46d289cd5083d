"""MeanFlow (Geng, Deng, Bai, Kolter & He 2025, arXiv:2505.13447): the average velocity learned
from the instantaneous one through the MeanFlow identity, no teacher.

Along a solution x(tau) of dx = v dt the flow map X(x(t), t, s) = x(t) + (s - t) u(x(t), t, s)
does not depend on t; differentiating in t gives (wasserflow's clock, t = 0 noise, s >= t)

    u(x_t, t, s) = v(x_t, t) + (s - t) d/dt u(x_t, t, s),
    d/dt u = (v . grad_x) u + d_t u      (the derivative along the path: a JVP with tangent (v, 1, 0)
                                          in (x, t, s)).

The loss regresses the network on that right-hand side with the network's own derivative, under a
stop-gradient, and the conditional velocity u_t of the path in place of v (as flow matching does):

    target = sg[u_t + (s - t) JVP],   (u, JVP) = torch.func.jvp(u_theta(., ., s), (x_t, t), (u_t, 1)),
    loss_i = w_i |u_theta(x_t, t, s) - target|^2,   w_i = sg[1 / (|delta_i|^2 + c)^p]

(the adaptive weighting, |delta|^2 the squared error itself; p = 1, c = 1e-3 the paper's). The
paper writes it on its clock (t = 1 noise): u = v - (t - r) du/dt with tangent (v, 0, 1) in
(z, r, t); its (t, r) are our (1 - t, 1 - s) and the two forms are the same identity.

Times (the paper's): two draws of a logit-normal, sigmoid(N(mu, sigma^2)) with mu = -0.4,
sigma = 1 on the paper's clock, ordered so that r <= t there; with probability 1 - ``ratio``
(0.75) r is set to t, so a quarter of the samples learn jumps and the rest the instantaneous
velocity (s = t, where the loss is flow matching). On our clock t = t_max (1 - t_paper),
s = t_max (1 - r_paper).

Cost: the JVP is a dual forward pass taken under no_grad (no graph is recorded for the
target), then the prediction is one ordinary forward and backward (py-meanflow instead records
the dual pass's graph and differentiates its primal output; benchmarks/flowmap_cost.py prices
both against OT-CFM's step). Attention layers run in PyTorch's math kernel during the
JVP (``sdpa_kernel(MATH)``: the fused kernels have no forward-mode rule). Under torchrun the
gradient comes from the ordinary forward of the DistributedDataParallel module the loss is
given, so it is all-reduced like any other objective's (``tests/engine/test_distributed.py``
checks a 2-rank MeanFlow step against one process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..paths import AffinePath
from ..samplers import AverageNetworkFn, SamplingContext
from .flowmap import FlowMapSpec, check_times, ends_at, expand, path_point, squared_norm
from .registry import LossSetup, register_objective
from .regression import couple


def meanflow_times(
    n: int,
    generator: torch.Generator,
    dtype: torch.dtype,
    *,
    ratio: float = 0.25,
    mu: float = -0.4,
    sigma: float = 1.0,
    t_max: float = 1.0,
    kind: str = "logit_normal",
) -> tuple[Tensor, Tensor]:
    """(t, s), each (n,), t <= s, on wasserflow's clock: the paper's (t, r) sampling (module doc)
    converted, t = t_max (1 - t_paper), s = t_max (1 - r_paper); ``kind`` "uniform" draws the
    two times uniformly instead of logit-normally (the paper's other choice)."""
    if kind == "uniform":
        a = torch.rand(n, generator=generator, dtype=dtype)
        b = torch.rand(n, generator=generator, dtype=dtype)
    else:
        a = torch.sigmoid(mu + sigma * torch.randn(n, generator=generator, dtype=dtype))
        b = torch.sigmoid(mu + sigma * torch.randn(n, generator=generator, dtype=dtype))
    t_paper, r_paper = torch.maximum(a, b), torch.minimum(a, b)
    equal = torch.rand(n, generator=generator, dtype=dtype) >= ratio
    r_paper = torch.where(equal, t_paper, r_paper)
    return t_max * (1.0 - t_paper), t_max * (1.0 - r_paper)


def meanflow_target(
    net: nn.Module | Callable[[Tensor, Tensor, Tensor], Tensor],
    x: Tensor,
    t: Tensor,
    s: Tensor,
    v: Tensor,
) -> tuple[Tensor, Tensor]:
    """(u_theta(x, t, s), sg[v + (s - t) d/dt u_theta]): the prediction (with its graph) and the
    MeanFlow target, d/dt u the JVP of u_theta(., ., s) along (v, 1) at (x, t), taken without a
    graph (module doc). ``net`` is a flow-map network (called in its dtype) or any u(x, t, s)."""
    fn = AverageNetworkFn(net) if isinstance(net, nn.Module) else net
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        _, dudt = torch.func.jvp(lambda y, tau: fn(y, tau, s), (x, t), (v, torch.ones_like(t)))
        target = v + expand(s - t, x) * dudt
    return fn(x, t, s), target


@dataclass(frozen=True)
class MeanFlowObjective:
    """MeanFlow (Geng et al. 2025): a flow map trained from scratch through the MeanFlow
    identity with a JVP target (:class:`MeanFlow`); the defaults are the paper's, and
    ``time_factor`` scales the times the backbone sees (:class:`FlowMapNet`).

    Attributes:
        ratio: the fraction of samples with s != t.
        times: "logit_normal" (the paper's default) or "uniform".
        mu, sigma: the logit-normal of the paper's times.
        p, c: the adaptive weight 1 / (|delta|^2 + c)^p (p = 0: the plain squared error).
        t_max: the largest time trained (1; a path singular at t = 1 stops before).
        time_factor: k in u(x, t, s) = backbone(x, k t, k (s - t)).
    """

    ratio: float = 0.25
    times: str = "logit_normal"
    mu: float = -0.4
    sigma: float = 1.0
    p: float = 1.0
    c: float = 1e-3
    t_max: float = 1.0
    time_factor: float = 1e-3
    kind: str = "meanflow"

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(
                f"ratio (the fraction with s != t) must lie in [0, 1], got {self.ratio}"
            )
        if self.times not in ("logit_normal", "uniform"):
            raise ValueError(f"times {self.times!r}: choose logit_normal or uniform")
        if not self.sigma > 0:
            raise ValueError(f"sigma of the logit-normal times must be > 0, got {self.sigma}")
        if not (self.p >= 0 and self.c > 0):
            raise ValueError(f"the adaptive weight needs p >= 0 and c > 0, got {self.p}, {self.c}")
        check_times(self.t_max, self.time_factor)


@dataclass(frozen=True)
class MeanFlow:
    """The MeanFlow loss on an affine path and a coupling (module doc).

    Attributes:
        path: the affine path (its conditional velocity u_t stands in for v).
        coupling, coupling_sigma: how noise and data are paired (as :class:`PathRegression`).
        options: the objective's settings (:class:`MeanFlowObjective`).
    """

    path: AffinePath
    coupling: str = "independent"
    coupling_sigma: float | None = None
    options: MeanFlowObjective = field(default_factory=MeanFlowObjective)

    def loss(
        self, model: nn.Module, batch: Tensor, generator: torch.Generator, step: int = 0
    ) -> Tensor:
        """Per-sample losses (B,) for a data batch (or a batch of pairs)."""
        o = self.options
        x0, x1 = couple(batch, generator, self.coupling, self.coupling_sigma)
        t, s = meanflow_times(
            x1.shape[0], generator, x1.dtype, ratio=o.ratio, mu=o.mu, sigma=o.sigma,
            t_max=o.t_max, kind=o.times,
        )  # fmt: skip
        xt, ut = path_point(self.path, x0, x1, t, generator)
        u, target = meanflow_target(model, xt, t, s, ut)
        err = squared_norm(u - target)
        if o.p == 0:
            return err
        return err / (err.detach() + o.c) ** o.p

    __call__ = loss


@register_objective("meanflow", MeanFlowObjective)
class MeanFlowSpec(FlowMapSpec):
    """MeanFlow on the run's path and coupling: a flow map with its instantaneous velocity."""

    title = "MeanFlow"

    def loss(self, objective: MeanFlowObjective, setup: LossSetup) -> MeanFlow:
        return MeanFlow(setup.path, setup.coupling, setup.coupling_sigma, objective)

    def sampling_context(
        self, objective: MeanFlowObjective, base: SamplingContext, model: Any = None
    ) -> SamplingContext:
        return ends_at(super().sampling_context(objective, base, model), objective.t_max)
