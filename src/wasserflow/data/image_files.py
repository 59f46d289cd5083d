"""Image data sets read from local files, without pickle and without a download.

Data spec syntax (one rule): ``KIND:PATH[,OPTION]...``, understood by
:func:`~wasserflow.data.source.make_source` (so ``wasserflow train --data mnist:PATH,flip``):

* ``mnist:PATH``: an IDX images file as published for MNIST and Fashion-MNIST, raw or gzipped
  (detected from the gzip magic, not the extension): magic 0x00000803 (unsigned bytes, 3
  dims), then N, H, W as big-endian uint32, then N*H*W pixel bytes. Images (N, 1, H, W).
  Labels: the IDX labels file beside it (its name with ``labels`` for ``images`` and ``idx1``
  for ``idx3``, raw or .gz, e.g. ``t10k-labels-idx1-ubyte.gz`` for
  ``t10k-images-idx3-ubyte.gz``), or the one given as ``mnist:PATH,labels=LABELS``: magic
  0x00000801 (unsigned bytes, 1 dim), N, then N label bytes; classes 0..max, named by their
  index. Without such a file the source has no labels.
* ``cifar10:PATH``: CIFAR-10's *binary* version: one ``data_batch_*.bin`` / ``test_batch.bin``
  file, or the folder holding them (then every ``data_batch_*.bin``, the 50,000 training
  images). Records of 1 label byte + 3072 pixel bytes (CHW); images (N, 3, 32, 32), labelled
  by the label byte (0..9; any other byte is refused), class names from ``batches.meta.txt``
  beside the batches, else CIFAR-10's published names. The pickled "python version" is
  detected from its header and refused (it is never unpickled).
* ``images:FOLDER``: every ``.png`` / ``.jpg`` / ``.jpeg`` file directly in FOLDER (sorted by
  name; other files ignored), read with Pillow; all must share one size and one mode among
  L (1 channel), RGB (3) and RGBA (4). Images (N, C, H, W), no labels. A FOLDER with no image
  of its own but subfolders is read as class folders ``FOLDER/<class>/*.png``: the classes
  are the sorted subfolder names (hidden ones skipped), each image labelled by its folder; a
  class folder without an image is refused.
* ``array:PATH``: a ``.npy`` or ``.npz`` array (``allow_pickle=False``; a ``.npz`` must hold
  one array, or one named ``images`` or ``x``, besides its labels) of shape (N, H, W) (one
  channel) or (N, C, H, W) / (N, H, W, C) with C in {1, 3, 4}. The channel axis is detected
  when exactly one of axis 1 and axis 3 has a size in {1, 3, 4}; otherwise write
  ``nchw:PATH`` or ``nhwc:PATH`` (same as ``array:`` with the layout fixed). A ``.npz`` with
  an integer array ``y`` (or ``labels``) of length N is labelled by it, with class names from
  an optional string array ``names`` (:func:`~wasserflow.data.labels.npz_labels`).

Options: ``flip`` draws a random horizontal flip (probability 1/2) of each sampled image with
the run's generator inside ``sample(n, generator)``, so a seed reproduces the batches;
``KEY=VALUE`` options a kind declares (``mnist``'s ``labels=PATH``) reach its loader as
keyword arguments.

Pixels are scaled to [-1, 1]: uint8 v -> v / 127.5 - 1 (IDX, CIFAR, PNG/JPEG, uint8 arrays).
Float arrays must lie in [0, 1] (mapped by 2x - 1; any array with no negative value is read
this way) or in [-1, 1] (kept as is, when some value is negative); anything else, NaN or inf,
is refused. Integer arrays other than uint8 must hold values in 0..255.

Every bad input raises one ``ValueError`` line naming the file, the problem and the fix: a
labels file that does not match its images (count, IDX magic or type), a label outside
[0, K), a class folder with no image, an .npz whose ``y`` length differs from its images.

Each kind is a data format (:mod:`~wasserflow.data.registry`) registered here with
:func:`register_image_format`, which adds the ``,OPTION`` parsing and the :class:`ImageSource`
around a loader ``(path, dtype) -> (N, C, H, W)`` in [-1, 1], or an :class:`ImageSet` (the
images and their labels); a new image kind is one such loader in a module of its own.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .labels import ClassLabels, LabelInfo, names_from, npz_data, npz_labels
from .registry import register_format
from .source import DataSource, ImageSource

IMAGE_OPTIONS: tuple[str, ...] = ("flip",)
"""The options after the path."""
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
"""Files read from an ``images:FOLDER``."""

_CIFAR_RECORD = 1 + 3 * 32 * 32
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
"""CIFAR-10's class names in label order, as its ``batches.meta.txt`` lists them."""
_CHANNELS = (1, 3, 4)
_MODES = {"L": 1, "RGB": 3, "RGBA": 4}


def _fail(path: Path | str, problem: str, what: str = "images") -> ValueError:
    return ValueError(f"cannot load {what} from {str(path)!r}: {problem}")


@dataclass(frozen=True)
class ImageSet:
    """What an image loader read: ``images`` (N, C, H, W) in [-1, 1] and their ``labels``.

    ``labels`` None: the files hold no labels, and ``no_labels`` says why (and how to add them).
    """

    images: Tensor
    labels: ClassLabels | None = None
    no_labels: str = ""


def _option(token: str, keys: tuple[str, ...]) -> str | None:
    """The normalised option ``token`` spells (``flip``, ``key=value``), or None."""
    word = token.strip()
    if word.lower() in IMAGE_OPTIONS:
        return word.lower()
    key, sep, value = word.partition("=")
    if sep and key.strip().lower() in keys and value.strip():
        return f"{key.strip().lower()}={value.strip()}"
    return None


def split_image_options(
    kind: str, text: str, keys: tuple[str, ...] = ()
) -> tuple[str, tuple[str, ...]]:
    """``(path, options)`` of the ``PATH[,OPTION]...`` that follows ``KIND:`` in an image spec.

    Trailing comma-separated tokens that are known options (``flip``, or ``KEY=VALUE`` with KEY
    in ``keys``) are options; the rest is the path (so a path may hold commas).
    """
    parts = text.split(",")
    options: list[str] = []
    while len(parts) > 1 and _option(parts[-1], keys) is not None:
        options.insert(0, _option(parts.pop(), keys))
    path = ",".join(parts).strip()
    spec = f"{kind}:{text}"
    known = (*IMAGE_OPTIONS, *(f"{k}=..." for k in keys))
    if not path:
        raise ValueError(f"data spec {spec!r} names no path: write {kind}:PATH[,{','.join(known)}]")
    if "," in path and not Path(path).exists():
        head, tail = path.rsplit(",", 1)
        if Path(head.strip()).exists():
            raise ValueError(
                f"data spec {spec!r}: unknown option {tail.strip()!r}: the options are {known}"
            )
    named = [o.partition("=")[0] for o in options if "=" in o]
    twice = sorted({k for k in named if named.count(k) > 1})
    if twice:
        raise ValueError(f"data spec {spec!r}: the option {twice[0]}= is given twice: give it once")
    return path, tuple(dict.fromkeys(options))


def format_image_spec(kind: str, path: str, options: tuple[str, ...]) -> str:
    """The spec string that reads back as ``kind``, ``path`` and ``options``."""
    return f"{kind}:{path}" + "".join(f",{o}" for o in options)


ImageLoader = Callable[..., "Tensor | ImageSet"]
"""``load(path, dtype, **options) -> (N, C, H, W)`` images in [-1, 1], or an :class:`ImageSet`."""


def register_image_format(
    kind: str, help: str, keys: tuple[str, ...] = ()
) -> Callable[[ImageLoader], ImageLoader]:
    """Decorator: register ``load(path, dtype)`` as the data format ``KIND:PATH[,flip]``.

    The source is an :class:`ImageSource` named ``KIND:STEM`` whose spec reads back the same;
    ``flip`` draws random horizontal flips; a loader returning an :class:`ImageSet` gives the
    source its labels. ``keys``: the ``KEY=VALUE`` options the kind takes, passed to ``load``
    as keyword arguments (``mnist:IDX,labels=IDX``). ``help`` is the spec as the ``--data``
    help shows it (``"mnist:IDX[,labels=IDX]"``).
    """

    def deco(load: ImageLoader) -> ImageLoader:
        def source(text: str, dtype: torch.dtype) -> DataSource:
            path, options = split_image_options(kind, text, keys)
            kwargs = dict(o.split("=", 1) for o in options if "=" in o)
            got = load(path, dtype, **kwargs)
            read = got if isinstance(got, ImageSet) else ImageSet(got)
            spec = format_image_spec(kind, path, options)
            name = f"{kind}:{Path(path).stem or path}"
            flip = "flip" in options
            return ImageSource(
                name, read.images, dtype, spec, flip, labels=read.labels, no_labels=read.no_labels
            )

        register_format(kind, help=f"{help}[,{','.join(IMAGE_OPTIONS)}]")(source)
        return load

    return deco


def uint8_to_unit(x: np.ndarray | Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 pixels v -> v / 127.5 - 1 in ``dtype`` (a new tensor)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()  # torch refuses read-only buffers (np.frombuffer)
    t = torch.as_tensor(x)
    return t.to(dtype).div_(127.5).sub_(1.0)


def _require(path: Path, want_dir: bool | None) -> None:
    if not path.exists():
        raise _fail(path, "no such file or folder: check the path")
    if want_dir is True and not path.is_dir():
        raise _fail(path, "not a folder: give the folder holding the .png/.jpg images")
    if want_dir is False and not path.is_file():
        raise _fail(path, "not a file: give the path of one file")


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except (EOFError, OSError, zlib.error) as err:
            raise _fail(
                path, f"a broken or truncated gzip file ({err}): download the file again"
            ) from None
    return path.read_bytes()


def _pickle_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


@dataclass(frozen=True)
class _IdxKind:
    """An IDX file of unsigned bytes: images (3 dims) or labels (1 dim)."""

    what: str
    magic: int
    example: str

    @property
    def ndim(self) -> int:
        return self.magic & 0xFF

    def announce(self, dims: tuple[int, ...]) -> str:
        if self.ndim == 1:
            return f"{dims[0]} labels ({dims[0]} bytes)"
        n, h, w = dims
        return f"{n} images of {h}x{w} ({n * h * w} pixel bytes)"


_IDX_IMAGES = _IdxKind("images", 0x00000803, "train-images-idx3-ubyte.gz")
_IDX_LABELS = _IdxKind("labels", 0x00000801, "train-labels-idx1-ubyte.gz")


def _read_idx(path: Path, kind: _IdxKind) -> np.ndarray:
    """The uint8 array of an IDX file of ``kind`` (raw or gzipped), checked against its header."""
    _require(path, want_dir=False)
    data = _read_bytes(path)
    magic = int.from_bytes(data[:4], "big")
    if len(data) >= 4 and magic != kind.magic:
        other = _IDX_LABELS if kind is _IDX_IMAGES else _IDX_IMAGES
        hint = (
            f"this is an IDX {other.what} file: give the {kind.what} file (e.g. {kind.example})"
            if magic == other.magic
            else f"give an IDX {kind.what} file of unsigned bytes such as {kind.example}"
        )
        raise _fail(
            path, f"bad IDX magic 0x{magic:08x} (expected 0x{kind.magic:08x}): {hint}", kind.what
        )
    head = 4 + 4 * kind.ndim
    if len(data) < head:
        raise _fail(
            path,
            f"{len(data)} bytes, shorter than an IDX {kind.what} header ({head} bytes): "
            f"give an MNIST-style {kind.what} file such as {kind.example}",
            kind.what,
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(kind.ndim))
    want, got = math.prod(dims), len(data) - head
    if got != want:
        what = "truncated" if got < want else "longer than its header says"
        raise _fail(
            path,
            f"the file is {what}: the header announces {kind.announce(dims)} but {got} follow: "
            "download the file again",
            kind.what,
        )
    if want == 0:
        raise _fail(
            path, f"no data (header: {kind.announce(dims)}): the data set is empty", kind.what
        )
    return np.frombuffer(data, dtype=np.uint8, offset=head).reshape(dims)


def load_idx_images(path: str | Path, dtype: torch.dtype = torch.float32) -> Tensor:
    """An IDX images file (raw or .gz) as (N, 1, H, W) in [-1, 1]."""
    arr = _read_idx(Path(path), _IDX_IMAGES)
    return uint8_to_unit(arr[:, None], dtype)


def load_idx_labels(path: str | Path) -> Tensor:
    """An IDX labels file (raw or .gz, magic 0x00000801) as (N,) int64."""
    return torch.from_numpy(_read_idx(Path(path), _IDX_LABELS).astype(np.int64))


def idx_labels_beside(images: str | Path) -> Path | None:
    """The IDX labels file beside an images file, or None: the images file's name with
    ``labels`` for ``images`` and ``idx1`` for ``idx3``, raw or .gz (the images' own
    compression first)."""
    images = Path(images)
    if "images" not in images.name:
        return None
    name = images.name.replace("images", "labels").replace("idx3", "idx1")
    base = name.removesuffix(".gz")
    for candidate in dict.fromkeys((name, base, f"{base}.gz")):
        path = images.with_name(candidate)
        if path.is_file():
            return path
    return None


@register_image_format("mnist", "mnist:IDX[,labels=IDX]", keys=("labels",))
def load_mnist(
    path: str | Path, dtype: torch.dtype = torch.float32, labels: str | Path | None = None
) -> ImageSet:
    """An IDX images file and its labels: ``labels`` given, else :func:`idx_labels_beside`."""
    images = load_idx_images(path, dtype)
    found = Path(labels) if labels is not None else idx_labels_beside(path)
    if found is None:
        return ImageSet(
            images,
            no_labels=f"no IDX labels file beside {str(path)!r}: give one with "
            f"mnist:{path},labels=PATH",
        )
    y = load_idx_labels(found)
    n = images.shape[0]
    if y.shape[0] != n:
        raise _fail(
            found,
            f"{y.shape[0]} labels but the images file {str(path)!r} holds {n} images: give "
            f"the labels file of these images with mnist:{path},labels=PATH",
            "labels",
        )
    return ImageSet(images, ClassLabels.create(y, repr(str(found)), count=n))


def _cifar_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.glob("data_batch_*.bin"))
    if files:
        return files
    pickled = sorted(path.glob("data_batch_[0-9]"))
    if pickled:
        return pickled  # read to report the pickle header
    raise _fail(
        path,
        "no data_batch_*.bin in the folder: give the folder of CIFAR-10's binary version "
        "(cifar-10-batches-bin) or one file, e.g. cifar10:DIR/test_batch.bin",
    )


def _cifar_records(f: Path) -> np.ndarray:
    """The records (n, 3073) uint8 of one CIFAR-10 binary batch, label bytes checked."""
    data = f.read_bytes()
    if _pickle_header(data):
        raise _fail(
            f,
            "a pickled CIFAR batch (the 'python version'), which is never unpickled: "
            "download the binary version cifar-10-binary.tar.gz and give its "
            "data_batch_*.bin files",
        )
    if data[:2] == b"\x1f\x8b":
        raise _fail(
            f,
            "a gzip archive, not a batch: extract it (tar xzf) and give the folder "
            "cifar-10-batches-bin or one of its .bin files",
        )
    if not data or len(data) % _CIFAR_RECORD:
        raise _fail(
            f,
            f"{len(data)} bytes is not a whole number of CIFAR-10 records "
            f"({_CIFAR_RECORD} bytes: 1 label + 3072 pixels); the file is truncated or "
            "not a CIFAR-10 binary batch (CIFAR-100's 3074-byte records are not "
            "supported): download the binary version again",
        )
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    bad = rec[:, 0] >= len(CIFAR10_CLASSES)
    if bad.any():
        i = int(bad.nonzero()[0][0])
        raise _fail(
            f,
            f"{int(bad.sum())} record(s) with a label byte outside 0..9 (first: {rec[i, 0]} in "
            f"record {i}): not a CIFAR-10 binary batch: download the binary version again",
        )
    return rec


def _cifar_names(path: Path) -> LabelInfo:
    """The class names of ``batches.meta.txt`` beside the batches (ten non-empty lines), else
    :data:`CIFAR10_CLASSES`."""
    meta = (path if path.is_dir() else path.parent) / "batches.meta.txt"
    if meta.is_file():
        lines = [w.strip() for w in meta.read_text(errors="replace").splitlines() if w.strip()]
        if len(lines) == len(CIFAR10_CLASSES) and len(set(lines)) == len(lines):
            return names_from(lines, repr(str(meta)))
    return names_from(CIFAR10_CLASSES, "CIFAR-10")


@register_image_format("cifar10", "cifar10:BIN")
def load_cifar10(path: str | Path, dtype: torch.dtype = torch.float32) -> ImageSet:
    """CIFAR-10 binary batches (one file or the folder's ``data_batch_*.bin``): the images
    (N, 3, 32, 32) in [-1, 1], labelled by each record's label byte."""
    path = Path(path)
    _require(path, want_dir=None)
    records = [_cifar_records(f) for f in _cifar_files(path)]
    rec = records[0] if len(records) == 1 else np.concatenate(records)
    images = uint8_to_unit(rec[:, 1:].reshape(-1, 3, 32, 32), dtype)
    labels = ClassLabels.create(rec[:, 0], repr(str(path)), _cifar_names(path), len(rec))
    return ImageSet(images, labels)


def load_cifar10_binary(path: str | Path, dtype: torch.dtype = torch.float32) -> Tensor:
    """CIFAR-10 binary batches (one file or the folder's ``data_batch_*.bin``): (N, 3, 32, 32)."""
    return load_cifar10(path, dtype).images


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _folder_files(path: Path) -> tuple[list[Path], list[int] | None, tuple[str, ...]]:
    """The image files of an ``images:`` folder, the class of each (None: no class folders) and
    the class names (the sorted subfolder names)."""
    _require(path, want_dir=True)
    direct = _images_in(path)
    if direct:
        return direct, None, ()
    folders = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise _fail(
            path,
            f"the folder holds no {'/'.join(IMAGE_SUFFIXES)} file: put the images directly "
            "in it, or in one subfolder per class",
        )
    files: list[Path] = []
    classes: list[int] = []
    for c, folder in enumerate(folders):
        found = _images_in(folder)
        if not found:
            raise _fail(
                folder,
                f"the class folder {folder.name!r} holds no {'/'.join(IMAGE_SUFFIXES)} image: "
                "put the images of that class directly in it, or remove the folder",
            )
        files += found
        classes += [c] * len(found)
    return files, classes, tuple(d.name for d in folders)


def _read_images(files: list[Path], dtype: torch.dtype) -> Tensor:
    """The image files, one size and mode, as (N, C, H, W) in [-1, 1]."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:  # pragma: no cover - Pillow is in the data extra
        raise ImportError("images:FOLDER needs Pillow: pip install wasserflow[data]") from err
    first: tuple[str, tuple[int, int], Path] | None = None
    out = None
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im.load()
                mode, size = im.mode, im.size
                if first is None:
                    if mode not in _MODES:
                        raise _fail(
                            f,
                            f"image mode {mode!r} is not supported: save the images as "
                            "L (grayscale), RGB or RGBA",
                        )
                    first = (mode, size, f)
                    c = _MODES[mode]
                    out = torch.empty(len(files), c, size[1], size[0], dtype=dtype)
                elif mode != first[0] or size != first[1]:
                    what = "mode" if mode != first[0] else "size"
                    raise _fail(
                        f,
                        f"mixed image {what}s in the folder: this image is {mode} "
                        f"{size[0]}x{size[1]} but {first[2].name} is {first[0]} "
                        f"{first[1][0]}x{first[1][1]}: convert every image to one mode and "
                        "size",
                    )
                arr = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise _fail(f, f"not a readable image ({type(err).__name__}: {err})") from None
        if arr.ndim == 2:
            arr = arr[:, :, None]
        out[i] = uint8_to_unit(arr.transpose(2, 0, 1).copy(), dtype)
    return out


@register_image_format("images", "images:FOLDER")
def load_image_set(path: str | Path, dtype: torch.dtype = torch.float32) -> ImageSet:
    """The PNG/JPEG images of a folder (one size and mode) as (N, C, H, W) in [-1, 1]: those
    directly in it (no labels), else those of its class folders, labelled by folder."""
    path = Path(path)
    files, classes, names = _folder_files(path)
    images = _read_images(files, dtype)
    if classes is None:
        return ImageSet(
            images,
            no_labels=f"the images lie directly in {str(path)!r}: put them in one subfolder "
            "per class for labels",
        )
    info = names_from(names, f"the class folders of {str(path)!r}")
    return ImageSet(images, ClassLabels.create(classes, repr(str(path)), info, len(files)))


def load_image_folder(path: str | Path, dtype: torch.dtype = torch.float32) -> Tensor:
    """The images of :func:`load_image_set` (directly in the folder, or in its class folders)."""
    return load_image_set(path, dtype).images


def _read_array(path: Path) -> tuple[np.ndarray, ClassLabels | None]:
    """The image array of a .npy/.npz and the labels of a .npz (:func:`npz_labels`)."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise _fail(path, f"unknown extension {suffix or '(none)'!r}: use a .npy or .npz file")
    try:
        obj = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any failure is a bad file
        raise _fail(path, f"not a readable {suffix} array ({type(err).__name__}: {err})") from None
    if suffix == ".npy" or isinstance(obj, np.ndarray):
        return obj, None
    with obj:
        arr = npz_data(obj, ("images", "x"), lambda problem: _fail(path, problem))
        return arr, npz_labels(obj, repr(str(path)))


def _layout(path: Path, shape: tuple[int, ...], layout: str | None) -> str:
    if layout is not None:
        axis = 1 if layout == "nchw" else 3
        if shape[axis] not in _CHANNELS:
            raise _fail(
                path,
                f"wrong channel count: shape {shape} read as {layout.upper()} has "
                f"{shape[axis]} channels: images need 1, 3 or 4 channels",
            )
        return layout
    first, last = shape[1] in _CHANNELS, shape[3] in _CHANNELS
    if first and not last:
        return "nchw"
    if last and not first:
        return "nhwc"
    if not first:
        raise _fail(
            path,
            f"wrong channel count: shape {shape} has neither axis 1 nor axis 3 of size 1, 3 "
            "or 4: save (N, C, H, W) or (N, H, W, C) images with C in {1, 3, 4}",
        )
    raise _fail(
        path,
        f"ambiguous channel axis: shape {shape} could be NCHW or NHWC: write the spec as "
        f"nchw:{path} or nhwc:{path}",
    )


def load_image_array_set(
    path: str | Path, layout: str | None = None, dtype: torch.dtype = torch.float32
) -> ImageSet:
    """A .npy/.npz image array as (N, C, H, W) in [-1, 1] (``layout`` None, "nchw" or "nhwc"),
    with the labels of a .npz holding ``y`` (one per image)."""
    path = Path(path)
    _require(path, want_dir=False)
    arr, labels = _read_array(path)
    images = _array_images(path, arr, layout, dtype)
    if labels is None:
        return ImageSet(
            images,
            no_labels=f"{str(path)!r} holds no labels: save an .npz with the images as 'x' "
            "and their classes as 'y'",
        )
    n = images.shape[0]
    if len(labels) != n:
        raise _fail(
            path,
            f"{len(labels)} labels in 'y' for {n} images in the .npz: give one class per "
            "image, in the order of the images",
        )
    return ImageSet(images, labels)


def load_image_array(
    path: str | Path, layout: str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """A .npy/.npz image array as (N, C, H, W) in [-1, 1]; ``layout`` None, "nchw" or "nhwc"."""
    return load_image_array_set(path, layout, dtype).images


def _array_images(path: Path, arr: np.ndarray, layout: str | None, dtype: torch.dtype) -> Tensor:
    """The images of an array (N, H, W), (N, C, H, W) or (N, H, W, C) in [-1, 1]."""
    shape = tuple(int(s) for s in arr.shape)
    if arr.ndim == 3:
        arr, shape = arr[:, None], (shape[0], 1, *shape[1:])
        layout = "nchw"
    elif arr.ndim != 4:
        raise _fail(
            path,
            f"expected images of shape (N, H, W), (N, C, H, W) or (N, H, W, C), got {shape}",
        )
    if 0 in shape:
        raise _fail(path, f"no images (shape {shape}): the data set is empty")
    if _layout(path, shape, layout) == "nhwc":
        arr = arr.transpose(0, 3, 1, 2)
    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.uint8:
        return uint8_to_unit(arr, dtype)
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise _fail(
                path,
                f"integer pixels must lie in 0..255, found {lo}..{hi}: save uint8 pixels or "
                "floats in [0, 1] or [-1, 1]",
            )
        return uint8_to_unit(arr.astype(np.uint8), dtype)
    if not np.issubdtype(arr.dtype, np.floating):
        raise _fail(path, f"the array has dtype {arr.dtype}: save uint8 pixels or floats in [0, 1]")
    x = torch.from_numpy(arr.astype(np.float64, copy=False))
    if not torch.isfinite(x).all():
        raise _fail(path, "the array holds NaN or inf values: clean them")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return (x * 2.0 - 1.0).to(dtype)
    if lo >= -1.0 and hi <= 1.0:
        return x.to(dtype)
    raise _fail(
        path,
        f"float pixels must lie in [0, 1] or [-1, 1], found [{lo:.4g}, {hi:.4g}]: rescale "
        "them (e.g. divide 0..255 values by 255) or save uint8 pixels",
    )


@register_image_format("array", "array:NPY")
def _array(path: str, dtype: torch.dtype) -> ImageSet:
    return load_image_array_set(path, None, dtype)


@register_image_format("nchw", "nchw:NPY")
def _nchw(path: str, dtype: torch.dtype) -> ImageSet:
    return load_image_array_set(path, "nchw", dtype)


@register_image_format("nhwc", "nhwc:NPY")
def _nhwc(path: str, dtype: torch.dtype) -> ImageSet:
    return load_image_array_set(path, "nhwc", dtype)
