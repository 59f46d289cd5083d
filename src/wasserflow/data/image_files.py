"""Image data sets read from local files, without pickle and without a download.

Data spec syntax (one rule): ``KIND:PATH[,OPTION]...``, understood by
:func:`~wasserflow.data.source.make_source` (so ``wasserflow train --data mnist:PATH,flip``):

* ``mnist:PATH``: an IDX images file as published for MNIST and Fashion-MNIST, raw or gzipped
  (detected from the gzip magic, not the extension): magic 0x00000803 (unsigned bytes, 3
  dims), then N, H, W as big-endian uint32, then N*H*W pixel bytes. Images (N, 1, H, W).
* ``cifar10:PATH``: CIFAR-10's *binary* version: one ``data_batch_*.bin`` / ``test_batch.bin``
  file, or the folder holding them (then every ``data_batch_*.bin``, the 50,000 training
  images). Records of 1 label byte + 3072 pixel bytes (CHW); images (N, 3, 32, 32). Labels
  are dropped. The pickled "python version" is detected from its header and refused (it is
  never unpickled).
* ``images:FOLDER``: every ``.png`` / ``.jpg`` / ``.jpeg`` file directly in FOLDER (sorted by
  name; other files ignored), read with Pillow; all must share one size and one mode among
  L (1 channel), RGB (3) and RGBA (4). Images (N, C, H, W).
* ``array:PATH``: a ``.npy`` or ``.npz`` array (``allow_pickle=False``; a ``.npz`` must hold
  one array, or one named ``images`` or ``x``) of shape (N, H, W) (one channel) or
  (N, C, H, W) / (N, H, W, C) with C in {1, 3, 4}. The channel axis is detected when exactly
  one of axis 1 and axis 3 has a size in {1, 3, 4}; otherwise write ``nchw:PATH`` or
  ``nhwc:PATH`` (same as ``array:`` with the layout fixed).

Options: ``flip`` draws a random horizontal flip (probability 1/2) of each sampled image with
the run's generator inside ``sample(n, generator)``, so a seed reproduces the batches.

Pixels are scaled to [-1, 1]: uint8 v -> v / 127.5 - 1 (IDX, CIFAR, PNG/JPEG, uint8 arrays).
Float arrays must lie in [0, 1] (mapped by 2x - 1; any array with no negative value is read
this way) or in [-1, 1] (kept as is, when some value is negative); anything else, NaN or inf,
is refused. Integer arrays other than uint8 must hold values in 0..255.

Every bad input raises one ``ValueError`` line naming the file, the problem and the fix.

Each kind is a data format (:mod:`~wasserflow.data.registry`) registered here with
:func:`register_image_format`, which adds the ``,OPTION`` parsing and the :class:`ImageSource`
around a loader ``(path, dtype) -> (N, C, H, W)`` in [-1, 1]; a new image kind is one such
loader in a module of its own.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .registry import register_format
from .source import DataSource, ImageSource

IMAGE_OPTIONS: tuple[str, ...] = ("flip",)
"""The options after the path."""
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
"""Files read from an ``images:FOLDER``."""

_IDX_IMAGES_MAGIC = 0x00000803
_CIFAR_RECORD = 1 + 3 * 32 * 32
_CHANNELS = (1, 3, 4)
_MODES = {"L": 1, "RGB": 3, "RGBA": 4}


def _fail(path: Path | str, problem: str) -> ValueError:
    return ValueError(f"cannot load images from {str(path)!r}: {problem}")


def split_image_options(kind: str, text: str) -> tuple[str, tuple[str, ...]]:
    """``(path, options)`` of the ``PATH[,OPTION]...`` that follows ``KIND:`` in an image spec.

    Trailing comma-separated tokens that are known options are options; the rest is the path
    (so a path may hold commas).
    """
    parts = text.split(",")
    options: list[str] = []
    while len(parts) > 1 and parts[-1].strip().lower() in IMAGE_OPTIONS:
        options.insert(0, parts.pop().strip().lower())
    path = ",".join(parts).strip()
    spec = f"{kind}:{text}"
    if not path:
        raise ValueError(
            f"data spec {spec!r} names no path: write {kind}:PATH[,{','.join(IMAGE_OPTIONS)}]"
        )
    if "," in path and not Path(path).exists():
        head, tail = path.rsplit(",", 1)
        if Path(head.strip()).exists():
            raise ValueError(
                f"data spec {spec!r}: unknown option {tail.strip()!r}: the options are "
                f"{IMAGE_OPTIONS}"
            )
    return path, tuple(dict.fromkeys(options))


def format_image_spec(kind: str, path: str, options: tuple[str, ...]) -> str:
    """The spec string that reads back as ``kind``, ``path`` and ``options``."""
    return f"{kind}:{path}" + "".join(f",{o}" for o in options)


ImageLoader = Callable[[str, torch.dtype], Tensor]
"""``load(path, dtype) -> (N, C, H, W)`` images in [-1, 1]."""


def register_image_format(kind: str, help: str) -> Callable[[ImageLoader], ImageLoader]:
    """Decorator: register ``load(path, dtype)`` as the data format ``KIND:PATH[,flip]``.

    The source is an :class:`ImageSource` named ``KIND:STEM`` whose spec reads back the same;
    ``flip`` draws random horizontal flips. ``help`` is the spec as the ``--data`` help shows it
    (``"mnist:IDX"``).
    """

    def deco(load: ImageLoader) -> ImageLoader:
        def source(text: str, dtype: torch.dtype) -> DataSource:
            path, options = split_image_options(kind, text)
            images = load(path, dtype)
            spec = format_image_spec(kind, path, options)
            name = f"{kind}:{Path(path).stem or path}"
            return ImageSource(name, images, dtype, spec=spec, flip="flip" in options)

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


@register_image_format("mnist", "mnist:IDX")
def load_idx_images(path: str | Path, dtype: torch.dtype = torch.float32) -> Tensor:
    """An IDX images file (raw or .gz) as (N, 1, H, W) in [-1, 1]."""
    path = Path(path)
    _require(path, want_dir=False)
    data = _read_bytes(path)
    magic = int.from_bytes(data[:4], "big")
    if len(data) >= 4 and magic != _IDX_IMAGES_MAGIC:
        hint = (
            "this is an IDX labels file: give the images file (e.g. train-images-idx3-ubyte.gz)"
            if magic == 0x00000801
            else "give an IDX images file such as train-images-idx3-ubyte(.gz)"
        )
        raise _fail(path, f"bad IDX magic 0x{magic:08x} (expected 0x00000803): {hint}")
    if len(data) < 16:
        raise _fail(
            path,
            f"{len(data)} bytes, shorter than an IDX images header (16 bytes): "
            "give an MNIST-style images file such as train-images-idx3-ubyte.gz",
        )
    n, h, w = (int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    want = n * h * w
    got = len(data) - 16
    if got != want:
        what = "truncated" if got < want else "longer than its header says"
        raise _fail(
            path,
            f"the file is {what}: the header announces {n} images of {h}x{w} "
            f"({want} pixel bytes) but {got} follow: download the file again",
        )
    if n == 0 or h == 0 or w == 0:
        raise _fail(path, f"no pixels (header: {n} images of {h}x{w}): the data set is empty")
    arr = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, 1, h, w)
    return uint8_to_unit(arr, dtype)


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


@register_image_format("cifar10", "cifar10:BIN")
def load_cifar10_binary(path: str | Path, dtype: torch.dtype = torch.float32) -> Tensor:
    """CIFAR-10 binary batches (one file or the folder's ``data_batch_*.bin``): (N, 3, 32, 32)."""
    path = Path(path)
    _require(path, want_dir=None)
    chunks = []
    for f in _cifar_files(path):
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
        chunks.append(uint8_to_unit(rec[:, 1:].reshape(-1, 3, 32, 32), dtype))
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


@register_image_format("images", "images:FOLDER")
def load_image_folder(path: str | Path, dtype: torch.dtype = torch.float32) -> Tensor:
    """Every PNG/JPEG directly in a folder, one size and mode: (N, C, H, W) in [-1, 1]."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:  # pragma: no cover - Pillow is in the data extra
        raise ImportError("images:FOLDER needs Pillow: pip install wasserflow[data]") from err
    path = Path(path)
    _require(path, want_dir=True)
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise _fail(
            path,
            f"the folder holds no {'/'.join(IMAGE_SUFFIXES)} file: put the images directly "
            "in it (subfolders are not read)",
        )
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


def _read_array(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise _fail(path, f"unknown extension {suffix or '(none)'!r}: use a .npy or .npz file")
    try:
        obj = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any failure is a bad file
        raise _fail(path, f"not a readable {suffix} array ({type(err).__name__}: {err})") from None
    if suffix == ".npy" or isinstance(obj, np.ndarray):
        return obj
    with obj:
        keys = list(obj.files)
        pick = keys[0] if len(keys) == 1 else next((k for k in ("images", "x") if k in keys), None)
        if pick is None:
            raise _fail(
                path,
                f"the .npz holds {len(keys)} arrays {keys[:8]}: save one array, or name the "
                "images 'images' or 'x'",
            )
        try:
            return obj[pick]
        except Exception as err:  # noqa: BLE001 - object arrays need pickle
            raise _fail(
                path, f"array {pick!r} is not readable ({type(err).__name__}: {err})"
            ) from None


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


def load_image_array(
    path: str | Path, layout: str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """A .npy/.npz image array as (N, C, H, W) in [-1, 1]; ``layout`` None, "nchw" or "nhwc"."""
    path = Path(path)
    _require(path, want_dir=False)
    arr = _read_array(path)
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
def _array(path: str, dtype: torch.dtype) -> Tensor:
    return load_image_array(path, None, dtype)


@register_image_format("nchw", "nchw:NPY")
def _nchw(path: str, dtype: torch.dtype) -> Tensor:
    return load_image_array(path, "nchw", dtype)


@register_image_format("nhwc", "nhwc:NPY")
def _nhwc(path: str, dtype: torch.dtype) -> Tensor:
    return load_image_array(path, "nhwc", dtype)
