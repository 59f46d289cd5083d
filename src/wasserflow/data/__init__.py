"""Data measures rho_1 for training and evaluation (imports only :mod:`wasserflow.geometry`).

Sources for the training loop (:mod:`.source`)::

    src = make_source("moons")                 # or "8gaussians", "gmm2d", "digits", "pts.npy"
    g = torch.Generator().manual_seed(0)
    x = src.sample(256, g)                     # (256, *src.shape), src.dtype (float32 default)
    src.name, src.spec, src.shape, src.dim     # spec rebuilds the source: make_source(src.spec)
    src.mixture                                # exact GaussianMixture law, or None
    src.points                                 # the finite set (digits, files), or None
    scaler = src.fit_standardizer()            # Standardizer: JSON via to_dict()/from_dict()
    x_s = scaler.transform(x); x = scaler.inverse(x_s)

Labels (:mod:`.labels`), the same calls for every source::

    src.labelled, src.label_info               # bool; LabelInfo(num_classes, names) or None
    x, y = src.sample_labelled(256, g)         # y (256,) int64 in [0, num_classes)
    src.targets                                # class of each of src.points (finite sets)

``sample_labelled(n, g)[0]`` is ``sample(n, g)`` bit for bit. Labelled: digits, gmm2d, gmm8d,
the toy sets but swissroll, ``mnist:`` with its labels file, ``cifar10:``, ``images:`` class
folders, ``.npz`` files with ``y``; ``sample_labelled`` on any other source is a ``ValueError``.

``DataSource`` (abstract) has three kinds: ``SamplerSource`` (i.i.d. sampler of a known law),
``MixtureSource`` (Gaussian mixture, exact log-density and score) and ``FiniteSource``
(empirical measure, sampled with replacement). All randomness is drawn from the explicit CPU
``torch.Generator``; samples are CPU tensors.

Toy 2-D sets (:mod:`.toy2d`): ``moons`` (TorchCFM's law, i.i.d. angles), ``eight_gaussians``
(TorchCFM's; exact law :func:`eight_gaussians_mixture`, std 0.1 ** 0.25), ``checkerboard``,
``spirals``, ``circles``, ``swiss_roll``; each ``(n, generator=None, dtype=float32) -> (n, 2)``;
registry ``DATASETS`` / ``get_dataset(name)``.

Gaussian mixtures (:mod:`.mixtures`): ``gaussian2d``, ``gmm2d``, ``gmm8d``, ``8gaussians``;
registry ``MIXTURES`` / ``get_mixture(name) -> GaussianMixture``.

Images (:mod:`.images`, needs ``pip install wasserflow[data]``): scikit-learn's 8x8 digits,
``load_digits_vectors() -> (1797, 64)`` in [-1, 1] (raw v in 0..16 -> v / 8 - 1),
``load_digits_images() -> (1797, 1, 8, 8)``, ``vectors_to_images`` / ``images_to_vectors``.

Image files (:mod:`.image_files`, no pickle, no download): specs ``mnist:PATH[,labels=PATH]``
(IDX, raw or .gz), ``cifar10:PATH`` (binary batches or their folder), ``images:FOLDER`` (PNG/JPEG, Pillow),
``array:PATH`` / ``nchw:PATH`` / ``nhwc:PATH`` (.npy/.npz), each with an optional ``,flip``;
``make_source`` returns an ``ImageSource`` (N, C, H, W) in [-1, 1] (uint8 v -> v / 127.5 - 1).

Formats (:mod:`.registry`): every spec is read by a format registered with
``@register_format(name, help=...)`` (images: ``@register_image_format(kind, help)``);
``make_source``, ``source_names()`` and ``data_help()`` (the ``--data`` help) read
:data:`FORMATS`, so a new format is one module, its import here and its test.

Files (:mod:`.files`): ``load_points(path) -> (n, d)`` from .npy, .npz, .csv, .pt/.pth; every
bad file raises ``ValueError`` naming the file and the problem.
"""

from .files import load_points
from .image_files import (
    ImageSet,
    load_cifar10_binary,
    load_idx_images,
    load_idx_labels,
    load_image_array,
    load_image_folder,
    register_image_format,
)
from .images import (
    DIGITS_RANGE,
    DIGITS_SHAPE,
    images_to_vectors,
    load_digits_images,
    load_digits_labels,
    load_digits_vectors,
    vectors_to_images,
)
from .labels import ClassLabels, LabelInfo, check_targets, sample_mixture_labelled
from .mixtures import MIXTURES, gaussian2d, get_mixture, gmm2d, gmm8d
from .registry import FORMATS, DataFormat, data_help, make_source, register_format, source_names
from .scaling import Standardizer
from .source import DataSource, FiniteSource, ImageSource, MixtureSource, SamplerSource
from .toy2d import (
    DATASETS,
    checkerboard,
    circles,
    eight_gaussians,
    eight_gaussians_mixture,
    get_dataset,
    moons,
    spirals,
    swiss_roll,
)

__all__ = [
    "DATASETS",
    "DIGITS_RANGE",
    "DIGITS_SHAPE",
    "FORMATS",
    "MIXTURES",
    "ClassLabels",
    "DataFormat",
    "DataSource",
    "FiniteSource",
    "ImageSet",
    "ImageSource",
    "LabelInfo",
    "MixtureSource",
    "SamplerSource",
    "Standardizer",
    "check_targets",
    "checkerboard",
    "circles",
    "data_help",
    "eight_gaussians",
    "eight_gaussians_mixture",
    "gaussian2d",
    "get_dataset",
    "get_mixture",
    "gmm2d",
    "gmm8d",
    "images_to_vectors",
    "load_digits_images",
    "load_digits_labels",
    "load_digits_vectors",
    "load_cifar10_binary",
    "load_idx_images",
    "load_idx_labels",
    "load_image_array",
    "load_image_folder",
    "load_points",
    "make_source",
    "moons",
    "register_format",
    "register_image_format",
    "sample_mixture_labelled",
    "source_names",
    "spirals",
    "swiss_roll",
    "vectors_to_images",
]
