"""Class-conditional sample quality against the guidance scale: per-class FD (or W2), the
accuracy of a classifier on the samples, path energy and NFE, for each scale s.

For each s of a sweep the model samples ``n_per_class`` points of every class c (the same
starting noise at every s, so the rows differ by the guidance alone) and each class's samples
are compared with that class's data:

* ``fd`` / ``class_fd``: Frechet distance in a feature network's space (images; the shipped
  digits8 / mnist28 classifiers' penultimate layer) between all samples and the data, and
  between each class's samples and its data (FD is biased upward at small n: compare at equal
  ``n_per_class``, :mod:`.frechet`);
* ``w2`` / ``class_w2``: exact W2 between the flattened samples and the data (all / per class);
* ``accuracy``: the fraction of samples that a classifier assigns to the class they were drawn
  for (the shipped digit networks are classifiers: their logits; a Gaussian mixture's exact
  posterior argmax_k p(k | x) for its components);
* the path-energy decomposition of the solved ODE (:mod:`.path_energy`): PE, curvature,
  coupling gap and W2^2(noise, samples) (PE and curvature their means, the other two
  bracketed, :func:`~wasserflow.metrics.coupling_gap`), and the NFE with the network passes (a guided
  evaluation costs two rows per sample, :mod:`wasserflow.samplers.guidance`).

:func:`guidance_sweep` returns one :class:`GuidanceEvaluation` per scale; a scale whose samples
are not finite is reported with ``diverged`` True rather than stopping the sweep (high-order
solvers at large s, the point of measuring).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..data import make_source
from ..engine.model import GenerativeModel
from ..errors import InputError
from ..geometry import exact_ot
from ..samplers import Guidance
from .frechet import frechet_distance
from .interval import Interval
from .path_energy import path_energy_decomposition
from .quality import data_of

Classifier = Callable[[Tensor], Tensor]
"""Samples (n, *shape) in data space -> logits (n, K) over the run's classes."""


@dataclass(frozen=True)
class GuidanceEvaluation:
    """The numbers of one guidance scale (module doc); per-class tuples are in class order."""

    scale: float
    w: float
    sampler: str
    nfe_requested: int | None
    nfe: int
    passes: int | None
    rows: int | None
    n_per_class: int
    w2: float | None
    class_w2: tuple[float, ...]
    fd: float | None = None
    class_fd: tuple[float, ...] | None = None
    accuracy: float | None = None
    class_accuracy: tuple[float, ...] | None = None
    path_energy: float | None = None
    curvature: float | None = None
    coupling_gap: Interval | None = None
    endpoint_w2_squared: Interval | None = None
    seconds: float = 0.0
    diverged: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def labelled_reference(spec: str, n_per_class: int, seed: int) -> tuple[Tensor, Tensor]:
    """The data of ``spec`` with their classes, in data space, float64: a finite set's points
    (all of them), else ``n_per_class`` times the number of classes fresh draws."""
    src = make_source(spec)
    if not src.labelled:
        src.sample_labelled(1)  # raises the source's reason in one line
    if src.points is not None:
        return src.points.to(torch.float64), src.targets
    k = src.label_info.num_classes
    x, y = src.sample_labelled(k * n_per_class, torch.Generator().manual_seed(seed))
    return x.to(torch.float64), y


def mixture_classifier(spec: str) -> Classifier | None:
    """The exact posterior log p(k | x) + const of a Gaussian-mixture source's components (its
    Bayes classifier), or None when ``spec`` is not a mixture labelled by component."""
    src = make_source(spec)
    m = src.mixture
    if m is None or not src.labelled or src.label_info.num_classes != m.weights.shape[0]:
        return None
    return lambda x: m.log_joint(x.reshape(x.shape[0], -1).to(torch.float64))


def network_classifier(extractor) -> Classifier:
    """The logits of a shipped digit network (a :class:`~wasserflow.metrics.FeatureExtractor`
    over a :class:`~wasserflow.metrics.features.SmallCNN`), images clipped to [-1, 1]."""
    net = extractor.net

    @torch.no_grad()
    def logits(x: Tensor) -> Tensor:
        p = next(net.parameters())
        out = [
            net(x[i : i + 500].to(p.device, torch.float32).clamp(-1.0, 1.0)).cpu()
            for i in range(0, x.shape[0], 500)
        ]
        return torch.cat(out).to(torch.float64)

    return logits


def default_classifier(run: GenerativeModel, features=None) -> Classifier | None:
    """The classifier of ``run``'s samples: the feature network's own head when it is a
    classifier over as many classes as the run has (the digit networks), a mixture's Bayes
    classifier for a mixture source, else None."""
    net = getattr(features, "net", None)
    head = getattr(net, "head", None)
    if head is not None and getattr(head, "out_features", None) == run.num_classes:
        return network_classifier(features)
    return mixture_classifier(data_of(run))


def guidance_sweep(
    run: GenerativeModel,
    scales: Sequence[float],
    *,
    n_per_class: int = 200,
    seed: int = 0,
    sampler: str | None = None,
    nfe: int | None = None,
    features=None,
    classifier: Classifier | None = None,
    interval: tuple[float, float] | None = None,
    batched: bool = True,
    options: dict | None = None,
) -> list[GuidanceEvaluation]:
    """Evaluate a class-conditional ``run`` at each guidance scale of ``scales`` (module doc).

    ``features``: a feature extractor for FD (images; None: W2 only); ``classifier``: logits of
    samples (default :func:`default_classifier`); ``interval``/``batched``: the
    :class:`~wasserflow.samplers.Guidance` options; ``options``: the sampler's options."""
    k = run.num_classes
    if k is None:
        raise InputError(
            f"{run.method} is not class-conditional: guidance needs a run trained with "
            "--conditional"
        )
    if n_per_class < 2:
        raise InputError(f"n_per_class must be at least 2, got {n_per_class}")
    ref_x, ref_y = labelled_reference(data_of(run), n_per_class, seed + 1)
    ref = _Reference(ref_x, ref_y, k, features)
    clf = classifier if classifier is not None else default_classifier(run, features)
    labels = torch.arange(k).repeat_interleave(n_per_class)
    rows = []
    for s in scales:
        g = Guidance(scale=float(s), interval=interval, batched=batched)
        rows.append(_one_scale(run, g, labels, ref, clf, sampler, nfe, seed, options))
    return rows


class _Reference:
    """The labelled data, flattened, with their features (when asked) per class."""

    def __init__(self, x: Tensor, y: Tensor, k: int, features) -> None:
        self.x, self.y, self.k, self.features = x.reshape(x.shape[0], -1), y, k, features
        self.feats = None if features is None else features(x.to(torch.float32))

    def rows(self, c: int) -> Tensor:
        return self.y == c


def _one_scale(run, g, labels, ref, clf, sampler, nfe, seed, options) -> GuidanceEvaluation:
    n = labels.shape[0]
    t0 = time.perf_counter()
    out = run.sample(
        n,
        sampler=sampler,
        nfe=nfe,
        generator=torch.Generator().manual_seed(seed),
        data_space=False,
        labels=labels,
        guidance=g,
        options=options,
    )
    seconds = time.perf_counter() - t0
    x = run.scaler.inverse(out.x.reshape(n, -1)).reshape(out.x.shape).to(torch.float64)
    base = {
        "scale": g.scale,
        "w": g.w,
        "sampler": out.sampler,
        "nfe_requested": nfe,
        "nfe": out.nfe,
        "passes": out.passes,
        "rows": out.rows,
        "n_per_class": n // ref.k,
        "seconds": seconds,
    }
    if not torch.isfinite(x).all():
        return GuidanceEvaluation(**base, w2=None, class_w2=(), diverged=True)
    flat = x.reshape(n, -1)
    per = [labels == c for c in range(ref.k)]
    qual = _quality(flat, x, per, ref)
    acc = None if clf is None else _accuracy(clf(x), labels, ref.k)
    geo = {}
    if out.energy is not None:
        d = path_energy_decomposition(out.start, out.x, out.energy)
        g = d.coupling_gap
        geo = {
            "path_energy": d.path_energy.value,
            "curvature": d.curvature.value,
            "coupling_gap": Interval(g.value, g.lower, g.upper, g.level, g.method, g.n),
            "endpoint_w2_squared": d.w2_squared,
        }
    return GuidanceEvaluation(**base, **qual, **(acc or {}), **geo)


def _quality(flat: Tensor, x: Tensor, per: list[Tensor], ref: _Reference) -> dict:
    """Overall and per-class W2 (and FD with features)."""
    out = {
        "w2": exact_ot(flat, ref.x).w2,
        "class_w2": tuple(exact_ot(flat[m], ref.x[ref.rows(c)]).w2 for c, m in enumerate(per)),
    }
    if ref.features is not None:
        f = ref.features(x.to(torch.float32))
        out["fd"] = frechet_distance(f, ref.feats).value
        out["class_fd"] = tuple(
            frechet_distance(f[m], ref.feats[ref.rows(c)]).value for c, m in enumerate(per)
        )
    return out


def _accuracy(logits: Tensor, labels: Tensor, k: int) -> dict:
    """The fraction of samples classified as their class, overall and per class."""
    hit = (logits.argmax(dim=1) == labels).to(torch.float64)
    return {
        "accuracy": float(hit.mean()),
        "class_accuracy": tuple(float(hit[labels == c].mean()) for c in range(k)),
    }


__all__ = [
    "Classifier",
    "GuidanceEvaluation",
    "default_classifier",
    "guidance_sweep",
    "labelled_reference",
    "mixture_classifier",
    "network_classifier",
]
