"""PotentialField: the field is -grad E (finite differences, torch.func) and trains E."""

import torch

from wasserflow.models import PotentialField, PotentialMLP, build_model


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _field64(kind_cfg=None):
    cfg = {"kind": "energy", "dim": 3, "width": 32, "depth": 2, **(kind_cfg or {})}
    return build_model(cfg, seed=0).double().eval()


def test_field_is_minus_gradient_by_finite_differences():
    field = _field64()
    x = torch.randn(6, 3, generator=gen(1), dtype=torch.float64)
    v = field(x, 0.2)
    assert v.shape == x.shape and field.energy(x).shape == (6,)
    h = 1e-6
    fd = torch.empty_like(x)
    with torch.no_grad():
        for i in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[i] = h
            fd[:, i] = (field.energy(x + e) - field.energy(x - e)) / (2 * h)
    torch.testing.assert_close(v, -fd, rtol=1e-6, atol=1e-8)
    per_point = torch.func.vmap(torch.func.grad(lambda p: field.potential(p[None])[0]))(x)
    torch.testing.assert_close(v, -per_point)


def test_field_works_under_no_grad_and_for_images():
    field = build_model({"kind": "energy", "shape": [1, 4, 4], "width": 16}, seed=0).eval()
    x = torch.randn(5, 1, 4, 4, generator=gen(2))
    with torch.no_grad():
        v = field(x)
    assert v.shape == x.shape and not v.requires_grad
    assert field.energy(x).shape == (5,)


def test_training_through_the_field_reaches_the_potential():
    field = PotentialField(PotentialMLP((2,), width=16, depth=2)).train()
    x = torch.randn(8, 2, generator=gen(3))
    loss = (field(x) - 1.0).pow(2).mean()
    loss.backward()
    # every weight matrix gets a gradient (second order through autograd.grad); the output
    # bias cannot: it shifts E by a constant, which leaves -grad E unchanged
    named = dict(field.named_parameters())
    last_bias = [k for k in named if k.endswith("bias")][-1]
    for name, p in named.items():
        if name == last_bias:
            assert p.grad is None or float(p.grad.abs().max()) == 0
        else:
            assert p.grad is not None and float(p.grad.abs().max()) > 0, name


def test_time_conditioned_potential():
    field = _field64({"time_embedding": "sinusoidal"})
    x = torch.randn(4, 3, generator=gen(4), dtype=torch.float64)
    assert not torch.allclose(field(x, 0.1), field(x, 0.9))
