"""Image data specs (mnist:, cifar10:, images:, array:/nchw:/nhwc:): round trips, flips, errors."""

import gzip
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from wasserflow.data import ImageSource, make_source
from wasserflow.data.image_files import split_image_options

RNG = np.random.default_rng(0)


def _expected(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(u8.astype(np.float64) / 127.5 - 1.0)


def _check(src, u8_nchw: np.ndarray) -> None:
    assert isinstance(src, ImageSource)
    x = src.points
    assert x.dtype == torch.float32 and tuple(x.shape) == u8_nchw.shape
    assert src.shape == u8_nchw.shape[1:]
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    torch.testing.assert_close(x.double(), _expected(u8_nchw), rtol=0, atol=1e-6)
    # the spec rebuilds the source
    torch.testing.assert_close(make_source(src.spec).points, x)


def _idx(u8: np.ndarray) -> bytes:
    n, h, w = u8.shape
    head = (0x00000803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, h, w))
    return head + u8.tobytes()


def _cifar(u8: np.ndarray, labels=None) -> bytes:
    labels = np.arange(len(u8)) % 10 if labels is None else labels
    rec = np.concatenate([labels.astype(np.uint8)[:, None], u8.reshape(len(u8), -1)], axis=1)
    return rec.astype(np.uint8).tobytes()


def test_mnist_idx_round_trip_raw_and_gzip(tmp_path):
    u8 = RNG.integers(0, 256, (5, 7, 6), dtype=np.uint8)
    u8[0, 0, 0], u8[0, 0, 1] = 0, 255
    (tmp_path / "imgs-idx3-ubyte").write_bytes(_idx(u8))
    (tmp_path / "imgs-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(u8)))
    (tmp_path / "gz-without-suffix").write_bytes(gzip.compress(_idx(u8)))
    for name in ("imgs-idx3-ubyte", "imgs-idx3-ubyte.gz", "gz-without-suffix"):
        src = make_source(f"mnist:{tmp_path / name}")
        _check(src, u8[:, None])
        assert src.points[0, 0, 0, 0] == -1.0 and src.points[0, 0, 0, 1] == 1.0


def test_cifar10_binary_file_and_folder(tmp_path):
    a = RNG.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    b = RNG.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    (tmp_path / "data_batch_1.bin").write_bytes(_cifar(a))
    (tmp_path / "data_batch_2.bin").write_bytes(_cifar(b))
    (tmp_path / "test_batch.bin").write_bytes(_cifar(b[:1]))
    _check(make_source(f"cifar10:{tmp_path / 'data_batch_1.bin'}"), a)
    _check(make_source(f"cifar10:{tmp_path / 'test_batch.bin'}"), b[:1])
    src = make_source(f"cifar10:{tmp_path}")  # the folder: data_batch_*.bin, not test_batch
    _check(src, np.concatenate([a, b]))
    assert src.shape == (3, 32, 32)


def test_image_folder_gray_rgb_rgba(tmp_path):
    for mode, c in (("L", 1), ("RGB", 3), ("RGBA", 4)):
        d = tmp_path / mode
        d.mkdir()
        u8 = RNG.integers(0, 256, (3, 5, 4, c), dtype=np.uint8)  # N, H, W, C
        for i, im in enumerate(u8):
            Image.fromarray(im[:, :, 0] if c == 1 else im, mode).save(d / f"{i:02d}.png")
        (d / "labels.txt").write_text("ignored")
        _check(make_source(f"images:{d}"), u8.transpose(0, 3, 1, 2))
    # JPEG is read too (lossy: compare with what Pillow decodes)
    d = tmp_path / "jpg"
    d.mkdir()
    Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(d / "a.JPG")
    back = np.asarray(Image.open(d / "a.JPG"))
    _check(make_source(f"images:{d}"), back.transpose(2, 0, 1)[None])


def test_arrays_npy_npz_layouts_and_float_ranges(tmp_path):
    u8 = RNG.integers(0, 256, (4, 3, 5, 6), dtype=np.uint8)  # NCHW
    np.save(tmp_path / "nchw.npy", u8)
    np.save(tmp_path / "nhwc.npy", u8.transpose(0, 2, 3, 1))
    np.save(tmp_path / "nhw.npy", u8[:, 0])
    np.savez(tmp_path / "one.npz", u8)
    np.savez(tmp_path / "named.npz", labels=np.arange(4), images=u8)
    for name in ("nchw.npy", "nhwc.npy", "one.npz", "named.npz"):
        _check(make_source(f"array:{tmp_path / name}"), u8)
    _check(make_source(f"array:{tmp_path / 'nhw.npy'}"), u8[:, :1])
    # ambiguous (3, ..., 3): the explicit layout decides
    sq = RNG.integers(0, 256, (2, 3, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "sq.npy", sq)
    _check(make_source(f"nchw:{tmp_path / 'sq.npy'}"), sq)
    _check(make_source(f"nhwc:{tmp_path / 'sq.npy'}"), sq.transpose(0, 3, 1, 2))
    # floats in [0, 1] -> 2x - 1; floats in [-1, 1] (some negative) kept
    unit = u8.astype(np.float32) / 255.0
    np.save(tmp_path / "unit.npy", unit)
    x = make_source(f"array:{tmp_path / 'unit.npy'}").points
    torch.testing.assert_close(x, torch.from_numpy(unit * 2 - 1))
    sym = (u8.astype(np.float64) / 127.5 - 1.0).transpose(0, 2, 3, 1)
    np.save(tmp_path / "sym.npy", sym)
    _check(make_source(f"array:{tmp_path / 'sym.npy'}"), u8)
    np.save(tmp_path / "ints.npy", u8.astype(np.int64))
    _check(make_source(f"array:{tmp_path / 'ints.npy'}"), u8)


def test_flips_reproducible_and_equal_to_torch_flip(tmp_path):
    u8 = RNG.integers(0, 256, (6, 1, 4, 5), dtype=np.uint8)
    np.save(tmp_path / "x.npy", u8)
    spec = f"array:{tmp_path / 'x.npy'},flip"
    src = make_source(spec)
    assert src.flip and src.spec == spec and split_image_options("array", spec[6:])[1] == ("flip",)
    a = src.sample(400, torch.Generator().manual_seed(3))
    b = make_source(src.spec).sample(400, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, src.sample(400, torch.Generator().manual_seed(4)))
    # the same indices as without flips, then each image is itself or its mirror
    plain = make_source(f"array:{tmp_path / 'x.npy'}")
    assert not plain.flip
    base = plain.sample(400, torch.Generator().manual_seed(3))
    flipped = torch.flip(base, dims=[-1])
    is_flip = (a == flipped).flatten(1).all(1)
    is_same = (a == base).flatten(1).all(1)
    assert (is_flip | is_same).all()
    assert 100 < int((is_flip & ~is_same).sum()) < 300 and int((is_same & ~is_flip).sum()) > 100


def _pickled_cifar(path):
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    path.write_bytes(pickle.dumps(batch, protocol=2))


BAD = {
    # name: (spec kind, problem words)
    "magic": ("mnist", "bad IDX magic 0x00000801"),
    "short-idx": ("mnist", "truncated"),
    "tiny-idx": ("mnist", "shorter than an IDX images header"),
    "broken.gz": ("mnist", "truncated gzip"),
    "record.bin": ("cifar10", "not a whole number of CIFAR-10 records"),
    "data_batch_1": ("cifar10", "pickled CIFAR batch"),
    "cifar-10-binary.tar.gz": ("cifar10", "extract it"),
    "pydir": ("cifar10", "pickled CIFAR batch"),
    "nobin": ("cifar10", "no data_batch_*.bin"),
    "mixed_size": ("images", "mixed image sizes"),
    "mixed_mode": ("images", "mixed image modes"),
    "empty": ("images", "holds no .png/.jpg/.jpeg"),
    "palette": ("images", "mode 'P' is not supported"),
    "notpng": ("images", "not a readable image"),
    "c2.npy": ("array", "wrong channel count"),
    "c5.npy": ("nchw", "wrong channel count"),
    "sq.npy": ("array", "ambiguous channel axis"),
    "f255.npy": ("array", "float pixels must lie in [0, 1] or [-1, 1]"),
    "nan.npy": ("array", "NaN or inf"),
    "i300.npy": ("array", "0..255"),
    "two.npz": ("array", "save one array"),
    "flat.npy": ("array", "expected images of shape"),
    "obj.npy": ("array", "not a readable .npy"),
    "missing.npy": ("array", "no such file"),
    "pts.csv": ("array", "unknown extension"),
}


def _write_bad(tmp_path):
    img = np.zeros((2, 3, 3), np.uint8)
    (tmp_path / "magic").write_bytes(b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"\x00\x01")
    (tmp_path / "short-idx").write_bytes(_idx(img)[:-1])
    (tmp_path / "tiny-idx").write_bytes(b"\x00\x00\x08")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(_idx(img))[:-10])
    (tmp_path / "record.bin").write_bytes(_cifar(np.zeros((2, 3072), np.uint8))[:-1])
    _pickled_cifar(tmp_path / "data_batch_1")
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(gzip.compress(b"tar"))
    (tmp_path / "pydir").mkdir()
    _pickled_cifar(tmp_path / "pydir" / "data_batch_1")
    (tmp_path / "nobin").mkdir()
    for name, ims in (
        ("mixed_size", [Image.new("L", (4, 4)), Image.new("L", (4, 5))]),
        ("mixed_mode", [Image.new("L", (4, 4)), Image.new("RGB", (4, 4))]),
        ("palette", [Image.new("P", (4, 4))]),
        ("empty", []),
    ):
        (tmp_path / name).mkdir()
        for i, im in enumerate(ims):
            im.save(tmp_path / name / f"{i}.png")
    (tmp_path / "notpng").mkdir()
    (tmp_path / "notpng" / "a.png").write_bytes(b"not a png")
    np.save(tmp_path / "c2.npy", np.zeros((2, 2, 5, 2), np.uint8))
    np.save(tmp_path / "c5.npy", np.zeros((2, 5, 4, 4), np.uint8))
    np.save(tmp_path / "sq.npy", np.zeros((2, 3, 5, 3), np.uint8))
    np.save(tmp_path / "f255.npy", np.full((2, 1, 2, 2), 255.0))
    np.save(tmp_path / "nan.npy", np.full((2, 1, 2, 2), np.nan))
    np.save(tmp_path / "i300.npy", np.full((2, 1, 2, 2), 300))
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 1, 2, 2)), b=np.zeros((1, 1, 2, 2)))
    np.save(tmp_path / "flat.npy", np.zeros((2, 4), np.uint8))
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    (tmp_path / "pts.csv").write_text("1,2\n")


def test_each_bad_input_is_one_value_error_naming_the_file(tmp_path):
    _write_bad(tmp_path)
    for name, (kind, problem) in BAD.items():
        with pytest.raises(ValueError) as info:
            make_source(f"{kind}:{tmp_path / name}")
        msg = str(info.value)
        assert name in msg and problem in msg and "\n" not in msg, msg
    msg = str(pytest.raises(ValueError, make_source, f"cifar10:{tmp_path / 'data_batch_1'}").value)
    assert "binary version" in msg and "never unpickled" in msg
    msg = str(pytest.raises(ValueError, make_source, f"array:{tmp_path / 'sq.npy'}").value)
    assert f"nchw:{tmp_path / 'sq.npy'}" in msg and f"nhwc:{tmp_path / 'sq.npy'}" in msg


def test_spec_parsing_options_and_errors(tmp_path):
    assert split_image_options("mnist", "/a/b.gz, flip") == ("/a/b.gz", ("flip",))
    assert split_image_options("array", "/a,b.npy") == ("/a,b.npy", ())
    with pytest.raises(ValueError, match="names no path"):
        make_source("mnist:")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="unknown option 'flop'"):
        make_source(f"array:{tmp_path / 'x.npy'},flop")
    with pytest.raises(ValueError, match="mnist:IDX"):
        make_source("not-a-dataset")
    # a plain 4-D .npy still goes to load_points, whose message points to array:
    with pytest.raises(ValueError, match="array:"):
        make_source(str(tmp_path / "x.npy"))


def _labels_idx(y: np.ndarray) -> bytes:
    return (
        (0x00000801).to_bytes(4, "big") + len(y).to_bytes(4, "big") + y.astype(np.uint8).tobytes()
    )


def test_mnist_folder_finds_the_training_files_raw_or_gzipped(tmp_path):
    """The folder MNIST is downloaded as: the training images and labels are found in it or
    below (torchvision's MNIST/raw), gzipped or not; the test split is not taken."""
    train = RNG.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    test = RNG.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    y = np.arange(6) % 3
    gz = tmp_path / "gz"
    gz.mkdir()
    (gz / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(train)))
    (gz / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_labels_idx(y)))
    (gz / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(test)))
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(_idx(train))
    (raw / "train-labels-idx1-ubyte").write_bytes(_labels_idx(y))
    for folder in (gz, tmp_path / "MNIST"):
        src = make_source(f"mnist:{folder}")
        _check(src, train[:, None])
        assert src.targets.tolist() == y.tolist()


@pytest.mark.parametrize("layout", ["none", "two"])
def test_mnist_folder_without_one_training_file_is_one_line(tmp_path, layout):
    if layout == "two":
        for sub in ("mnist", "fashion"):
            (tmp_path / sub).mkdir()
            (tmp_path / sub / "train-images-idx3-ubyte").write_bytes(_idx(np.zeros((1, 2, 2))))
    with pytest.raises(ValueError, match="give (the file|one) as mnist:FILE") as e:
        make_source(f"mnist:{tmp_path}")
    assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)
