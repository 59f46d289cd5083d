"""The ``unet`` backbone: TorchCFM's sizes, shapes, the scalar head, seeding, validation, and a
tiny training run on the 8x8 digits."""

import pytest
import torch

from wasserflow.engine import load_run, make_config, train_run
from wasserflow.models import UNET_SIZES, UNet, UNetConfig, build_backbone, get_backbone
from wasserflow.objectives import objective_spec


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def torchcfm_unet(size: str) -> torch.nn.Module:
    unet = pytest.importorskip("torchcfm.models.unet.unet")
    if size == "mnist":  # TorchCFM's MNIST examples
        return unet.UNetModelWrapper(dim=(1, 28, 28), num_channels=32, num_res_blocks=1)
    # TorchCFM's examples/images/cifar10/train_cifar10.py
    return unet.UNetModelWrapper(
        dim=(3, 32, 32),
        num_res_blocks=2,
        num_channels=128,
        channel_mult=[1, 2, 2, 2],
        num_heads=4,
        num_head_channels=64,
        attention_resolutions="16",
        dropout=0.1,
    )


@pytest.mark.parametrize(
    ("size", "shape", "expected"),
    [("mnist", (1, 28, 28), 1_075_361), ("cifar10", (3, 32, 32), 35_746_307)],
)
def test_presets_have_torchcfms_parameter_count(size, shape, expected):
    with torch.device("meta"):  # no memory or init time for the 36 M parameters
        ours = build_backbone("unet", shape, {"size": size})
        theirs = torchcfm_unet(size)
    assert n_params(ours) == n_params(theirs) == expected


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [((1, 28, 28), "mnist", 1_075_361), ((3, 32, 32), "cifar10", 35_746_307)],
)
def test_without_a_size_the_data_shape_picks_torchcfms_net(shape, size, expected):
    with torch.device("meta"):
        theirs = torchcfm_unet(size)
        ours = build_backbone("unet", shape, {})
    assert n_params(ours) == n_params(theirs) == expected
    assert get_backbone("unet").options({}, shape).size == size


def test_without_a_size_the_digits_shape_picks_the_digits_preset():
    assert get_backbone("unet").options({}, (1, 8, 8)) == UNetConfig(size="digits")


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 64, 64), (1, 7, 7), (1, 12, 20), (2, 4, 4)])
def test_any_other_shape_gets_a_size_that_fits(shape):
    net = build_backbone("unet", shape, {}, seed=0)
    x = torch.randn(2, *shape)
    assert net(x, torch.rand(2)).shape == x.shape
    given = get_backbone("unet").options({"num_res_blocks": 3}, shape)
    assert given.num_res_blocks == 3  # options given are kept


def test_a_size_that_does_not_fit_names_the_presets():
    with pytest.raises(ValueError, match="--model-set size=digits for 8 x 8, mnist for 28 x 28"):
        build_backbone("unet", (1, 28, 28), {"size": "digits"})


def test_digits_preset_is_small():
    net = build_backbone("unet", (1, 8, 8), {"size": "digits"})
    assert n_params(net) < 1_000_000


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((1, 8, 8), {"size": "digits"}),
        ((1, 28, 28), {"size": "mnist", "channels": 16, "groups": 8}),
        (
            (3, 32, 32),
            {
                "size": "cifar10",
                "channels": 16,
                "num_res_blocks": 1,
                "groups": 8,
                "head_channels": 16,
            },
        ),
    ],
)
def test_output_has_the_input_shape(shape, options):
    net = build_backbone("unet", shape, options, seed=0).eval()
    x = torch.randn(3, *shape)
    for t in (torch.tensor([0.0, 0.5, 1.0]), 0.3, torch.tensor(0.7), torch.rand(3, 1)):
        out = net(x, t)
        assert out.shape == x.shape and torch.isfinite(out).all()


def test_field_output_is_zero_at_init_and_depends_on_time_after_a_step():
    net = build_backbone("unet", (1, 8, 8), {"size": "digits"}, seed=0)
    x = torch.randn(4, 1, 8, 8)
    assert torch.all(net(x, 0.5) == 0)  # zero-initialised last conv (ADM)
    torch.nn.init.normal_(net.head.weight, std=0.1)
    for p in net.parameters():  # un-zero the residual branches too
        if p.dim() > 1 and torch.all(p == 0):
            torch.nn.init.normal_(p, std=0.1)
    assert not torch.allclose(net(x, 0.1), net(x, 0.9))


@pytest.mark.parametrize("head", ["norm", "pool"])
def test_scalar_head_gives_one_number_per_sample(head):
    net = build_backbone("unet", (1, 8, 8), {"energy_head": head}, scalar=True, seed=0)
    x = torch.randn(5, 1, 8, 8, requires_grad=True)
    e = net(x)  # time-independent by default: t may be omitted
    assert e.shape == (5,) and torch.isfinite(e).all()
    if head == "norm":
        assert (e >= 0).all()
    (g,) = torch.autograd.grad(e.sum(), x)
    assert g.abs().sum() > 0  # a non-trivial field -grad E at init
    timed = build_backbone("unet", (1, 8, 8), {"time_conditioned": True}, scalar=True)
    assert timed(x, torch.rand(5)).shape == (5,)


def test_seeded_builds_are_reproducible():
    opts = {"size": "digits", "channels": 16}
    a = build_backbone("unet", (1, 8, 8), opts, seed=0)
    b = build_backbone("unet", (1, 8, 8), opts, seed=0)
    c = build_backbone("unet", (1, 8, 8), opts, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_presets_are_overridable_and_json_lists_become_tuples():
    cfg = UNetConfig(size="cifar10", channel_mult=[1, 2], dropout=0.0)
    assert cfg.channel_mult == (1, 2) and cfg.channels == 128 and cfg.dropout == 0.0
    assert cfg.attention_resolutions == tuple(UNET_SIZES["cifar10"]["attention_resolutions"])
    assert get_backbone("unet").cls is UNet


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"size": "imagenet"}, "size"),
        ({"channels": 0}, "'channels'"),
        ({"channels": 33, "groups": 1}, "'channels' must be even"),
        ({"channel_mult": []}, "'channel_mult'"),
        ({"channel_mult": [1, 0]}, "'channel_mult'"),
        ({"channel_mult": "12"}, "'channel_mult'"),
        ({"num_res_blocks": 0}, "'num_res_blocks'"),
        ({"num_res_blocks": 1.5}, "'num_res_blocks'"),
        ({"attention_resolutions": [-4]}, "'attention_resolutions'"),
        ({"num_heads": 0}, "'num_heads'"),
        ({"num_heads": 3}, "'num_heads'"),
        ({"head_channels": 24}, "'head_channels'"),
        ({"dropout": 1.0}, "'dropout'"),
        ({"dropout": "0.1"}, "'dropout'"),
        ({"groups": 5}, "'groups'"),
        ({"time_scale": 0}, "'time_scale'"),
        ({"energy_head": "max"}, "'energy_head'"),
        ({"time_conditioned": "yes"}, "'time_conditioned'"),
        ({"width": 64}, "unknown option width"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        build_backbone("unet", (1, 8, 8), options)


@pytest.mark.parametrize(
    ("shape", "options", "match"),
    [
        ((1, 28, 28), {"size": "cifar10"}, r"\(1, 28, 28\).*channel_mult \[1, 2, 2, 2\]"),
        ((1, 6, 8), {"channel_mult": [1, 2, 2]}, r"\(1, 6, 8\).*\[1, 2, 2\]"),
        ((64,), {}, "shape"),
        ((1, 8, 8), {"attention_resolutions": [2]}, r"attention_resolutions \[2\]"),
    ],
)
def test_bad_shapes_are_refused(shape, options, match):
    with pytest.raises(ValueError, match=match):
        build_backbone("unet", shape, options)


def test_wrong_input_shape_is_refused():
    net = build_backbone("unet", (1, 8, 8), {})
    with pytest.raises(ValueError, match="does not match"):
        net(torch.randn(2, 1, 16, 16), 0.5)


@pytest.mark.parametrize("method", ["icfm", "energy-matching"])
def test_digits_trains_and_samples(method, tmp_path):
    options = {"size": "digits"}
    if method == "energy-matching":  # second-order training: a narrower net keeps it fast
        options.update(channels=16, groups=4)
    cfg = make_config(
        method, "digits_images", steps=3, batch_size=8, model="unet", model_options=options
    )
    train_run(cfg, tmp_path / "r")
    run = load_run(tmp_path / "r")
    scalar = objective_spec(cfg.objective).head == "scalar"
    net = run.model.potential if scalar else run.model
    assert isinstance(net, UNet) and net.scalar == scalar
    out = run.sample(4, nfe=2, generator=torch.Generator().manual_seed(0))
    assert out.x.shape == (4, 1, 8, 8) and torch.isfinite(out.x).all()


def test_both_attention_paths_agree():
    field = build_backbone("unet", (1, 8, 8), {}, seed=0)
    torch.manual_seed(1)
    for p in field.parameters():
        torch.nn.init.normal_(p, std=0.1)
    attn = next(m for m in field.modules() if type(m).__name__ == "SelfAttention")
    x = torch.randn(2, attn.norm.num_channels, 4, 4)
    fused = attn(x)
    attn.explicit = True
    assert torch.allclose(fused, attn(x), atol=1e-5)
