"""The guidance sweep (metrics/conditional.py) on exact class-conditional fields of a labelled
mixture: at s = 1 each class's samples are as close to that class's data as a second data
sample is (exact W2) and the Bayes classifier's accuracy is the data's own; guidance moves the
samples away from the class (W2 grows) and raises the path energy; the digits' reference
carries scikit-learn's targets; on 8 x 8 digits, with the exact fields of one Gaussian per class
(scikit-learn's targets), the sweep's per-class FD and the shipped classifier's accuracy at
s = 1 are those of direct draws of each class's Gaussian (a route that solves no ODE)."""

import torch

from wasserflow.data import make_source
from wasserflow.geometry import GaussianMixture, exact_ot
from wasserflow.interop import from_callable
from wasserflow.metrics import (
    feature_extractor,
    frechet_distance,
    guidance_sweep,
    labelled_reference,
)
from wasserflow.metrics.conditional import mixture_classifier, network_classifier
from wasserflow.paths import AffinePath, ClassOracle, LinearSchedule


def _oracle_model():
    src = make_source("gmm2d")
    o = ClassOracle(src.mixture, AffinePath(LinearSchedule()))

    def fn(x, t, extra):
        return o.velocity(x, t, extra.get("label", 3))

    return from_callable(fn, "velocity", "linear", shape=(2,), data="gmm2d", num_classes=3)


def test_exact_fields_at_scale_one_sample_each_class():
    rows = guidance_sweep(_oracle_model(), [1.0, 3.0], n_per_class=300, nfe=100, sampler="rk4")
    one, three = rows
    assert one.passes == one.nfe and three.passes == three.nfe  # batched: one pass each
    assert one.rows == 900 * one.nfe
    # a second labelled data sample of the same size: the W2 of sampling noise alone
    x, y = labelled_reference("gmm2d", 300, seed=7)
    x2, y2 = labelled_reference("gmm2d", 300, seed=8)
    noise = [exact_ot(x[y == c], x2[y2 == c]).w2 for c in range(3)]
    for got, floor in zip(one.class_w2, noise, strict=True):
        assert got < 1.5 * floor + 0.02
    bayes = float((mixture_classifier("gmm2d")(x).argmax(1) == y).double().mean())
    assert abs(one.accuracy - bayes) < 0.02
    assert all(b > a + 0.1 for a, b in zip(one.class_w2, three.class_w2, strict=True))
    assert three.path_energy > one.path_energy and three.accuracy >= one.accuracy - 0.01
    assert one.coupling_gap.lower >= 0.0 and one.endpoint_w2_squared.lower >= 0.0


def test_the_digits_reference_carries_their_targets():
    x, y = labelled_reference("digits_images", 10, seed=0)
    src = make_source("digits_images")
    assert torch.equal(y, src.targets) and x.shape == (1797, 1, 8, 8)


def _digit_gaussians():
    """One Gaussian per digit class (the class's mean and covariance + 0.01 I, 64-d), weighted
    by the class counts, and the digits with scikit-learn's targets."""
    x, y = labelled_reference("digits_images", 10, seed=0)
    flat = x.reshape(x.shape[0], 64)
    eye = torch.eye(64, dtype=torch.float64)
    means = torch.stack([flat[y == c].mean(0) for c in range(10)])
    covs = torch.stack([torch.cov(flat[y == c].T) + 0.01 * eye for c in range(10)])
    return GaussianMixture.create(torch.bincount(y).double(), means, covs), x, y


def test_digits_per_class_fd_and_accuracy_are_those_of_direct_class_draws():
    mix, x, y = _digit_gaussians()
    o = ClassOracle(mix, AffinePath(LinearSchedule()))

    def fn(z, t, extra):
        return o.velocity(z.reshape(z.shape[0], 64), t, extra.get("label", 10)).reshape(z.shape)

    model = from_callable(fn, "velocity", "linear", shape=(1, 8, 8), data="digits_images",
                          num_classes=10)  # fmt: skip
    features = feature_extractor("digits8")
    n = 100
    (row,) = guidance_sweep(model, [1.0], n_per_class=n, nfe=40, sampler="rk4",
                            features=features)  # fmt: skip
    clf = network_classifier(features)
    feats = features(x.float())
    g = torch.Generator().manual_seed(11)
    direct, other, hits = [], [], 0
    for c in range(10):
        z = (
            mix.means[c]
            + torch.randn(n, 64, generator=g, dtype=torch.float64)
            @ torch.linalg.cholesky(mix.covs[c]).T
        )
        fz = features(z.reshape(n, 1, 8, 8).float())
        direct.append(frechet_distance(fz, feats[y == c]).value)
        other.append(frechet_distance(fz, feats[y == (c + 1) % 10]).value)
        hits += int((clf(z.reshape(n, 1, 8, 8)).argmax(1) == c).sum())
    got = sum(row.class_fd) / 10
    assert abs(got - sum(direct) / 10) < 0.15 * sum(direct) / 10  # FD noise at n = 100
    assert max(row.class_fd) < 0.25 * min(other)  # each class against its own digits
    assert abs(row.accuracy - hits / (10 * n)) < 0.03
    assert len(row.class_accuracy) == 10 and row.fd is not None
