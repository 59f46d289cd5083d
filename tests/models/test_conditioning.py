"""Extra conditioning inputs (models/conditioning.py): off by default and then invisible (same
parameters, same initial values, same outputs), added to the time embedding when on (a zeroed
condition embedding gives the unconditioned network's outputs exactly), counted and refused in
one line, and differentiable forward through the UNet's attention in the math kernel (the
JVP against central differences)."""

import dataclasses

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from wasserflow.models import BACKBONES, build_backbone, register_model
from wasserflow.models.conditioning import align_conditions, parse_conditions

CASES = {
    "mlp": ([2], {"width": 32, "depth": 2}),
    "unet": ([1, 8, 8], {"size": "digits", "channels": 8, "groups": 4}),
}


def _wake(module):
    """Perturb every parameter (zero-initialised output layers included)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p += 0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype)


def _inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(5, *shape, generator=g),
        torch.rand(5, generator=g),
        torch.rand(5, generator=g),
    )


@pytest.mark.parametrize("name", CASES)
def test_without_conditions_nothing_changes_and_with_them_they_are_added(name):
    shape, opts = CASES[name]
    plain = build_backbone(name, shape, opts, seed=3)
    cond = build_backbone(name, shape, opts, seed=3, conditions=("scalar",))
    assert not any(k.startswith("cond.") for k in plain.state_dict())
    new = {k for k in cond.state_dict() if k not in plain.state_dict()}
    assert new and all(k.startswith("cond.") for k in new)
    for k, v in plain.state_dict().items():  # built last: the shared weights start equal
        assert torch.equal(v, cond.state_dict()[k]), k
    _wake(plain)  # the UNet's zero-initialised layers would hide every difference
    cond.load_state_dict(plain.state_dict(), strict=False)
    _wake(cond.cond)
    x, t, h = _inputs(shape)
    with torch.no_grad():
        y_plain = plain(x, t)
        assert not torch.allclose(cond(x, t, h), y_plain)
        last = [m for m in cond.cond.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.zero_()
        last.bias.zero_()  # the condition's embedding is now 0: added, it changes nothing
        torch.testing.assert_close(cond(x, t, h), y_plain, rtol=0, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_a_class_embedding_moves_to_where_another_backbone_keeps_it(name):
    """align_conditions: ("class:3",) keeps the class embedding at index 0, ("scalar",
    "class:3") at index 1; aligned, the first's weights load into the second with only the
    scalar's embedding left, and with it zeroed the two give the same outputs for every class.
    A condition the target lacks becomes a key the target does not have."""
    shape, opts = CASES[name]
    source = build_backbone(name, shape, opts, seed=3, conditions=("class:3",))
    target = build_backbone(name, shape, opts, seed=4, conditions=("scalar", "class:3"))
    _wake(source)
    state = align_conditions(source.state_dict(), source, target)
    missing, unexpected = target.load_state_dict(state, strict=False)
    assert not unexpected and missing and all(k.startswith("cond.embeddings.0.") for k in missing)
    last = [m for m in target.cond.embeddings[0].modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        x, t, h = _inputs(shape)
        y = torch.tensor([0, 1, 2, 3, 1])  # 3: the null class
        torch.testing.assert_close(target(x, t, h, y), source(x, t, y), rtol=0, atol=1e-6)
    plain = build_backbone(name, shape, opts, conditions=("scalar",))
    foreign = set(align_conditions(source.state_dict(), source, plain)) - set(plain.state_dict())
    assert foreign and all(k.startswith("<no class:3>.") for k in foreign)


@pytest.mark.parametrize("name", CASES)
def test_extra_inputs_are_counted(name):
    shape, opts = CASES[name]
    x, t, h = _inputs(shape)
    with pytest.raises(ValueError, match="takes 1 extra input.*scalar.*got 0"):
        build_backbone(name, shape, opts, conditions=("scalar",))(x, t)
    with pytest.raises(ValueError, match=r"takes \(x, t\) only, got 1 extra"):
        build_backbone(name, shape, opts)(x, t, h)


def test_bad_conditions_are_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown condition 'label'.*scalar"):
        parse_conditions(["label"])
    with pytest.raises(ValueError, match="takes no argument"):
        build_backbone("mlp", [2], {}, conditions=("scalar:3",))
    with pytest.raises(ValueError, match="must be sinusoidal.*'linear'"):
        build_backbone("mlp", [2], {"time_embedding": "linear"}, conditions=("scalar",))
    with pytest.raises(ValueError, match="must be time-conditioned"):
        build_backbone("unet", [1, 8, 8], {"channels": 8, "groups": 4}, scalar=True,
                       conditions=("scalar",))  # fmt: skip

    @dataclasses.dataclass(frozen=True)
    class NoCond:
        pass

    register_model("toy_nocond", NoCond)(lambda shape, config, *, scalar=False: torch.nn.Identity())
    try:
        with pytest.raises(ValueError, match="toy_nocond takes no extra inputs.*mlp, unet"):
            build_backbone("toy_nocond", [2], {}, conditions=("scalar",))
    finally:
        BACKBONES.pop("toy_nocond")


def test_forward_mode_through_the_unet_attention_in_the_math_kernel():
    """PyTorch's fused CPU attention has no forward-mode rule; the math kernel does, and its
    JVP equals central differences (float64)."""
    net = build_backbone(
        "unet", [1, 8, 8], {"size": "digits", "channels": 8, "groups": 4}, seed=0,
        conditions=("scalar",),
    ).double()  # fmt: skip
    _wake(net)
    x, t, h = (v.double() for v in _inputs([1, 8, 8]))
    v = torch.randn_like(x)

    def f(y, tau):
        return net(y, tau, h)

    with pytest.raises(NotImplementedError):
        torch.func.jvp(f, (x, t), (v, torch.ones_like(t)))
    with sdpa_kernel([SDPBackend.MATH]):
        _, jvp = torch.func.jvp(f, (x, t), (v, torch.ones_like(t)))
        # central differences, error ~ eps^2 (1000 w)^3: the time embedding runs at 1000 t
        eps = 1e-7
        fd = (f(x + eps * v, t + eps) - f(x - eps * v, t - eps)) / (2 * eps)
    torch.testing.assert_close(jvp, fd, rtol=1e-6, atol=1e-7)
    assert jvp.abs().max() > 1e-3
