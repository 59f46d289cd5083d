"""Time-conditioned MLP backbones, shape-agnostic: inputs (N, *shape) are flattened to (N, d).

The network is one ``nn.Sequential`` ``net``:
Linear(d + e, w), act, [Linear(w, w), act] x (depth - 1), Linear(w, out), fed with the
concatenation [x_flat, phi(t)], phi a time embedding of width e (sinusoidal, raw t, or none).
With ``time_embedding="linear"``, width 64, depth 3 and SELU this is exactly TorchCFM's
``MLP(dim, w=64, time_varying=True)`` (same layers, same state-dict keys, t as last input).

Extra conditions (``conditions``, :mod:`.conditioning`; none by default): the network is called
as ``net(x, t, c_1, ..., c_k)`` and sees [x_flat, phi(t) + sum_k E_k(c_k)], a scalar condition
embedded as A_k phi(c_k) with its own learned e x e matrix A_k (module ``cond``). They need the
sinusoidal time embedding: added to a raw t (width 1) a second number would be confused with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._time import broadcast_time
from .conditioning import ConditionEmbeddings, no_conditions
from .embedding import ACTIVATIONS, LinearTime, SinusoidalTimeEmbedding, make_activation
from .registry import register_model

TIME_EMBEDDINGS = ("sinusoidal", "linear", "none")


class TimeMLP(nn.Module):
    """f(x, t) -> (N, out_dim) for x of shape (N, *shape) and t a scalar or (N,).

    Args:
        shape: the non-batch shape of x (d = prod(shape) inputs).
        out_dim: number of outputs.
        width, depth: hidden width and number of hidden layers (depth >= 1).
        activation: a key of :data:`~wasserflow.models.embedding.ACTIVATIONS`.
        time_embedding: "sinusoidal" (:class:`SinusoidalTimeEmbedding` of width ``embed_dim``),
            "linear" (t itself) or "none" (t is ignored and may be omitted).
        conditions: extra inputs after t (module doc), none by default.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        out_dim: int,
        width: int = 256,
        depth: int = 3,
        activation: str = "silu",
        time_embedding: str = "sinusoidal",
        embed_dim: int = 64,
        conditions: tuple[str, ...] = (),
    ):
        super().__init__()
        if depth < 1 or width < 1 or out_dim < 1:
            raise ValueError(f"need depth, width, out_dim >= 1, got {depth}, {width}, {out_dim}")
        if time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(
                f"unknown time_embedding {time_embedding!r}: choose one of {TIME_EMBEDDINGS}"
            )
        self.shape = tuple(int(s) for s in shape)
        self.in_dim = math.prod(self.shape)
        self.time_embedding = time_embedding
        self.embed: nn.Module | None
        if time_embedding == "sinusoidal":
            self.embed = SinusoidalTimeEmbedding(embed_dim)
        elif time_embedding == "linear":
            self.embed = LinearTime()
        else:
            self.embed = None
        e = 0 if self.embed is None else self.embed.dim
        layers: list[nn.Module] = [nn.Linear(self.in_dim + e, width), make_activation(activation)]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), make_activation(activation)]
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.cond: ConditionEmbeddings | None = None
        if conditions:  # built after the layers: without conditions the same initial weights
            if time_embedding != "sinusoidal":
                raise ValueError(
                    f"extra conditions {list(conditions)} are added to the time embedding, "
                    f"which must be sinusoidal (time_embedding is {time_embedding!r})"
                )
            self.cond = ConditionEmbeddings(
                conditions, e, lambda: nn.Sequential(SinusoidalTimeEmbedding(e), nn.Linear(e, e))
            )

    def flatten(self, x: Tensor) -> Tensor:
        if math.prod(x.shape[1:]) != self.in_dim:
            raise ValueError(
                f"input of shape {tuple(x.shape)} does not match the model's shape {self.shape}"
            )
        return x.reshape(x.shape[0], self.in_dim)

    def features(self, x: Tensor, t: Tensor | float | None, *conditions: Tensor) -> Tensor:
        """[x_flat, phi(t) (+ the conditions' embeddings)] of shape (N, d + e)."""
        flat = self.flatten(x)
        if self.cond is None:
            no_conditions(conditions)
        if self.embed is None:
            return flat
        if t is None:
            raise ValueError("this model is time-conditioned: pass t (a float or a (N,) tensor)")
        phi = self.embed(broadcast_time(t, flat))
        if self.cond is not None:
            phi = phi + self.cond(conditions, flat)
        return torch.cat([flat, phi], dim=1)

    def forward(self, x: Tensor, t: Tensor | float | None = None, *conditions: Tensor) -> Tensor:
        return self.net(self.features(x, t, *conditions))


class VectorFieldMLP(TimeMLP):
    """v(x, t) with the shape of x: (N, *shape) -> (N, *shape) (velocity, noise or score)."""

    def __init__(self, shape: tuple[int, ...], **kwargs):
        super().__init__(shape, math.prod(tuple(shape)), **kwargs)

    def forward(self, x: Tensor, t: Tensor | float | None = None, *conditions: Tensor) -> Tensor:
        return super().forward(x, t, *conditions).reshape(x.shape)


class PotentialMLP(TimeMLP):
    """A scalar potential E(x) (or E(x, t)): (N, *shape) -> (N,)."""

    def __init__(self, shape: tuple[int, ...], **kwargs):
        kwargs.setdefault("time_embedding", "none")
        super().__init__(shape, 1, **kwargs)

    def forward(self, x: Tensor, t: Tensor | float | None = None, *conditions: Tensor) -> Tensor:
        return super().forward(x, t, *conditions)[:, 0]


@dataclass(frozen=True)
class MLPConfig:
    """Options of the ``mlp`` backbone (:class:`TimeMLP`).

    Attributes:
        width: hidden width.
        depth: number of hidden layers.
        activation: a key of :data:`~wasserflow.models.embedding.ACTIVATIONS`.
        time_embedding: "sinusoidal", "linear" (t as an input, TorchCFM's net) or "none"; None
            means sinusoidal for a field and none for a scalar potential (Energy Matching's E
            is time-independent).
        embed_dim: width of the sinusoidal embedding (even).
    """

    width: int = 128
    depth: int = 3
    activation: str = "silu"
    time_embedding: str | None = None
    embed_dim: int = 64

    def __post_init__(self) -> None:
        for key in ("width", "depth", "embed_dim"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"model config {key!r} must be a positive int, got {v!r}")
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {self.embed_dim}")
        if str(self.activation).lower() not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}: choose one of {sorted(ACTIVATIONS)}"
            )
        if self.time_embedding is not None and self.time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(
                f"unknown time_embedding {self.time_embedding!r}: one of {TIME_EMBEDDINGS}"
            )


@register_model("mlp", MLPConfig, conditions=True)
def mlp(
    shape: tuple[int, ...], config: MLPConfig, *, scalar: bool = False, conditions: tuple = ()
) -> nn.Module:
    """A :class:`VectorFieldMLP`, or with ``scalar`` a :class:`PotentialMLP` (state-dict keys
    ``net.*``, as every checkpoint has them; ``cond.*`` with extra ``conditions``)."""
    time = config.time_embedding or ("none" if scalar else "sinusoidal")
    kwargs = {
        "width": config.width,
        "depth": config.depth,
        "activation": str(config.activation).lower(),
        "time_embedding": time,
        "embed_dim": config.embed_dim,
        "conditions": tuple(conditions),
    }
    return PotentialMLP(shape, **kwargs) if scalar else VectorFieldMLP(shape, **kwargs)
