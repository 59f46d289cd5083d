"""The guidance sweep (metrics/conditional.py) on exact class-conditional fields of a labelled
mixture: at s = 1 each class's samples are as close to that class's data as a second data
sample is (exact W2) and the Bayes classifier's accuracy is the data's own; guidance moves the
samples away from the class (W2 grows) and raises the path energy; the digits' reference
carries scikit-learn's targets."""

import torch

from wasserflow.data import make_source
from wasserflow.geometry import exact_ot
from wasserflow.interop import from_callable
from wasserflow.metrics import guidance_sweep, labelled_reference
from wasserflow.metrics.conditional import mixture_classifier
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


def test_the_digits_reference_carries_their_targets():
    x, y = labelled_reference("digits_images", 10, seed=0)
    src = make_source("digits_images")
    assert torch.equal(y, src.targets) and x.shape == (1797, 1, 8, 8)
