"""The class-label condition ("class:K", models/conditioning.py): K + 1 learned rows (the null
class K), looked up per sample and added to the time embedding; it also conditions backbones
without a time embedding (a time-independent energy E(x, c)); bad labels are refused in one
line; WithLabels binds them."""

import pytest
import torch

from wasserflow.models import PotentialField, WithLabels, build_backbone, class_labels

CASES = {
    "mlp": ([2], {"width": 32, "depth": 2}),
    "unet": ([1, 8, 8], {"size": "digits", "channels": 8, "groups": 4}),
}


def _wake(module, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p += 0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype)


@pytest.mark.parametrize("name", CASES)
def test_a_class_is_one_learned_row_added_to_the_time_embedding(name):
    shape, opts = CASES[name]
    plain = build_backbone(name, shape, opts, seed=3)
    net = build_backbone(name, shape, opts, seed=3, conditions=("class:4",))
    table = net.cond.embeddings[0].table
    assert tuple(table.weight.shape)[0] == 5  # K + 1 rows: the null class is learned
    for k, v in plain.state_dict().items():  # built last: the rest starts equal
        assert torch.equal(v, net.state_dict()[k]), k
    _wake(plain)
    net.load_state_dict(plain.state_dict(), strict=False)
    _wake(net.cond)
    x = torch.randn(6, *shape, generator=torch.Generator().manual_seed(0))
    t = torch.rand(6, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 4, 2])
    with torch.no_grad():
        out = net(x, t, y)
        assert not torch.allclose(out[1], net(x, t, torch.full((6,), 2))[1])  # the label matters
        for i in range(6):  # row i sees row y_i of the table, nothing else
            torch.testing.assert_close(
                out[i : i + 1], net(x[i : i + 1], t[i : i + 1], y[i : i + 1])
            )
        table.weight.zero_()
        torch.testing.assert_close(net(x, t, y), plain(x, t), rtol=0, atol=0)
        torch.testing.assert_close(WithLabels(net, 2)(x, t), net(x, t, torch.full((6,), 2)))


def test_labels_are_checked_in_one_line():
    net = build_backbone("mlp", [2], {}, conditions=("class:3",))
    x, t = torch.zeros(2, 2), torch.zeros(2)
    with pytest.raises(ValueError, match=r"integers in \[0, 3\]"):
        net(x, t, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\].*got 0..4"):
        net(x, t, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="3 class labels for a batch of 2"):
        net(x, t, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="number of classes"):
        build_backbone("mlp", [2], {}, conditions=("class",))
    with pytest.raises(ValueError, match="number of classes"):
        build_backbone("mlp", [2], {}, conditions=("class:0",))
    assert torch.equal(class_labels(3, 3, 4), torch.full((4,), 3))


@pytest.mark.parametrize("name", CASES)
def test_a_time_independent_energy_takes_classes(name):
    """Energy Matching's potential has no time embedding; class labels alone condition it, E(x, c),
    and the field is -grad_x E(x, c) (against autograd of the bound energy)."""
    shape, opts = CASES[name]
    pot = build_backbone(name, shape, opts, scalar=True, seed=0, conditions=("class:3",))
    _wake(pot)
    field = PotentialField(pot)
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 3])
    e = field.energy(x, None, y)
    assert e.shape == (4,) and not torch.allclose(e, field.energy(x, None, torch.zeros(4).long()))
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(pot(xg, None, y).sum(), xg)
    torch.testing.assert_close(WithLabels(field, y)(x, 0.3), -g)
    torch.testing.assert_close(WithLabels(field, y).energy(x), e)
    with pytest.raises(ValueError, match="must be sinusoidal"):
        build_backbone("mlp", [2], {"time_embedding": "none"}, conditions=("scalar",))
