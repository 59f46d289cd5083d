"""A diffusers UNet2DModel saved with save_pretrained, wrapped by from_diffusers and sampled by
wasserflow's samplers, against diffusers' own DDIMPipeline and scheduler loops from the same
noise.

The network is the same object on both sides (cast to float64, so that the comparison shows
the samplers and the clock conversion, not float32 round-off; one float32 run checks the
pipeline as users run it). The random epsilon models generate values in the hundreds
(x1 = (x - sigma eps) / alpha with an untrained eps), so agreement is measured relative to the
largest value: |ours - theirs| <= rel max(1, |theirs|), rel = 1e-10 for DDIM (its scheduler's
tables cast to float64) and 1e-5 for the multistep and Karras schedulers, whose step computes
in float32 whatever the model's dtype (measured: 1e-7 relative).
"""

import pytest
import torch
from _tiny import SHAPE, diffusers_unet, image_data, save_model_folder
from diffusers import (
    DDIMPipeline,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)

from wasserflow.errors import InputError
from wasserflow.interop import ExternalModel, from_diffusers, scheduler_grid
from wasserflow.metrics import evaluate_run

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
N = 3
CASES = [  # (prediction type, betas, T): every parametrisation, beta schedule, another T
    ("epsilon", {"beta_schedule": "linear"}, 1000),
    ("v_prediction", {"beta_schedule": "squaredcos_cap_v2"}, 1000),
    ("sample", {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}, 500),
]


def close(ours, theirs, rel=1e-5):
    err = float((ours - theirs.detach().to(ours.dtype)).abs().max())
    scale = max(1.0, float(theirs.detach().abs().max()))
    return err <= rel * scale, (err, scale)


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def folder(request, tmp_path_factory):
    pred, betas, T = request.param
    sched = DDIMScheduler(
        num_train_timesteps=T,
        prediction_type=pred,
        clip_sample=False,
        timestep_spacing="trailing",
        set_alpha_to_one=True,
        **betas,
    )
    return save_model_folder(tmp_path_factory.mktemp(pred), sched)


def _pipeline64(model, folder):
    """A DDIMPipeline of the model whose scheduler's tables are float64 (its step's
    coefficients are 0-dim tensors of the table's dtype: in float32, sqrt(sigma'^2 - c^2) at
    eta = 1 loses ~1e-5 to cancellation). The pipeline rebuilds its scheduler from the config,
    so the cast comes after."""
    pipe = DDIMPipeline(unet=model.model, scheduler=DDIMScheduler.from_pretrained(folder))
    d = pipe.scheduler
    for name in ("alphas_cumprod", "betas", "alphas", "final_alpha_cumprod"):
        setattr(d, name, getattr(d, name).double())
    return pipe


def _recording(pipe):
    """The pipeline's unclamped samples: the last prev_sample its scheduler returned."""
    seen = []
    step = pipe.scheduler.step

    def wrapped(*args, **kwargs):
        out = step(*args, **kwargs)
        seen.append(out.prev_sample)
        return out

    pipe.scheduler.step = wrapped
    pipe.set_progress_bar_config(disable=True)
    return seen


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_equals_ddim_pipeline(folder, eta):
    model = from_diffusers(folder, dtype=torch.float64)
    assert isinstance(model, ExternalModel) and model.shape == SHAPE
    pipe = _pipeline64(model, folder)
    seen = _recording(pipe)
    for k in (1, 7):
        seen.clear()
        images = pipe(
            batch_size=N, generator=_gen(), num_inference_steps=k, eta=eta, output_type="pt"
        ).images
        ours = model.sample(N, sampler="ddim", nfe=k, generator=_gen(), options={"eta": eta})
        assert ours.nfe == k
        ok, info = close(ours.x, seen[-1], rel=1e-10)  # both in float64: round-off
        assert ok, (k, eta, info)
        assert torch.allclose((ours.x / 2 + 0.5).clamp(0, 1), images.double(), atol=1e-5)


def test_the_comparison_can_fail(folder):
    # negative controls: another eta, another step count, the diffusers clock shifted by one
    model = from_diffusers(folder, dtype=torch.float64)
    pipe = _pipeline64(model, folder)
    seen = _recording(pipe)
    pipe(batch_size=N, generator=_gen(), num_inference_steps=7, output_type="pt")
    ref = seen[-1]
    assert close(model.sample(N, nfe=7, generator=_gen()).x, ref)[0]
    for other in (
        model.sample(N, nfe=7, generator=_gen(), options={"eta": 0.3}).x,
        model.sample(N, nfe=6, generator=_gen()).x,
    ):
        assert not close(other, ref, rel=1e-3)[0]
    fn = model.field().fn
    clock = fn.clock
    k = torch.tensor([clock.num_train_timesteps // 2] * 2)
    t = clock.time_of_step(k)
    x = torch.randn(2, *SHAPE, generator=_gen(), dtype=torch.float64)
    assert torch.allclose(fn(x, t), model.model(x, k).sample, atol=1e-12)
    assert not torch.allclose(fn(x, t), model.model(x, k + 1).sample, atol=1e-6)


def test_float32_pipeline_from_its_own_noise(folder):
    # the model as users run it: float32 network and pipeline; wasserflow starts from the
    # pipeline's float32 noise (x0=) and integrates in float64
    model = from_diffusers(folder)
    pipe = DDIMPipeline(unet=model.model, scheduler=DDIMScheduler.from_pretrained(folder))
    seen = _recording(pipe)
    pipe(batch_size=N, generator=_gen(), num_inference_steps=5, output_type="pt")
    x0 = torch.randn((N, *SHAPE), generator=_gen(), dtype=torch.float32).double()
    ours = model.sample(N, nfe=5, x0=x0)
    ok, info = close(ours.x, seen[-1], rel=1e-5)
    assert ok, info


def _loop(scheduler, unet, x0, karras=False):
    """diffusers' sampling loop; Karras-type schedulers work on y = x / alpha (EDM's)."""
    x = (
        x0 * scheduler.init_noise_sigma
        if not karras
        else x0 * (1 + scheduler.sigmas[0] ** 2) ** 0.5
    )
    for t in scheduler.timesteps:
        inp = scheduler.scale_model_input(x, t)
        x = scheduler.step(unet(inp, t).sample, t, x).prev_sample
    return x


@pytest.mark.parametrize(
    "cls,config",
    [
        (DPMSolverMultistepScheduler, {"final_sigmas_type": "zero"}),
        (DPMSolverMultistepScheduler, {"final_sigmas_type": "sigma_min", "solver_order": 3}),
        (DPMSolverMultistepScheduler, {"timestep_spacing": "trailing"}),
        (UniPCMultistepScheduler, {}),
        (EulerDiscreteScheduler, {"use_karras_sigmas": True}),
        (HeunDiscreteScheduler, {"use_karras_sigmas": True}),
    ],
    ids=["dpm-zero", "dpm3-sigma_min", "dpm-trailing", "unipc", "euler-karras", "heun-karras"],
)
def test_scheduler_loops_equal_samplers_on_scheduler_grid(folder, cls, config):
    model = from_diffusers(folder, dtype=torch.float64)
    sched = cls.from_pretrained(folder, **config)
    karras = cls in (EulerDiscreteScheduler, HeunDiscreteScheduler)
    for k in (1, 8):
        sched.set_timesteps(k)
        g = scheduler_grid(sched, k)
        x0 = torch.randn((N, *SHAPE), generator=_gen(k), dtype=torch.float64)
        theirs = _loop(sched, model.model, x0, karras)
        ours = model.sample(N, sampler=g.sampler, grid=g.grid, options=g.options, x0=x0)
        ok, info = close(ours.x, theirs, rel=1e-5)
        assert ok, (k, info)


def test_pipeline_folder_learned_variance_and_float_timesteps(tmp_path):
    # a pipeline folder (unet/ + scheduler/) of a model with a learned variance: the field is
    # the epsilon half of its output
    unet = diffusers_unet(3, out_channels=2)
    sched = DDIMScheduler(clip_sample=False)
    DDIMPipeline(unet=unet, scheduler=sched).save_pretrained(tmp_path / "pipe")
    cfg = dict(sched.config) | {"variance_type": "learned_range"}
    model = from_diffusers(tmp_path / "pipe", scheduler_config=cfg)
    x = torch.randn(2, *SHAPE, generator=_gen(), dtype=torch.float64)
    t = torch.tensor([0.2503, 0.2503], dtype=torch.float64)
    k = model.field().fn.clock.timestep(t)
    assert float(k[0]) != round(float(k[0]))  # between two training steps
    ref = unet(x.float(), k.float()).sample[:, :1]
    assert torch.allclose(model.field().fn(x, t), ref.double(), atol=1e-6)
    with pytest.raises(InputError, match="maps 1 channels to 2"):
        from_diffusers(tmp_path / "pipe")  # without a learned variance


def test_evaluate_run_on_a_diffusers_model(folder, tmp_path):
    spec = image_data(tmp_path / "x.npy")
    model = from_diffusers(folder).with_data(spec)
    rows = evaluate_run(model, [1, 3], n=16)
    assert [r.nfe for r in rows] == [1, 3] and all(r.w2 > 0 for r in rows)
    assert model.budgets([1, 2]) == [1, 2] and model.supports("dpm_solver")
    with pytest.raises(InputError, match="no data to compare with"):
        evaluate_run(from_diffusers(folder), [1], n=4)


def test_refusals(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        from_diffusers(tmp_path / "missing")
    with pytest.raises(InputError, match="holds no diffusers model"):
        from_diffusers(tmp_path)
    diffusers_unet().save_pretrained(tmp_path / "m")
    with pytest.raises(InputError, match="no scheduler config found"):
        from_diffusers(tmp_path / "m")
    diffusers_unet().save_pretrained(tmp_path / "b", safe_serialization=False)
    with pytest.raises(InputError, match="pickle, which wasserflow does not load"):
        from_diffusers(tmp_path / "b", scheduler_config={})
    with pytest.raises(InputError, match="prediction_type 'flow'"):
        from_diffusers(tmp_path / "m", scheduler_config={"prediction_type": "flow"})
    with pytest.raises(InputError, match="shape"):
        from_diffusers(tmp_path / "m", scheduler_config={}, data="moons")
