"""Class-conditional models trained elsewhere: a diffusers UNet2DModel with num_class_embeds
(its class_labels, the null class its last index by default) guided through wasserflow equals
diffusers' own ClassifierFreeGuidance arithmetic on the same network outputs (bit for bit
unbatched, and along a DDIM loop of diffusers' scheduler), and a callable in flow_matching's
``extra={"label": y}`` style guided as flow_matching's CFGScaledModel guides it."""

import pytest
import torch
from _tiny import SHAPE
from diffusers import DDIMScheduler, UNet2DModel
from diffusers.guiders import ClassifierFreeGuidance

from wasserflow.errors import InputError
from wasserflow.interop import from_callable, from_diffusers, scheduler_grid
from wasserflow.interop.diffusers_models import ClassMap
from wasserflow.samplers import Guidance, guided_field

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
K = 3


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


def _unet(**extra):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = UNet2DModel(
            sample_size=8,
            in_channels=1,
            out_channels=1,
            layers_per_block=1,
            block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
            **extra,
        )
        with torch.no_grad():  # the class table matters (diffusers initialises it ~N(0, 1))
            for p in net.parameters():
                p.add_(0.02 * torch.randn(p.shape))
    return net.double().eval()


SCHED = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, timestep_spacing="trailing")


def _cfg(s, cond, uncond):
    guider = ClassifierFreeGuidance(guidance_scale=s)
    guider.set_state(step=0, num_inference_steps=1, timestep=torch.tensor(0))
    return guider.forward(cond, uncond).pred


def test_diffusers_guided_output_is_diffusers_cfg():
    unet = _unet(num_class_embeds=K + 1)
    model = from_diffusers(unet, SCHED.config)
    assert model.num_classes == K
    y = torch.tensor([0, 2, 1])
    x = torch.randn(3, *SHAPE, generator=_gen(), dtype=torch.float64)
    for t0 in (0.1, 0.6):
        t = torch.full((3,), t0, dtype=torch.float64)
        k = model.field().fn.clock.timestep(t).float()
        with torch.no_grad():
            cond = unet(x, k, class_labels=y).sample
            uncond = unet(x, k, class_labels=torch.full((3,), K)).sample
            assert not torch.allclose(cond, uncond)
            for s in (1.0, 2.0, 4.5):
                want = _cfg(s, cond, uncond)
                g = Guidance(s, batched=False)
                assert torch.equal(guided_field(model.labelled_field, y, K, g).fn(x, t), want)
                both = guided_field(model.labelled_field, y, K, Guidance(s)).fn(x, t)
                torch.testing.assert_close(both, want, rtol=1e-10, atol=1e-10)
            # the unconditional model is the null class
            assert torch.equal(model.field().fn(x, t), uncond)


def test_guided_ddim_equals_diffusers_scheduler_loop_with_its_guider():
    unet = _unet(num_class_embeds=K + 1)
    model = from_diffusers(unet, SCHED.config)
    sched = DDIMScheduler.from_config(SCHED.config)
    y = torch.tensor([2, 0, 1, 1])
    null = torch.full((4,), K)
    for steps, s in ((4, 3.0), (8, 1.5)):
        sched.set_timesteps(steps)
        x0 = torch.randn((4, *SHAPE), generator=_gen(steps), dtype=torch.float64)
        x = x0 * sched.init_noise_sigma
        with torch.no_grad():
            for t in sched.timesteps:
                eps = _cfg(
                    s, unet(x, t, class_labels=y).sample, unet(x, t, class_labels=null).sample
                )
                x = sched.step(eps, t, x).prev_sample
        g = scheduler_grid(sched, steps)
        ours = model.sample(4, sampler=g.sampler, grid=g.grid, options=g.options, x0=x0,
                            labels=y, guidance=s)  # fmt: skip
        err = float((ours.x - x).abs().max()) / max(1.0, float(x.abs().max()))
        assert err < 1e-5, (steps, err)  # diffusers' DDIM step computes in float32
        assert ours.passes == ours.nfe and ours.rows == 2 * 4 * ours.nfe


def test_class_maps_and_refusals():
    m = ClassMap(num_embeds=4, null=0)  # null first: labels 0, 1, 2 are indices 1, 2, 3
    assert m.indices(torch.tensor([0, 1, 2, 3]), 4).tolist() == [1, 2, 3, 0]
    assert ClassMap(4, 3).indices(torch.tensor([0, 1, 2, 3]), 4).tolist() == [0, 1, 2, 3]
    assert ClassMap(4, 1).indices(torch.tensor([0, 1, 2, 3]), 4).tolist() == [0, 2, 3, 1]
    with pytest.raises(InputError, match="null_class must be one of them"):
        from_diffusers(_unet(num_class_embeds=4), SCHED.config, null_class=4)
    with pytest.raises(InputError, match="continuous class inputs"):
        from_diffusers(_unet(class_embed_type="identity"), SCHED.config)
    with pytest.raises(InputError, match="unconditional: drop null_class"):
        from_diffusers(_unet(), SCHED.config, null_class=0)
    with pytest.raises(ValueError, match="not class-conditional"):
        from_diffusers(_unet(), SCHED.config).sample(2, labels=0)


class FlowMatchingStyle:
    """A velocity model called as flow_matching's examples call theirs, model(x, t, extra=...),
    whose unconditional branch is extra={} (its UNet then uses its own null label)."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, extra):
        self.calls.append((x.shape[0], dict(extra)))
        label = extra.get("label", torch.full((x.shape[0],), 7))
        return -x * (1.0 + label[:, None].double()) + t[:, None]


def test_flow_matching_style_callable_is_guided_as_cfg_scaled_model():
    fn = FlowMatchingStyle()
    model = from_callable(fn, "velocity", "linear", shape=(2,), num_classes=K)
    y = torch.tensor([0, 2, 1])
    x = torch.randn(3, 2, generator=_gen(), dtype=torch.float64)
    t = torch.full((3,), 0.3, dtype=torch.float64)
    w = 1.5  # flow_matching's cfg_scale: (1 + w) cond - w uncond
    want = (1 + w) * fn(x, t, extra={"label": y}) - w * fn(x, t, extra={})
    fn.calls.clear()
    got = guided_field(model.labelled_field, y, K, Guidance.from_w(w)).fn(x, t)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert [set(c[1]) for c in fn.calls] == [{"label"}, set()]  # labelled rows, then extra={}
    assert torch.equal(model.field().fn(x, t), fn(x, t, extra={}))
    # with an explicit null label, one call of 2n rows
    fn.calls.clear()
    one = from_callable(fn, "velocity", "linear", shape=(2,), num_classes=K, null_label=7)
    got = guided_field(one.labelled_field, y, K, Guidance.from_w(w)).fn(x, t)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert len(fn.calls) == 1 and fn.calls[0][0] == 6
    res = model.sample(5, nfe=4, labels=1, guidance=2.0, generator=_gen())
    assert res.x.shape == (5, 2) and torch.isfinite(res.x).all()
