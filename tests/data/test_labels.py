"""Labelled sources: digits against scikit-learn's targets, mixture components against the
mixture's own component densities (scipy) and weights (chi-square), the toy sets' pieces against
their geometry, unlabelled draws unchanged (against draws stored from main before labels), and
the one API every source answers (``labelled``, ``label_info``, ``sample_labelled``)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare, multivariate_normal

from wasserflow.data import (
    ClassLabels,
    FiniteSource,
    LabelInfo,
    check_targets,
    get_mixture,
    make_source,
    source_names,
)
from wasserflow.data.source import LABELLED_SETS
from wasserflow.data.toy2d import LABELLED

STORED = np.load(__file__.replace("test_labels.py", "unlabelled_draws_main.npz"))
"""``make_source(name).sample(24, Generator().manual_seed(7))`` for every bare name, written by
main's code (commit 87d635e, before labels existed)."""


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", source_names())
def test_unlabelled_draws_are_main_s_draws(name):
    src = make_source(name)
    x = src.sample(24, gen(7))
    # written on this machine by main's code; a change of draw order moves values by O(1)
    torch.testing.assert_close(x, torch.from_numpy(STORED[name]), rtol=0, atol=1e-6)
    assert sorted(STORED.files) == source_names()


@pytest.mark.parametrize("name", source_names())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_labelled_draw_takes_the_same_points_as_the_plain_draw(name, dtype):
    src = make_source(name, dtype=dtype)
    assert src.labelled == (src.label_info is not None)
    if not src.labelled:
        with pytest.raises(ValueError, match="has no labels") as info:
            src.sample_labelled(3, gen(0))
        assert "\n" not in str(info.value) and "digits" in str(info.value)
        return
    x, y = src.sample_labelled(500, gen(5))
    assert torch.equal(x, src.sample(500, gen(5)))  # bit for bit
    assert x.dtype == dtype and x.shape == (500, *src.shape)
    assert y.dtype == torch.int64 and y.shape == (500,)
    k = src.label_info.num_classes
    assert int(y.min()) >= 0 and int(y.max()) < k and len(src.label_info.names) == k
    x2, y2 = src.sample_labelled(500, gen(5))
    assert torch.equal(x2, x) and torch.equal(y2, y)
    assert not torch.equal(src.sample_labelled(500, gen(6))[0], x)
    # the generator advanced by the same draws: the next batch agrees too
    g1, g2 = gen(9), gen(9)
    src.sample(50, g1), src.sample_labelled(50, g2)
    assert torch.equal(src.sample(50, g1), src.sample_labelled(50, g2)[0])


def test_the_error_lists_exactly_the_labelled_bare_names():
    listed = {w.strip() for w in LABELLED_SETS.split(",") if ":" not in w}
    labelled = {n for n in source_names() if make_source(n).labelled}
    assert labelled == listed
    assert {n for n in source_names() if not make_source(n).labelled} == {"gaussian2d", "swissroll"}


def test_digits_labels_are_scikit_learn_s_targets():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    X, target = sklearn_datasets.load_digits(return_X_y=True)
    names = sklearn_datasets.load_digits().target_names
    for name in ("digits", "digits_images"):
        src = make_source(name)
        assert src.label_info.names == tuple(str(t) for t in names)
        assert torch.equal(src.targets, torch.as_tensor(target))
        x, y = src.sample_labelled(400, gen(1))
        # each drawn image is a row of X whose target is the drawn label
        raw = (x.reshape(400, 64).double() + 1.0) * 8.0
        match = (torch.from_numpy(X)[None] == raw[:, None]).all(-1)  # (400, 1797)
        assert match.any(1).all()
        for i in range(400):
            assert int(y[i]) in set(target[match[i].numpy()].tolist())


@pytest.mark.parametrize("name", ["gmm2d", "gmm8d", "8gaussians"])
def test_mixture_components_are_the_most_likely_and_have_the_weights(name):
    gm = get_mixture(name)
    src = make_source(name)
    assert src.label_info.num_classes == gm.weights.shape[0]
    n = 20_000
    x, y = src.sample_labelled(n, gen(2))
    # component densities from scipy, not from the mixture's own code
    dens = np.stack(
        [multivariate_normal(m.numpy(), c.numpy()).logpdf(x.double().numpy()) for m, c in
         zip(gm.means, gm.covs, strict=True)],
        axis=1,
    )  # fmt: skip
    assert (dens.argmax(1) == y.numpy()).mean() > 0.99
    counts = np.bincount(y.numpy(), minlength=gm.weights.shape[0])
    assert chisquare(counts, gm.weights.numpy() * n).pvalue > 1e-4


def test_a_single_gaussian_has_no_labels():
    src = make_source("gaussian2d")
    assert not src.labelled and src.label_info is None and src.targets is None


def _moon_distance(p: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """min over u in [0, 0.2] of | |q - u (1, 1) - centre| - 1 |, q = (p + 1) / 3."""
    q = (p + 1.0) / 3.0
    u = np.linspace(0.0, 0.2, 2001)[None, :, None]
    r = np.linalg.norm(q[:, None, :] - u * np.ones(2) - np.asarray(centre), axis=-1)
    return np.abs(r - 1.0).min(1)


def test_toy_pieces_match_their_geometry():
    n = 4000
    x, y = (t.numpy() for t in make_source("moons").sample_labelled(n, gen(3)))
    outer, inner = _moon_distance(x, (0.0, 0.0)), _moon_distance(x, (1.0, 0.5))
    assert np.all(np.where(y == 0, outer, inner) < 1e-3)  # on its own moon (grid step 1e-4)
    assert (y == 0).sum() == n // 2
    x, y = (t.numpy() for t in make_source("circles").sample_labelled(n, gen(3)))
    radius = np.linalg.norm(x, axis=1)  # 3 and 1.5, noise std 0.24
    assert ((radius < 2.25) == (y == 1)).mean() > 0.99
    assert chisquare(np.bincount(y, minlength=2)).pvalue > 1e-4
    x, y = (t.numpy() for t in make_source("checkerboard").sample_labelled(n, gen(3)))
    i, j = np.floor((x[:, 0] + 4) / 2), np.floor((x[:, 1] + 4) / 2)  # column, row
    assert np.all((i + j) % 2 == 0) and np.all(i == y // 2)
    assert np.all(j == 2 * (y % 2) + i % 2)
    assert chisquare(np.bincount(y, minlength=8)).pvalue > 1e-4


def test_spiral_arms_are_told_apart_by_their_neighbours():
    src = make_source("spirals")
    ref_x, ref_y = src.sample_labelled(20_000, gen(4))
    x, y = src.sample_labelled(2000, gen(5))
    nearest = torch.cdist(x, ref_x).argmin(1)
    assert (ref_y[nearest] == y).float().mean() > 0.95
    # the law is symmetric under x -> -x with the arms swapped
    assert chisquare(np.bincount(ref_y.numpy(), minlength=2)).pvalue > 1e-4
    torch.testing.assert_close(
        ref_x[ref_y == 1].mean(0), -ref_x[ref_y == 0].mean(0), atol=0.1, rtol=0
    )


def test_labelled_toy_sets_are_the_registered_ones():
    for name, (_, names) in LABELLED.items():
        assert make_source(name).label_info.names == names


def test_finite_source_draws_indices_once():
    pts = torch.arange(20.0).reshape(10, 2)
    labels = ClassLabels.create(torch.arange(10) % 3, "test")
    src = FiniteSource("ten", pts, labels=labels)
    assert src.label_info == LabelInfo.numbered(3)
    x, y = src.sample_labelled(300, gen(1))
    idx = torch.randint(0, 10, (300,), generator=gen(1))
    assert torch.equal(x, pts[idx]) and torch.equal(y, idx % 3)
    with pytest.raises(ValueError, match="3 labels for 10 points"):
        FiniteSource("ten", pts, labels=ClassLabels.create([0, 1, 2], "test"))


def test_label_info_and_target_checks():
    info = LabelInfo(3, ("a", "b", "c"))
    assert LabelInfo.from_dict(info.to_dict()) == info
    assert LabelInfo.numbered(2).names == ("0", "1")
    for bad in [(0, ()), (2, ("a",)), (2, ("a", "a")), (1, ("",)), (True, ("a",))]:
        with pytest.raises(ValueError):
            LabelInfo(*bad)
    assert torch.equal(check_targets(np.array([0, 2], np.uint8), "t", 3), torch.tensor([0, 2]))
    cases = [
        (np.array([0, 3]), 3, None, r"1 label\(s\) outside \[0, 3\) \(first: 3 at index 1\)"),
        (np.array([0, -1]), None, None, r"1 label\(s\) negative"),
        (np.array([0.0, 1.0]), None, None, "must be integers"),
        (np.array([True]), None, None, "must be integers"),
        (np.zeros((2, 1), int), None, None, r"shape \(N,\)"),
        (np.array([0, 1]), None, 3, "2 labels for 3 points"),
    ]
    for values, k, count, words in cases:
        with pytest.raises(ValueError, match=words) as err:
            check_targets(values, "the test file", k, count)
        assert "the test file" in str(err.value) and "\n" not in str(err.value)
    assert math.isclose(ClassLabels.create([4, 0], "t").info.num_classes, 5)
