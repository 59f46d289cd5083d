"""The JKO flow: a generative model made of JKO steps of KL(. || N(0, I)), data -> noise.

Block k is the map T_k of one JKO step of size h_k of the free energy F = KL(. || N(0, I))
(V(x) = |x|^2 / 2), fitted on the data pushed through the blocks before it
(:func:`wasserflow.geometry.fit_ridge_jko_step`). After a total time tau = sum_k h_k the pushed
data are close to N(0, I) (the Fokker-Planck flow contracts KL at rate e^{-2 tau}). Generation
runs the blocks backwards from fresh noise, z ~ N(0, I), x = T_1^{-1} o ... o T_K^{-1}(z); every
block is a bijection of R^d (:class:`~wasserflow.geometry.RidgeMap`), so the model density is
exact by the change of variables,

    log p(x) = log N(T_K o ... o T_1(x); 0, I) + sum_k log det DT_k(x_{k-1}).

On the common clock (t = 0 noise, t = 1 data) the state after block k sits at
t_k = 1 - (h_1 + ... + h_k) / tau, so generation is a trajectory from t = 0 to t = 1 like any
other sampler's, and its action and geodesic gap are measured the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..geometry import RidgeMap

# The options of method jko-flow and their defaults: wasserflow.objectives.JKOFlowObjective.


def jko_step_sizes(blocks: int, tau: float, ratio: float = 1.25) -> tuple[float, ...]:
    """Geometric steps h_k = h_0 r^k, k = 0..blocks-1, summing to tau: short steps where the data
    are rough, long ones near the Gaussian where the flow is slow."""
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be a positive integer, got {blocks!r}")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau (total flow time) must be positive, got {tau!r}")
    if not (math.isfinite(ratio) and ratio >= 1):
        raise ValueError(f"ratio must be >= 1, got {ratio!r}")
    if ratio == 1:
        return (tau / blocks,) * blocks
    h0 = tau * (ratio - 1) / (ratio**blocks - 1)
    return tuple(h0 * ratio**k for k in range(blocks))


@dataclass(frozen=True)
class FlowSample:
    """Generated points x (n, d), the noise they came from, the number of batched map
    evaluations (Newton iterations included), and optionally the trajectory (K + 1, n, d) at
    ``times`` on the t clock (0 noise ... 1 data)."""

    x: Tensor
    start: Tensor
    evaluations: int
    trajectory: Tensor | None = None
    times: Tensor | None = None


@dataclass(frozen=True)
class JKOFlow:
    """Blocks T_1..T_K (data -> noise) with their JKO steps h_1..h_K."""

    maps: tuple[RidgeMap, ...]
    steps: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.maps) != len(self.steps):
            raise ValueError(f"{len(self.maps)} maps but {len(self.steps)} step sizes")

    @property
    def dim(self) -> int:
        return self.maps[0].dim

    @property
    def tau(self) -> float:
        return float(sum(self.steps))

    def times(self) -> Tensor:
        """t_k = 1 - (h_1 + ... + h_k) / tau for k = 0..K (data at t = 1, noise at t = 0)."""
        s = torch.cumsum(torch.tensor((0.0, *self.steps), dtype=torch.float64), 0)
        return 1 - s / s[-1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(z = T_K o ... o T_1 (x), sum_k log det DT_k): data to noise, float64."""
        z = torch.as_tensor(x, dtype=torch.float64)
        log_det = torch.zeros(z.shape[0], dtype=torch.float64)
        for T in self.maps:
            z, ld = T.forward(z)
            log_det = log_det + ld
        return z, log_det

    def log_prob(self, x: Tensor) -> Tensor:
        """The model's exact log-density at x (n, d) by the change of variables."""
        z, log_det = self.forward(x)
        d = z.shape[1]
        return -0.5 * (z * z).sum(-1) - 0.5 * d * math.log(2 * math.pi) + log_det

    def generate(self, z: Tensor, *, return_trajectory: bool = False) -> FlowSample:
        """Run the blocks backwards from the noise z (n, d)."""
        x = torch.as_tensor(z, dtype=torch.float64)
        states, evals = [x], 0
        for T in reversed(self.maps):
            x, e = T.inverse(x)
            evals += e + 1
            if return_trajectory:
                states.append(x)
        if not return_trajectory:
            return FlowSample(x=x, start=z, evaluations=evals)
        return FlowSample(
            x=x,
            start=z,
            evaluations=evals,
            trajectory=torch.stack(states),
            times=self.times().flip(0),
        )

    def sample(
        self, n: int, generator: torch.Generator | None = None, *, return_trajectory: bool = False
    ) -> FlowSample:
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.generate(z, return_trajectory=return_trajectory)

    def tensors(self) -> dict[str, Tensor]:
        out = {"steps": torch.tensor(self.steps, dtype=torch.float64)}
        for k, T in enumerate(self.maps):
            out.update(T.tensors(f"block{k}"))
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> JKOFlow:
        if "steps" not in tensors:
            raise ValueError("not a JKO flow checkpoint (no 'steps' tensor)")
        steps = tuple(float(h) for h in tensors["steps"])
        maps = tuple(RidgeMap.from_tensors(tensors, f"block{k}") for k in range(len(steps)))
        return cls(maps=maps, steps=steps)
