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

* ``"class:K"``: a class label per sample, an int64 index in [0, K], K meaning "no class"
  (the null label of classifier-free guidance, Ho & Salimans 2022). It is a learned
  ``nn.Embedding(K + 1, width)``: K + 1 rows, the null class a learned row like the others
  (k-diffusion's and DiT's choice; flow_matching freezes its null row at zero). Floats, labels
  outside [0, K] and a batch of the wrong length are refused in one line.

A class embedding is a lookup that needs no time recipe, so it may also condition a backbone
without a time embedding (a time-independent energy E(x, c)): :func:`standalone` says whether
every condition is of such a kind, and the backbone then feeds the conditions' embedding
where its time embedding would go. A scalar condition is embedded by the time's recipe and
needs a time-conditioned backbone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
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


def _class(argument: str | None, width: int, embed: ScalarEmbedding) -> nn.Module:
    try:
        k = int(argument) if argument is not None else 0
    except ValueError:
        k = 0
    if k < 1:
        raise ValueError(
            f"condition 'class' needs the number of classes K >= 1, as 'class:10', got "
            f"'class{'' if argument is None else ':' + argument}'"
        )
    return ClassEmbedding(k, width)


class ClassEmbedding(nn.Module):
    """A class label y in [0, K] (K the null class) as the learned row E[y] of a (K + 1) x width
    table (module doc)."""

    def __init__(self, num_classes: int, width: int):
        super().__init__()
        self.num_classes = int(num_classes)
        self.table = nn.Embedding(self.num_classes + 1, width)

    @property
    def null(self) -> int:
        """The index of the null class (no label): K."""
        return self.num_classes

    def forward(self, value: Tensor, like: Tensor) -> Tensor:
        return self.table(class_labels(value, self.num_classes, like.shape[0]).to(like.device))


def class_labels(value: object, num_classes: int, n: int) -> Tensor:
    """``value`` as n int64 class labels in [0, K] (K = ``num_classes``, the null class): an
    int is repeated n times; a tensor of integers must hold n of them; anything else is refused
    in one line."""
    if isinstance(value, bool):
        raise ValueError(f"a class label is an integer in [0, {num_classes}], got {value!r}")
    y = torch.as_tensor(value)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(
            f"class labels must be integers in [0, {num_classes}] ({num_classes}: no class), "
            f"got a {y.dtype} tensor"
        )
    y = y.to(torch.int64)
    if y.dim() == 0:
        y = y.expand(n)
    y = y.reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{y.shape[0]} class labels for a batch of {n}: give one per sample")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > num_classes):
        raise ValueError(
            f"class labels must lie in [0, {num_classes}] ({num_classes}: no class), got "
            f"{int(y.min())}..{int(y.max())}"
        )
    return y


CONDITION_KINDS: dict[str, ConditionFactory] = {"scalar": _scalar, "class": _class}
"""Condition kinds by name (module doc)."""

STANDALONE_KINDS = frozenset({"class"})
"""Kinds embedded without the backbone's time recipe (they may condition a backbone that has
no time embedding)."""


def standalone(conditions: Sequence[str] | None) -> bool:
    """Whether every condition is of a :data:`STANDALONE_KINDS` kind (False for none)."""
    parsed = parse_conditions(conditions)
    return bool(parsed) and all(k in STANDALONE_KINDS for k, _ in parsed)


def class_count(conditions: Sequence[str] | None) -> int | None:
    """K of the ``"class:K"`` condition among ``conditions`` (None without one)."""
    for kind, arg in parse_conditions(conditions):
        if kind == "class":
            return int(arg) if arg and arg.isdigit() else None
    return None


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


class WithLabels(nn.Module):
    """``net`` with class labels bound as its last extra input:
    ``WithLabels(net, y)(x, t, *extra) = net(x, t, *extra, y)`` and, for an energy model, ``.energy``
    alike. ``labels``: (n,) int64 for a batch of n rows (training's labels after dropout, a
    sampler's classes), or one int for every row (the null class K: the unconditional model).
    Its parameters are ``net``'s."""

    def __init__(self, net: nn.Module, labels: Tensor | int):
        super().__init__()
        self.net = net
        self.labels = labels

    def forward(self, x: Tensor, t: Tensor | float | None = None, *extra: Tensor) -> Tensor:
        return self.net(x, t, *extra, self.labels)

    def energy(self, x: Tensor, t: Tensor | float | None = None, *extra: Tensor) -> Tensor:
        """The bound potential E(x, t, ..., y) of an energy model (``net.energy``)."""
        return self.net.energy(x, t, *extra, self.labels)


def _condition_prefixes(module: nn.Module) -> dict[tuple[str, str], str]:
    """{(the owner's module name, a condition's name): the state-dict prefix of its embedding}
    for every :class:`ConditionEmbeddings` inside ``module``."""
    out = {}
    for owner, m in module.named_modules():
        if isinstance(m, ConditionEmbeddings):
            base = f"{owner}.embeddings." if owner else "embeddings."
            for i, name in enumerate(m.names):
                out[(owner, name)] = f"{base}{i}."
    return out


def align_conditions(
    state: dict[str, Tensor], source: nn.Module, target: nn.Module
) -> dict[str, Tensor]:
    """``source``'s state dict ``state`` with each condition's embedding renamed to where
    ``target`` keeps the same condition: a backbone built with conditions ("class:10",) keeps the
    class embedding at index 0, one built with ("scalar", "class:10") at index 1. A condition
    ``target`` lacks keeps a name no module of ``target`` has (``<no CONDITION>.KEY``), so a
    caller comparing the two state dicts sees it as foreign."""
    theirs, ours = _condition_prefixes(source), _condition_prefixes(target)
    renames = {prefix: ours.get(key, f"<no {key[1]}>.{prefix}") for key, prefix in theirs.items()}
    out = {}
    for k, v in state.items():
        old = next((p for p in renames if k.startswith(p)), None)
        out[k if old is None else renames[old] + k[len(old) :]] = v
    return out


def no_conditions(values: Sequence[object]) -> None:
    """Refuse extra inputs given to a backbone built without conditions."""
    if values:
        raise ValueError(
            f"this model takes (x, t) only, got {len(values)} extra input(s): build it with "
            "conditions=... to give it more"
        )


__all__ = [
    "align_conditions",
    "CONDITION_KINDS",
    "STANDALONE_KINDS",
    "ClassEmbedding",
    "WithLabels",
    "class_count",
    "class_labels",
    "standalone",
    "ConditionEmbeddings",
    "parse_conditions",
    "no_conditions",
]
