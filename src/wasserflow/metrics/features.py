"""Feature networks for Frechet distances: small digit classifiers shipped with the package, and
the FID InceptionV3 from a local weights file.

=========  ============  =====  =============================================================
name       images        width  network
=========  ============  =====  =============================================================
digits8    (1, 8, 8)     64     CNN trained on scikit-learn's digits (first 1,297 images;
                                accuracy on the last 500 in the file's metadata)
mnist28    (1, 28, 28)   128    CNN trained on the first 8,000 MNIST test images (accuracy on
                                the last 2,000 in the file's metadata)
inception  any, C = 1/3  2048   FID InceptionV3 pool3 (:mod:`.inception`, weights from a file)
=========  ============  =====  =============================================================

The digit networks are :class:`SmallCNN`: stages of 3x3 convolutions (padding 1) with ReLU,
each stage closed by a 2x2 max pool, then one linear layer with ReLU (the *features*, the
penultimate layer) and a linear classifier over the 10 classes. Their weights are safetensors
files in ``wasserflow/metrics/weights/`` whose metadata (JSON) holds the architecture, the
data split and the held-out accuracy; ``scripts/train_feature_nets.py`` trains them
(deterministic, CPU, a few minutes).

A :class:`FeatureExtractor` takes images (n, C, H, W) in [-1, 1] (wasserflow's pixel range;
values outside are clipped to it, as image pipelines clip samples before saving them) and
returns (n, k) float64 features, computed in batches, in eval mode, under ``no_grad``,
deterministically (the same input gives the same bits on the same machine).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import InputError
from .frechet import FeatureStats, FrechetResult, feature_stats, frechet_distance
from .inception import FEATURE_DIM as INCEPTION_DIM
from .inception import load_inception

__all__ = [
    "FEATURE_NETS",
    "FeatureExtractor",
    "SmallCNN",
    "SmallCNNSpec",
    "WEIGHTS_DIR",
    "default_feature_extractor",
    "feature_extractor",
    "image_frechet_distance",
    "load_feature_net",
    "save_feature_net",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Where the shipped feature networks live (installed as package data)."""
META_KEY = "wasserflow_feature_net"
"""The safetensors metadata key holding the network's JSON description."""


@dataclass(frozen=True)
class SmallCNNSpec:
    """Architecture of a :class:`SmallCNN`: ``stages`` (output channels of each 3x3 conv,
    one tuple per stage, each stage followed by a 2x2 max pool), ``feature_dim`` (width of the
    penultimate layer), ``n_classes``."""

    image_shape: tuple[int, int, int]
    stages: tuple[tuple[int, ...], ...]
    feature_dim: int
    n_classes: int = 10

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.image_shape)
        stages = tuple(tuple(int(c) for c in s) for s in self.stages)
        if len(shape) != 3 or min(shape) < 1 or not stages or not all(stages):
            raise InputError(f"bad SmallCNN spec: image_shape {shape}, stages {stages}")
        if min(shape[1:]) >> len(stages) < 1:
            raise InputError(f"{len(stages)} max pools shrink {shape[1:]} to nothing")
        object.__setattr__(self, "image_shape", shape)
        object.__setattr__(self, "stages", stages)

    def to_dict(self) -> dict:
        return {
            "image_shape": list(self.image_shape),
            "stages": [list(s) for s in self.stages],
            "feature_dim": self.feature_dim,
            "n_classes": self.n_classes,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SmallCNNSpec:
        return cls(
            image_shape=tuple(d["image_shape"]),
            stages=tuple(tuple(s) for s in d["stages"]),
            feature_dim=int(d["feature_dim"]),
            n_classes=int(d.get("n_classes", 10)),
        )


class SmallCNN(nn.Module):
    """Conv stages -> flatten -> Linear + ReLU (features) -> Linear (logits)."""

    def __init__(self, spec: SmallCNNSpec):
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        c, h, w = spec.image_shape
        for stage in spec.stages:
            for cout in stage:
                layers += [nn.Conv2d(c, cout, 3, padding=1), nn.ReLU()]
                c = cout
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        self.body = nn.Sequential(*layers)
        self.feature = nn.Linear(c * h * w, spec.feature_dim)
        self.head = nn.Linear(spec.feature_dim, spec.n_classes)

    def features(self, x: Tensor) -> Tensor:
        """(n, C, H, W) -> (n, feature_dim), the penultimate layer (after its ReLU)."""
        return torch.relu(self.feature(self.body(x).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """(n, C, H, W) -> (n, n_classes) logits."""
        return self.head(self.features(x))


def save_feature_net(path: str | os.PathLike, net: SmallCNN, info: dict) -> None:
    """Write ``net``'s weights and ``info`` (JSON-serialisable: name, data split, accuracy ...)
    as one safetensors file, atomically; the architecture is stored beside ``info``."""
    from safetensors.torch import save as serialize

    from .._atomic import write_bytes

    meta = {**info, "architecture": net.spec.to_dict(), "format": 1}
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    write_bytes(path, serialize(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)}))


def load_feature_net(path: str | os.PathLike) -> tuple[SmallCNN, dict]:
    """A :class:`SmallCNN` (eval mode, no gradients) and its metadata from a safetensors file."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise InputError(f"feature network file {str(p)!r} not found: check the path")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = (f.metadata() or {}).get(META_KEY)
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise InputError(
            f"{str(p)!r} is not a readable safetensors file ({type(err).__name__}): "
            "retrain it with scripts/train_feature_nets.py"
        ) from None
    if meta is None:
        raise InputError(
            f"{str(p)!r} has no {META_KEY!r} metadata: it is not a wasserflow feature network "
            "(write one with scripts/train_feature_nets.py)"
        )
    info = json.loads(meta)
    net = SmallCNN(SmallCNNSpec.from_dict(info["architecture"]))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(
            f"{str(p)!r}: weights do not fit the architecture in its metadata "
            f"({str(err).splitlines()[0]}): retrain it with scripts/train_feature_nets.py"
        ) from None
    net.requires_grad_(False)
    return net.eval(), info


class FeatureExtractor:
    """Images (n, C, H, W) in [-1, 1] -> (n, k) float64 features (see the module doc).

    ``name``: the network's name; ``dim``: k; ``image_shape``: the (C, H, W) it requires, or
    None (any size; Inception); ``info``: the network's metadata (data split, accuracy).
    """

    def __init__(
        self,
        name: str,
        net: nn.Module,
        featurize: Callable[[Tensor], Tensor],
        dim: int,
        *,
        image_shape: tuple[int, int, int] | None,
        device: str | torch.device = "cpu",
        batch_size: int = 500,
        info: dict | None = None,
    ):
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.name, self.dim, self.image_shape = name, int(dim), image_shape
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.net = net.to(self.device).eval()
        self._featurize = featurize
        self.info = dict(info or {})

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.name!r}, dim={self.dim}, device={str(self.device)!r})"

    def _check(self, images) -> Tensor:
        x = torch.as_tensor(images)
        if x.dim() != 4:
            raise InputError(
                f"{self.name} features: images must have shape (n, C, H, W), got {tuple(x.shape)}"
            )
        if self.image_shape is not None and tuple(x.shape[1:]) != self.image_shape:
            raise InputError(
                f"{self.name} features take images of shape (n, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(x.shape)}: use default_feature_extractor(image_shape) for other sizes"
            )
        if not torch.is_floating_point(x):
            raise InputError(
                f"{self.name} features: images must be floats in [-1, 1], got {x.dtype} "
                "(uint8 pixels v map to v / 127.5 - 1)"
            )
        if not torch.isfinite(x).all():
            raise InputError(f"{self.name} features: the images hold NaN or inf")
        return x

    @torch.no_grad()
    def __call__(self, images) -> Tensor:
        x = self._check(images)
        out = []
        for i in range(0, x.shape[0], self.batch_size):
            xb = x[i : i + self.batch_size].to(self.device, torch.float32).clamp(-1.0, 1.0)
            out.append(self._featurize(xb).to("cpu", torch.float64))
        if not out:
            return torch.zeros(0, self.dim, dtype=torch.float64)
        return torch.cat(out)

    def stats(self, images) -> FeatureStats:
        """Mean and covariance of the images' features, tagged with this network's name."""
        return feature_stats(self(images), feature=self.name)


def _small(path: Path, name: str | None, device, batch_size: int | None) -> FeatureExtractor:
    net, info = load_feature_net(path)
    return FeatureExtractor(
        name or info.get("name", path.stem),
        net,
        net.features,
        net.spec.feature_dim,
        image_shape=net.spec.image_shape,
        device=device,
        batch_size=batch_size or 500,
        info=info,
    )


def _inception(weights, device, batch_size: int | None) -> FeatureExtractor:
    net = load_inception(weights, device)
    return FeatureExtractor(
        "inception",
        net,
        net,
        INCEPTION_DIM,
        image_shape=None,
        device=device,
        batch_size=batch_size or 50,
        info={"name": "inception", "layer": "pool3"},
    )


def _shipped(name: str) -> Callable[..., FeatureExtractor]:
    def build(device, batch_size, weights) -> FeatureExtractor:
        path = Path(weights) if weights else WEIGHTS_DIR / f"{name}.safetensors"
        return _small(path, name, device, batch_size)

    return build


FEATURE_NETS: dict[str, Callable[..., FeatureExtractor]] = {
    "digits8": _shipped("digits8"),
    "mnist28": _shipped("mnist28"),
    "inception": lambda device, batch_size, weights: _inception(weights, device, batch_size),
}
"""name -> builder(device, batch_size, weights); ``weights`` None means the shipped file (the
digit networks) or the file :func:`~wasserflow.metrics.inception.inception_weights_path` finds."""


def feature_extractor(
    name_or_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    batch_size: int | None = None,
    weights: str | os.PathLike | None = None,
) -> FeatureExtractor:
    """A registered feature network by name (:data:`FEATURE_NETS`: digits8, mnist28,
    inception) or a file: a ``.safetensors`` written by :func:`save_feature_net`, or
    InceptionV3 weights (``.pth``/``.pt``, pytorch-fid's or torch-fidelity's). ``weights``
    overrides the registered network's file (for inception: the weights path)."""
    key = str(name_or_path)
    if key.lower() in FEATURE_NETS:
        return FEATURE_NETS[key.lower()](device, batch_size, weights)
    p = Path(key).expanduser()
    if p.suffix == ".safetensors" and p.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                is_small = META_KEY in (f.metadata() or {})
        except Exception:
            is_small = False
        return (
            _small(p, None, device, batch_size) if is_small else _inception(p, device, batch_size)
        )
    if p.suffix in (".pth", ".pt") or p.is_file():
        return _inception(p, device, batch_size)
    raise InputError(
        f"unknown feature network {key!r}: give one of {sorted(FEATURE_NETS)} or the path of a "
        ".safetensors feature network or an InceptionV3 weights file"
    )


_DEFAULTS = {(1, 8, 8): "digits8", (1, 28, 28): "mnist28"}


def default_feature_extractor(
    image_shape, device: str | torch.device = "cpu", **kwargs
) -> FeatureExtractor:
    """digits8 for (1, 8, 8), mnist28 for (1, 28, 28), inception for anything else."""
    shape = tuple(int(s) for s in image_shape)
    return feature_extractor(_DEFAULTS.get(shape, "inception"), device, **kwargs)


def image_frechet_distance(
    a, b, extractor: FeatureExtractor | str | None = None, device: str | torch.device = "cpu"
) -> FrechetResult:
    """FD between two image sets (n, C, H, W) in [-1, 1] in a network's feature space
    (``extractor``: a :class:`FeatureExtractor`, a name, or None for the default of the
    images' shape). FD is comparable only at equal n: see :mod:`.frechet`."""
    if extractor is None:
        extractor = default_feature_extractor(tuple(torch.as_tensor(a).shape[1:]), device)
    elif not isinstance(extractor, FeatureExtractor):
        extractor = feature_extractor(extractor, device)
    return frechet_distance(extractor.stats(a), extractor.stats(b))
