"""Feature networks: the shipped digit classifiers and the FID InceptionV3.

The digit networks' held-out accuracy is recomputed on scikit-learn's digits (the last 500,
never trained on) and must meet the value stated in the weights file. The InceptionV3 has no
real weights here, so its architecture is checked against torch-fidelity's (the published
FID network, which loads the same state dict as pytorch-fid's file): identical keys and
shapes, and identical outputs with the same random weights. pytorch-fid itself cannot be
imported here: its inception module subclasses torchvision's blocks, and torchvision cannot
be installed beside the pinned torch.
"""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from _torch_fidelity_peer import torch_fidelity_module
from sklearn.datasets import load_digits

from wasserflow.errors import InputError
from wasserflow.metrics import (
    FEATURE_NETS,
    FeatureExtractor,
    InceptionV3FID,
    default_feature_extractor,
    feature_extractor,
    frechet_distance,
    image_frechet_distance,
    load_inception,
)
from wasserflow.metrics.features import WEIGHTS_DIR, load_feature_net
from wasserflow.metrics.inception import INCEPTION_FILE_NAMES

MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="module")
def digits():
    d = load_digits()  # scikit-learn's own copy: pixels 0..16 -> v / 8 - 1
    x = torch.as_tensor(d.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 8.0 - 1.0
    return x, torch.as_tensor(d.target)


@pytest.fixture(scope="module")
def digits8():
    return feature_extractor("digits8")


def test_shipped_weights_are_small_safetensors():
    for name in ("digits8", "mnist28"):
        path = WEIGHTS_DIR / f"{name}.safetensors"
        assert path.is_file() and path.stat().st_size < 1_000_000
        _, info = load_feature_net(path)
        assert info["name"] == name and 0.9 < info["held_out_accuracy"] <= 1.0


def test_digits8_held_out_accuracy_meets_stated(digits, digits8):
    x, y = digits
    lo, hi = digits8.info["held_out_range"]
    assert (lo, hi) == (1297, 1797) and digits8.info["train_range"] == [0, 1297]
    with torch.no_grad():
        pred = digits8.net(x[lo:hi]).argmax(1)
    acc = float((pred == y[lo:hi]).double().mean())
    assert acc >= digits8.info["held_out_accuracy"] - 1e-12
    assert acc >= 0.95


def test_digits8_features_deterministic_float64(digits, digits8):
    x, _ = digits
    f1 = digits8(x[:300])
    f2 = digits8(x[:300])
    assert f1.dtype == torch.float64 and f1.shape == (300, 64) == (300, digits8.dim)
    assert torch.equal(f1, f2)
    small_batches = feature_extractor("digits8", batch_size=7)(x[:300])
    torch.testing.assert_close(small_batches, f1, rtol=1e-5, atol=1e-5)
    assert (f1 >= 0).all() and (f1.std(0) > 0).sum() > 32  # ReLU features, most of them alive


def test_fd_digits_small_against_noise_large(digits, digits8):
    x, _ = digits
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(500, 1, 8, 8, generator=g) * 2 - 1
    a, b = digits8.stats(x[:500]), digits8.stats(x[1297:])
    same = frechet_distance(a, b)
    far = frechet_distance(a, digits8.stats(noise))
    assert same.feature == "digits8" and (same.n_a, same.n_b) == (500, 500)
    assert far.value > 20 * same.value > 0
    assert image_frechet_distance(x[:500], x[1297:]).value == pytest.approx(same.value)


def test_mnist28_loads_and_reads_upscaled_digits(digits):
    """scikit-learn's digits drawn as MNIST draws its digits (20 x 20 box in a 28 x 28 frame)
    are read by the MNIST network it never saw: a check of the network without MNIST files."""
    net = default_feature_extractor((1, 28, 28))
    assert net.name == "mnist28" and net.dim == 128 and net.image_shape == (1, 28, 28)
    x, y = digits
    big = torch.nn.functional.interpolate(x[:200], size=(20, 20), mode="bilinear")
    big = torch.nn.functional.pad(big, (4, 4, 4, 4), value=-1.0)
    f = net(big)
    assert f.shape == (200, 128) and torch.equal(f, net(big))
    with torch.no_grad():
        acc = float((net.net(big).argmax(1) == y[:200]).double().mean())
    assert acc > 0.7  # 0.84 when written


@pytest.mark.slow
@pytest.mark.skipif(not MNIST.is_dir(), reason="the MNIST test set is not beside the repository")
def test_mnist28_held_out_accuracy_meets_stated():
    from wasserflow.data.image_files import load_idx_images

    x = load_idx_images(MNIST / "t10k-images-idx3-ubyte.gz")
    raw = gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes())
    y = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64))
    net = feature_extractor("mnist28")
    lo, hi = net.info["held_out_range"]
    with torch.no_grad():
        pred = torch.cat([net.net(x[i : i + 500]).argmax(1) for i in range(lo, hi, 500)])
    acc = float((pred == y[lo:hi]).double().mean())
    assert acc >= net.info["held_out_accuracy"] - 1e-12 and acc > 0.97


def test_default_choice_and_bad_input(digits8, monkeypatch, tmp_path):
    assert default_feature_extractor((1, 8, 8)).name == "digits8"
    assert set(FEATURE_NETS) == {"digits8", "mnist28", "inception"}
    with pytest.raises(InputError, match=r"\(n, 1, 8, 8\)"):
        digits8(torch.zeros(3, 1, 28, 28))
    with pytest.raises(InputError, match="floats"):
        digits8(torch.zeros(3, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(InputError, match="NaN"):
        digits8(torch.full((3, 1, 8, 8), float("nan")))
    with pytest.raises(InputError, match="unknown feature network"):
        feature_extractor("vgg16")
    # no Inception weights anywhere: one line naming the file, the place and the download
    monkeypatch.delenv("WASSERFLOW_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(InputError) as err:
        default_feature_extractor((3, 32, 32))
    msg = str(err.value)
    assert (
        "\n" not in msg and INCEPTION_FILE_NAMES[0] in msg and "WASSERFLOW_INCEPTION_WEIGHTS" in msg
    )
    assert str(tmp_path / ".cache" / "wasserflow") in msg and "https://" in msg
    monkeypatch.setenv("WASSERFLOW_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(InputError, match="nope.pth"):
        feature_extractor("inception")


# --- InceptionV3 -------------------------------------------------------------------------


def _random_state(seed: int) -> dict:
    """Random weights for every tensor (batch-norm statistics included, so a swapped key
    shows), scaled to keep activations of order one through the 94 convolutions."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    with torch.device("meta"):
        shapes = InceptionV3FID().state_dict()
    for k, v in shapes.items():
        if k.endswith("num_batches_tracked"):
            continue
        if k.endswith("conv.weight") or k == "fc.weight":
            out[k] = torch.randn(v.shape, generator=g) * (2.0 / v[0].numel()) ** 0.5
        elif k.endswith("running_var") or k.endswith("bn.weight"):
            out[k] = 0.5 + torch.rand(v.shape, generator=g)
        else:  # bn.bias, running_mean, fc.bias
            out[k] = 0.1 * torch.randn(v.shape, generator=g)
    return out


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A random state dict in the published files' format (a torch.save'd dict of tensors)."""
    path = tmp_path_factory.mktemp("inception") / INCEPTION_FILE_NAMES[1]
    torch.save(_random_state(0), path)
    return path


@pytest.fixture(scope="module")
def torch_fidelity_net(inception_file):
    mod = torch_fidelity_module("feature_extractor_inceptionv3")
    # their constructor loads the file strictly into their module: our keys are theirs
    return mod.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(inception_file)
    )


def test_inception_keys_and_shapes_equal_torch_fidelity(torch_fidelity_net):
    theirs = {
        k: tuple(v.shape)
        for k, v in torch_fidelity_net.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    with torch.device("meta"):
        ours = {
            k: tuple(v.shape)
            for k, v in InceptionV3FID().state_dict().items()
            if not k.endswith("num_batches_tracked")
        }
    assert ours == theirs
    assert len(ours) == 5 * 94 + 2 and ours["fc.weight"] == (1008, 2048)  # 94 conv+bn, fc


def test_inception_equals_torch_fidelity_on_same_weights(inception_file, torch_fidelity_net):
    g = torch.Generator().manual_seed(1)
    u8 = torch.randint(0, 256, (2, 3, 299, 299), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        (theirs,) = torch_fidelity_net(u8)
    ext = feature_extractor(inception_file)
    assert isinstance(ext, FeatureExtractor) and ext.name == "inception" and ext.dim == 2048
    ours = ext((u8.float() - 128.0) / 128.0)  # torch-fidelity's own map of 8-bit pixels
    assert ours.shape == (2, 2048) and ours.dtype == torch.float64
    assert theirs.abs().max() > 1e-2  # activations survived the depth
    torch.testing.assert_close(
        ours.float(), theirs, rtol=1e-4, atol=1e-5 * float(theirs.abs().max())
    )


def test_inception_gray_small_images_deterministic(inception_file, monkeypatch):
    monkeypatch.setenv("WASSERFLOW_INCEPTION_WEIGHTS", str(inception_file))
    ext = feature_extractor("inception")
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    f = ext(x)
    assert f.shape == (1, 2048) and torch.equal(f, ext(x))
    assert torch.equal(f, ext(x.expand(-1, 3, -1, -1)))  # gray = the same value in R, G, B


def test_inception_file_variants_and_refusals(tmp_path):
    """Keys of a DataParallel save lose their prefix, batch-norm counters are dropped;
    a file with other keys, or not a torch file, is refused in one line."""
    from wasserflow.metrics.inception import load_inception_state_dict

    w = torch.ones(32, 3, 3, 3)
    saved = tmp_path / "dataparallel.pth"
    torch.save(
        {
            "module.Conv2d_1a_3x3.conv.weight": w,
            "module.Conv2d_1a_3x3.bn.num_batches_tracked": torch.tensor(0),
        },
        saved,
    )
    assert set(load_inception_state_dict(saved)) == {"Conv2d_1a_3x3.conv.weight"}
    with pytest.raises(InputError, match=r"471 keys missing") as err:
        load_inception(saved)
    assert "\n" not in str(err.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read InceptionV3 weights"):
        load_inception(junk)
