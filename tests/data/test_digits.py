"""scikit-learn's 8x8 digits: shape, documented range, image view, missing-dependency error."""

import sys

import numpy as np
import pytest
import torch

from wasserflow.data import (
    DIGITS_RANGE,
    images_to_vectors,
    load_digits_images,
    load_digits_labels,
    load_digits_vectors,
    make_source,
    vectors_to_images,
)

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def test_digits_shape_range_and_image_view():
    x = load_digits_vectors()
    assert x.shape == (1797, 64) and x.dtype == torch.float32
    assert float(x.min()) == DIGITS_RANGE[0] and float(x.max()) == DIGITS_RANGE[1]
    raw = sklearn_datasets.load_digits()
    imgs = load_digits_images(torch.float64)
    assert imgs.shape == (1797, 1, 8, 8)
    np.testing.assert_allclose(imgs[:, 0].numpy(), raw.images / 8.0 - 1.0, atol=0)
    assert torch.equal(images_to_vectors(vectors_to_images(x)), x)
    assert torch.equal(load_digits_labels(), torch.as_tensor(raw.target))
    with pytest.raises(ValueError, match=r"\(n, 64\)"):
        vectors_to_images(torch.zeros(3, 63))


def test_digits_source_samples_members_with_replacement():
    src = make_source("digits")
    g = torch.Generator().manual_seed(0)
    x = src.sample(3000, g)  # more than the 1797 points: needs replacement
    assert x.shape == (3000, 64)
    assert float(torch.cdist(x, src.points).min(1).values.max()) == 0.0
    assert make_source("digits_images").sample(2, g).shape == (2, 1, 8, 8)


def test_missing_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install wasserflow\[data\]"):
        load_digits_vectors()


def test_digits_and_digits_images_are_found_as_each_others_form():
    from wasserflow.data import reshape_hint, same_points_elsewhere

    assert same_points_elsewhere("digits") == [("digits_images", (1, 8, 8))]
    assert same_points_elsewhere("digits_images") == [("digits", (64,))]
    assert same_points_elsewhere("moons") == []
    assert reshape_hint("digits", (1, 8, 8)).startswith("give digits_images")
    assert reshape_hint("digits", (3, 8, 8)) == ""
