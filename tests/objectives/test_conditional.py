"""Class-conditional training (objectives/conditional.py): label dropout is per sample, seeded
by the run's generator and of the asked rate (a binomial test); the network receives the
dropped labels of the rows it evaluates; couplings carry each pair's label, within each class
(the plan's cost the sum of POT's exact per-class costs) or blind to the labels (POT's exact
cost of the whole batch)."""

import ot
import pytest
import torch

from wasserflow.objectives import ConditionalLoss, PathRegression, drop_labels
from wasserflow.paths import AffinePath, LabelledBatch, LinearSchedule, couple_labelled


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_label_dropout_is_per_sample_seeded_and_of_the_asked_rate():
    y = torch.randint(0, 10, (20_000,), generator=_gen(0))
    p = 0.1
    a = drop_labels(y, 10, p, _gen(1))
    assert torch.equal(a, drop_labels(y, 10, p, _gen(1)))  # the generator decides
    assert not torch.equal(a, drop_labels(y, 10, p, _gen(2)))
    dropped = a == 10
    assert torch.equal(a[~dropped], y[~dropped])  # kept labels untouched
    n, k = y.numel(), int(dropped.sum())
    assert abs(k - n * p) < 5 * (n * p * (1 - p)) ** 0.5  # Binomial(n, p), 5 sigma
    per_batch = dropped[: 64 * 312].reshape(-1, 64).sum(1)  # batches of 64: mixed, not 0 / 64
    assert ((per_batch > 0) & (per_batch < 64)).float().mean() > 0.95
    g = _gen(3)
    state = g.get_state()
    assert torch.equal(drop_labels(y, 10, 0.0, g), y) and torch.equal(g.get_state(), state)
    assert (drop_labels(y, 10, 1.0, _gen(4)) == 10).all()


class _Spy(torch.nn.Module):
    """A 'network' that records the labels it is called with and returns zeros."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, t, y):
        self.seen.append(y.clone())
        return x * self.w


def test_the_network_gets_the_dropped_labels_of_its_rows():
    path = AffinePath(LinearSchedule())
    loss = ConditionalLoss(PathRegression(path), num_classes=3, label_dropout=0.5)
    x = torch.randn(400, 2, generator=_gen(0))
    y = torch.randint(0, 3, (400,), generator=_gen(1))
    spy = _Spy()
    out = loss(spy, LabelledBatch(x, y), _gen(5), 0)
    assert out.shape == (400,)
    seen = spy.seen[-1]
    want = drop_labels(y, 3, 0.5, _gen(5))  # the first draw of the loss's generator
    assert torch.equal(seen, want)
    with pytest.raises(ValueError, match="labelled batches"):
        loss(spy, x, _gen(5), 0)


def _cost(pairs):
    return float((pairs.x[:, 0] - pairs.x[:, 1]).pow(2).sum(1).sum())


def _pot_cost(a, b):
    m = ot.dist(a.numpy(), b.numpy())
    n = a.shape[0]
    return float(ot.emd2(ot.unif(n), ot.unif(n), m)) * n


def test_couplings_keep_labels_within_classes_or_blind():
    x1 = torch.randn(96, 2, generator=_gen(0), dtype=torch.float64) + 3.0
    y = torch.randint(0, 3, (96,), generator=_gen(1))
    x1 = x1 + 4.0 * y[:, None].double()  # classes far apart
    x0 = torch.randn(96, 2, generator=_gen(2), dtype=torch.float64)
    batch = LabelledBatch(x1, y)
    within = couple_labelled("ot", x0, batch, per_class=True)
    blind = couple_labelled("ot", x0, batch, per_class=False)
    for pairs in (within, blind):  # every data point once, with its own label
        order = torch.argsort(pairs.x[:, 1, 0])
        ref = torch.argsort(x1[:, 0])
        assert torch.equal(pairs.x[order, 1], x1[ref]) and torch.equal(pairs.y[order], y[ref])
        assert torch.equal(torch.sort(pairs.x[:, 0, 0]).values, torch.sort(x0[:, 0]).values)
    want = sum(_pot_cost(x0[y == c], x1[y == c]) for c in range(3))
    assert _cost(within) == pytest.approx(want, rel=1e-9)
    assert _cost(blind) == pytest.approx(_pot_cost(x0, x1), rel=1e-9)
    assert _cost(blind) < _cost(within)  # label-blind OT is cheaper: it crosses classes


def test_entropic_coupling_within_classes_pairs_only_inside_a_class():
    x1 = torch.randn(60, 2, generator=_gen(0), dtype=torch.float64)
    y = torch.arange(60) % 3
    x0 = torch.randn(60, 2, generator=_gen(1), dtype=torch.float64)
    pairs = couple_labelled("entropic", x0, LabelledBatch(x1, y), _gen(2), sigma=0.5)
    # each pair's data point is one of its class's
    for k in range(pairs.x.shape[0]):
        rows = (x1 == pairs.x[k, 1]).all(1)
        assert int(y[rows][0]) == int(pairs.y[k])
