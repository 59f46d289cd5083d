"""Extra conditioning inputs of a backbone, each embedded and ADDED to its time embedding.

A backbone built with ``conditions=("scalar",)`` is called as ``net(x, t, c)``, c one number
per sample; with k conditions it takes k extra inputs, in the order given. Each is mapped to a
vector of the width of the backbone's time embedding and added to it (DiT / MeanFlow add the
embeddings of their two times; ADM adds a class embedding the same way), so the layers after
the embedding are unchanged. Without conditions (the default) nothing here is built: the
backbone's parameters, their initial values, its state-dict keys and its outputs are those of
a backbone without this mechanism, bit for bit.

Kinds (:data:`CONDITION_KINDS`), spelled ``"kind"`` or ``"kind:argument"``:

* ``"scalar"``: a real number per sample (a flow map's second time: the step h = s - t),
  embedded by the backbone's own recipe for a time (:class:`ConditionEmbeddings` takes it:
  the MLP's sinusoidal features and a learned linear map; the UNet's sinusoid and two-layer
  MLP), with its own weights.

A class label would be one more entry, ``"class"`` with the number of classes as argument
(``"class:10"``), whose factory builds ``nn.Embedding(10, width)`` and ignores the scalar
recipe; the backbones need no change for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from .._time import broadcast_time

ScalarEmbedding = Callable[[], nn.Module]
"""The backbone's recipe for embedding one number per sample: () -> module (n,) -> (n, width)."""

ConditionFactory = Callable[[str | None, int, ScalarEmbedding], nn.Module]
"""(argument after ':' or None, width, the scalar recipe) -> module (n,) -> (n, width)."""


def _scalar(argument: str | None, width: int, embed: ScalarEmbedding) -> nn.Module:
    if argument is not None:
        raise ValueError(f"condition 'scalar' takes no argument, got 'scalar:{argument}'")
    return _Scalar(embed())


class _Scalar(nn.Module):
    """A real number per sample through the backbone's time recipe."""

    def __init__(self, embed: nn.Module):
        super().__init__()
        self.embed = embed

    def forward(self, value: Tensor, like: Tensor) -> Tensor:
        return self.embed(broadcast_time(value, like, "a scalar condition"))


CONDITION_KINDS: dict[str, ConditionFactory] = {"scalar": _scalar}
"""Condition kinds by name (module doc)."""


def parse_conditions(conditions: Sequence[str] | None) -> tuple[tuple[str, str | None], ...]:
    """``("scalar", "class:10")`` as ``(("scalar", None), ("class", "10"))``; an unknown kind
    is refused naming the known ones."""
    out = []
    for c in conditions or ():
        if not isinstance(c, str):
            raise ValueError(f"a condition is a string such as 'scalar', got {c!r}")
        kind, sep, arg = c.partition(":")
        if kind not in CONDITION_KINDS:
            raise ValueError(
                f"unknown condition {c!r}: choose one of {', '.join(sorted(CONDITION_KINDS))}"
            )
        out.append((kind, arg if sep else None))
    return tuple(out)


class ConditionEmbeddings(nn.Module):
    """The sum of the embeddings of k extra inputs, each (n,) -> (n, width) (module doc).

    ``embed`` is the backbone's recipe for a scalar (called once per scalar condition, so each
    has its own weights)."""

    def __init__(self, conditions: Sequence[str], width: int, embed: ScalarEmbedding):
        super().__init__()
        parsed = parse_conditions(conditions)
        if not parsed:
            raise ValueError("ConditionEmbeddings needs at least one condition")
        self.names = tuple(conditions)
        self.embeddings = nn.ModuleList(CONDITION_KINDS[k](a, width, embed) for k, a in parsed)

    def forward(self, values: Sequence[Tensor | float], like: Tensor) -> Tensor:
        """sum_k E_k(values[k]) for a batch like ``like`` (its first dimension)."""
        if len(values) != len(self.embeddings):
            raise ValueError(
                f"this model takes {len(self.embeddings)} extra input(s) "
                f"({', '.join(self.names)}) after t, got {len(values)}"
            )
        out = self.embeddings[0](values[0], like)
        for emb, v in zip(self.embeddings[1:], values[1:], strict=True):
            out = out + emb(v, like)
        return out


def no_conditions(values: Sequence[object]) -> None:
    """Refuse extra inputs given to a backbone built without conditions."""
    if values:
        raise ValueError(
            f"this model takes (x, t) only, got {len(values)} extra input(s): build it with "
            "conditions=... to give it more"
        )


__all__ = [
    "CONDITION_KINDS",
    "ConditionEmbeddings",
    "parse_conditions",
    "no_conditions",
]
