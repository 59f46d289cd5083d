"""Labels read from files written here in their published formats: MNIST IDX label files
(magic 2049), CIFAR-10 binary records (1 label byte + 3072 pixel bytes), class folders, .npz
with x and y; each refusal in one line naming the file. Every image written here carries its own
index in its first pixel, so a drawn (x, y) pair can be checked against the labels written."""

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from wasserflow.data import make_source
from wasserflow.data.image_files import CIFAR10_CLASSES, idx_labels_beside

RNG = np.random.default_rng(0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _idx(arr: np.ndarray, magic: int) -> bytes:
    """An IDX file as published: big-endian magic, one uint32 per dimension, the bytes."""
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def _indexed_images(n: int, h: int = 4, w: int = 5) -> np.ndarray:
    u8 = RNG.integers(0, 256, (n, h, w), dtype=np.uint8)
    u8[:, 0, 0] = np.arange(n)  # the first pixel names the image
    return u8


def _index_of(x: torch.Tensor) -> torch.Tensor:
    """The index written in the first pixel of each (unflipped) image, from v / 127.5 - 1."""
    return torch.round((x[:, 0, 0, 0].double() + 1.0) * 127.5).long()


def _check_pairs(src, labels: np.ndarray, n: int = 300) -> None:
    x, y = src.sample_labelled(n, gen(3))
    assert torch.equal(y, torch.as_tensor(labels, dtype=torch.int64)[_index_of(x)])
    assert torch.equal(x, src.sample(n, gen(3)))
    # the indices are the ones the plain draw takes: randint(N) from the same generator
    idx = torch.randint(0, len(labels), (n,), generator=gen(3))
    assert torch.equal(y, torch.as_tensor(labels, dtype=torch.int64)[idx])


def test_mnist_finds_its_labels_raw_or_gzip(tmp_path):
    u8 = _indexed_images(12)
    labels = RNG.integers(0, 10, 12).astype(np.uint8)
    labels[:10] = np.arange(10)  # every class present
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(u8, 0x803)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(labels, 2049))  # raw beside gz
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(u8, 0x803))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels, 2049)))
    for stem in ("train", "t10k"):
        images = next(tmp_path.glob(f"{stem}-images-*"))
        assert idx_labels_beside(images).name.startswith(f"{stem}-labels-idx1-ubyte")
        src = make_source(f"mnist:{images}")
        assert src.labelled and src.label_info.names == tuple(str(c) for c in range(10))
        assert torch.equal(src.targets, torch.from_numpy(labels.astype(np.int64)))
        _check_pairs(src, labels)


def test_mnist_labels_given_separately_and_with_flips(tmp_path):
    u8 = _indexed_images(9)
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5], np.uint8)
    (tmp_path / "imgs.idx").write_bytes(_idx(u8, 0x803))
    (tmp_path / "classes.idx").write_bytes(_idx(labels, 0x801))
    plain = make_source(f"mnist:{tmp_path / 'imgs.idx'}")
    assert not plain.labelled and plain.targets is None
    with pytest.raises(ValueError, match="no IDX labels file beside") as info:
        plain.sample_labelled(2, gen(0))
    assert f"mnist:{tmp_path / 'imgs.idx'},labels=PATH" in str(info.value)
    spec = f"mnist:{tmp_path / 'imgs.idx'},labels={tmp_path / 'classes.idx'},flip"
    src = make_source(spec)
    assert src.spec == spec and src.flip and src.label_info.num_classes == 10
    assert make_source(src.spec).labelled
    _check_pairs(make_source(spec.removesuffix(",flip")), labels)
    # flips: the same indices, then a mirror or not; the label follows the image
    x, y = src.sample_labelled(200, gen(4))
    idx = torch.randint(0, 9, (200,), generator=gen(4))
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64))[idx])
    assert torch.equal(x, src.sample(200, gen(4)))


def test_mnist_label_files_that_do_not_match_are_refused(tmp_path):
    u8 = _indexed_images(5)
    (tmp_path / "a-images-idx3-ubyte").write_bytes(_idx(u8, 0x803))
    images = tmp_path / "a-images-idx3-ubyte"
    bad = {
        "count": (_idx(np.zeros(4, np.uint8), 2049), "4 labels but the images file"),
        "images": (_idx(u8, 0x803), "this is an IDX images file: give the labels file"),
        "int32": (
            (0x00000C01).to_bytes(4, "big") + (5).to_bytes(4, "big") + bytes(20),
            "bad IDX magic 0x00000c01 (expected 0x00000801)",
        ),
        "short": (_idx(np.zeros(5, np.uint8), 2049)[:-1], "truncated"),
        "long": (_idx(np.zeros(5, np.uint8), 2049) + b"\0", "longer than its header says"),
        "header": (b"\x00\x00\x08\x01\x00", "shorter than an IDX labels header (8 bytes)"),
        "empty": (_idx(np.zeros(0, np.uint8), 2049), "the data set is empty"),
    }
    for name, (data, words) in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="cannot load labels from") as info:
            make_source(f"mnist:{images},labels={tmp_path / name}")
        msg = str(info.value)
        assert name in msg and words in msg and "\n" not in msg, msg
    # a mismatched file found beside the images is refused, naming the explicit form
    (tmp_path / "a-labels-idx1-ubyte").write_bytes(bad["count"][0])
    with pytest.raises(ValueError, match="labels=PATH"):
        make_source(f"mnist:{images}")
    with pytest.raises(ValueError, match="given twice"):
        make_source(f"mnist:{images},labels=x,labels=y")


def _cifar(u8: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary records: the label byte, then 1024 red, 1024 green, 1024 blue bytes."""
    rec = np.concatenate([labels.astype(np.uint8)[:, None], u8.reshape(len(u8), -1)], axis=1)
    return rec.tobytes()


def test_cifar10_records_carry_their_labels(tmp_path):
    a = RNG.integers(0, 256, (7, 3, 32, 32), dtype=np.uint8)
    b = RNG.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    a[:, 0, 0, 0], b[:, 0, 0, 0] = np.arange(7), np.arange(7, 12)
    la, lb = RNG.integers(0, 10, 7), RNG.integers(0, 10, 5)
    (tmp_path / "data_batch_1.bin").write_bytes(_cifar(a, la))
    (tmp_path / "data_batch_2.bin").write_bytes(_cifar(b, lb))
    src = make_source(f"cifar10:{tmp_path}")
    assert src.label_info.names == CIFAR10_CLASSES and src.label_info.num_classes == 10
    both = np.concatenate([la, lb])
    assert torch.equal(src.targets, torch.from_numpy(both))
    _check_pairs(src, both)
    one = make_source(f"cifar10:{tmp_path / 'data_batch_2.bin'}")
    assert torch.equal(one.targets, torch.from_numpy(lb))
    # names from batches.meta.txt beside the batches (ten lines, blank lines ignored)
    names = [f"class{c}" for c in range(10)]
    (tmp_path / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    assert make_source(f"cifar10:{tmp_path}").label_info.names == tuple(names)
    # a label byte outside 0..9 is refused, naming the file and the record
    lb[3] = 10
    (tmp_path / "bad.bin").write_bytes(_cifar(b, lb))
    with pytest.raises(ValueError) as info:
        make_source(f"cifar10:{tmp_path / 'bad.bin'}")
    msg = str(info.value)
    assert "bad.bin" in msg and "label byte outside 0..9 (first: 10 in record 3)" in msg
    assert "\n" not in msg


def _png(path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    px = RNG.integers(0, 256, (4, 3), dtype=np.uint8)
    px[0, 0] = value
    Image.fromarray(px, "L").save(path)


def test_class_folders_label_each_image_by_its_folder(tmp_path):
    root = tmp_path / "root"
    classes = {"zebra": 2, "cat": 3, "dog": 1}
    labels, k = [], 0
    for c, name in enumerate(sorted(classes)):  # cat, dog, zebra
        for i in range(classes[name]):
            _png(root / name / f"{i}.png", k)
            labels.append(c)
            k += 1
    (root / ".hidden").mkdir()
    (root / "cat" / "notes.txt").write_text("not an image")
    src = make_source(f"images:{root}")
    assert src.label_info.names == ("cat", "dog", "zebra")
    assert src.points.shape == (6, 1, 4, 3)
    assert torch.equal(src.targets, torch.tensor(labels))
    _check_pairs(src, np.array(labels))
    # images directly in the folder: no labels, as before
    flat = tmp_path / "flat"
    _png(flat / "a.png", 0)
    _png(flat / "sub" / "b.png", 1)
    src = make_source(f"images:{flat}")
    assert not src.labelled and src.points.shape[0] == 1
    with pytest.raises(ValueError, match="one subfolder per class"):
        src.sample_labelled(1)
    # a class folder with no image is refused
    (root / "empty").mkdir()
    with pytest.raises(ValueError) as info:
        make_source(f"images:{root}")
    msg = str(info.value)
    assert "class folder 'empty' holds no .png/.jpg/.jpeg image" in msg and "\n" not in msg


def test_npz_with_x_and_y(tmp_path):
    u8 = _indexed_images(8)
    y = np.array([0, 2, 1, 2, 0, 1, 1, 2])
    np.savez(tmp_path / "set.npz", x=u8, y=y)
    src = make_source(f"array:{tmp_path / 'set.npz'}")
    assert src.label_info.names == ("0", "1", "2")
    _check_pairs(src, y)
    np.savez(tmp_path / "named.npz", images=u8, labels=y, names=np.array(["a", "b", "c", "d"]))
    src = make_source(f"array:{tmp_path / 'named.npz'}")
    assert src.label_info.names == ("a", "b", "c", "d")  # K from the names, class d unseen
    np.save(tmp_path / "plain.npy", u8)
    assert not make_source(f"array:{tmp_path / 'plain.npy'}").labelled
    # labelled 2-D points: file:PATH.npz (or the bare path) with x (n, d) and y
    pts = RNG.normal(size=(8, 2))
    pts[:, 0] = np.arange(8)
    np.savez(tmp_path / "pts.npz", x=pts, y=y)
    src = make_source(str(tmp_path / "pts.npz"))
    x, lab = src.sample_labelled(100, gen(0))
    assert torch.equal(lab, torch.from_numpy(y)[x[:, 0].long()])
    assert torch.equal(src.sample(100, gen(0)), x)


def test_npz_labels_that_do_not_fit_are_refused(tmp_path):
    u8 = _indexed_images(4)
    pts = RNG.normal(size=(4, 2))
    bad = {
        "short": (dict(y=np.arange(3)), "3 labels"),
        "negative": (dict(y=np.array([0, -1, 1, 0])), "negative"),
        "floats": (dict(y=np.array([0.0, 1.0, 1.0, 0.0])), "must be integers"),
        "beyond": (dict(y=np.array([0, 1, 2, 1]), names=np.array(["a", "b"])), "outside [0, 2)"),
        "twice": (dict(y=np.array([0, 1, 1, 0]), names=np.array(["a", "a"])), "distinct"),
    }
    for name, (extra, words) in bad.items():
        for kind, data in (("array", u8), ("file", pts)):
            path = tmp_path / f"{name}-{kind}.npz"
            np.savez(path, x=data, **extra)
            with pytest.raises(ValueError) as info:
                make_source(f"{kind}:{path}")
            msg = str(info.value)
            assert path.name in msg and words in msg and "\n" not in msg, msg
