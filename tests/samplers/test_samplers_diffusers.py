"""DDPM ancestral and DDIM steps against diffusers' DDPMScheduler / DDIMScheduler.

diffusers is run in float64 (its tables cast up) so that the comparison is to ~1e-10: in
float32 its sqrt(1 - abar) near the data loses ~1e-4 to cancellation.
"""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from wasserflow.paths import AffinePath, DDPMDiscreteSchedule, time_to_ddpm_index
from wasserflow.samplers import SPACINGS, Field, ddim, ddpm, diffusers_steps, diffusers_timesteps

T = 1000
DENSE = sorted(set(range(1, 13)) | {16, 49, 50, 51, 61, 99, 100, 101, 127, 333, 500, 999, 1000})
FULL_RUN = list(range(1, 9)) + [49, 50, 51, 61, 99, 100, 101, 333]


def eps_model(x, t):
    return 0.3 * x * torch.cos(3 * t)[:, None] + 0.2 * torch.sin(5 * t)[:, None]


def _to64(d):
    for name in ("alphas_cumprod", "betas", "alphas", "final_alpha_cumprod"):
        if hasattr(d, name):
            setattr(d, name, getattr(d, name).double())
    d.one = torch.tensor(1.0, dtype=torch.float64)
    return d


def _ddim(spacing, set_alpha_to_one, beta="linear"):
    return _to64(
        DDIMScheduler(
            T,
            1e-4,
            0.02,
            beta,
            clip_sample=False,
            timestep_spacing=spacing,
            set_alpha_to_one=set_alpha_to_one,
            prediction_type="epsilon",
        )
    )


def _ddpm(spacing, beta="linear"):
    return _to64(
        DDPMScheduler(
            T,
            1e-4,
            0.02,
            beta,
            prediction_type="epsilon",
            clip_sample=False,
            timestep_spacing=spacing,
        )
    )


def _field(d):
    return Field(
        eps_model, "epsilon", AffinePath(DDPMDiscreteSchedule.from_alphas_cumprod(d.alphas_cumprod))
    )


def _diffusers_loop(d, x, n, generator, **kw):
    d.set_timesteps(n)
    for k in d.timesteps[:n]:  # without diffusers' spurious trailing -1 (see grids.py)
        t = 1.0 - (k.double() + 1) / T
        x = d.step(eps_model(x, t.expand(x.shape[0])), k, x, generator=generator, **kw).prev_sample
    return x


def _x(n, seed):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_timesteps_equal_diffusers_for_every_step_count():
    for spacing in SPACINGS:
        dd, dp = _ddim(spacing, True), _ddpm(spacing)
        for n in range(1, T + 1):
            dd.set_timesteps(n)
            mine = diffusers_timesteps(n, T, spacing)
            assert torch.equal(mine, dd.timesteps), (spacing, n)
            dp.set_timesteps(n)
            assert torch.equal(mine, dp.timesteps), (spacing, n)
            for sched in ("ddim", "ddpm"):
                steps = diffusers_steps(n, scheduler=sched, spacing=spacing)
                assert torch.equal(time_to_ddpm_index(steps[:, 0]), mine[mine >= 0])
                assert steps.shape[0] == n


def test_diffusers_trailing_extra_timestep_is_dropped():
    # diffusers emits n + 1 trailing timesteps ending at -1 for n = 61 (a bug we do not copy)
    d = _ddim("trailing", True)
    d.set_timesteps(61)
    assert len(d.timesteps) == 62 and int(d.timesteps[-1]) == -1
    assert diffusers_steps(61, spacing="trailing").shape == (61, 2)


def _first_last_steps(counts):
    for spacing in SPACINGS:
        for sa1 in (True, False):
            d = _ddim(spacing, sa1)
            f = _field(d)
            for n in counts:
                d.set_timesteps(n)
                steps = diffusers_steps(n, spacing=spacing, set_alpha_to_one=sa1)
                for i in {0, n - 1}:
                    x = _x(3, n + i)
                    k = d.timesteps[i]
                    tk = 1.0 - (k.double() + 1) / T
                    ref = d.step(eps_model(x, tk.expand(3)), k, x).prev_sample
                    mine = ddim(f, x, steps[i : i + 1]).x
                    assert torch.allclose(mine, ref, rtol=0, atol=1e-12), (spacing, sa1, n, i)


def test_first_and_last_ddim_steps_dense_counts():
    _first_last_steps(DENSE + list(range(20, 1000, 45)))


@pytest.mark.slow
def test_first_and_last_ddim_steps_every_count():
    _first_last_steps(range(1, T + 1))


@pytest.mark.parametrize("spacing", SPACINGS)
def test_ddim_full_runs_equal_diffusers(spacing):
    for sa1 in (True, False):
        d = _ddim(spacing, sa1)
        f = _field(d)
        for n in FULL_RUN:
            for eta in (0.0, 0.5) if n < 60 else (0.5,):
                x0 = _x(4, n)
                ref = _diffusers_loop(d, x0, n, torch.Generator().manual_seed(1), eta=eta)
                steps = diffusers_steps(n, spacing=spacing, set_alpha_to_one=sa1)
                out = ddim(f, x0, steps, eta=eta, generator=torch.Generator().manual_seed(1))
                assert out.nfe == n
                assert torch.allclose(out.x, ref, rtol=0, atol=1e-10), (sa1, n, eta)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_ddpm_full_runs_equal_diffusers(spacing):
    d = _ddpm(spacing)
    f = _field(d)
    for n in FULL_RUN + [1000]:
        x0 = _x(4, n)
        ref = _diffusers_loop(d, x0, n, torch.Generator().manual_seed(1))
        out = ddpm(
            f,
            x0,
            diffusers_steps(n, scheduler="ddpm", spacing=spacing),
            generator=torch.Generator().manual_seed(1),
        )
        # diffusers adds sqrt(1e-20) z on a final step from k > 0 (its variance clamp)
        assert torch.allclose(out.x, ref, rtol=0, atol=1e-8), n


def test_cosine_table_runs_equal_diffusers():
    d = _ddpm("trailing", "squaredcos_cap_v2")
    out = ddpm(
        _field(d),
        _x(4, 0),
        diffusers_steps(20, scheduler="ddpm", spacing="trailing"),
        generator=torch.Generator().manual_seed(3),
    )
    ref = _diffusers_loop(d, _x(4, 0), 20, torch.Generator().manual_seed(3))
    assert torch.allclose(out.x, ref, atol=1e-8)


def test_off_by_one_and_final_alpha_cases():
    # leading, n = 1: the only timestep is k = 0; set_alpha_to_one=False makes the step go from
    # abar_0 to abar_0 (the identity), True goes to alpha = 1 (x1_hat)
    x = _x(3, 7)
    for sa1 in (True, False):
        d = _ddim("leading", sa1)
        ref = _diffusers_loop(d, x, 1, None)
        steps = diffusers_steps(1, spacing="leading", set_alpha_to_one=sa1)
        assert time_to_ddpm_index(steps[0, 0]) == 0
        out = ddim(_field(d), x, steps).x
        assert torch.allclose(out, ref, atol=1e-12)
        if not sa1:
            assert torch.allclose(out, x, atol=1e-12)
        else:
            t0 = torch.full((3,), 1 - 1 / T, dtype=torch.float64)
            x1 = _field(d).x1_and_epsilon(x, t0)[0]
            assert torch.allclose(out, x1, atol=1e-12)
    # trailing with T % n != 0: DDIM steps 666 -> 333 but the next timestep is 332, so the
    # steps do not chain; the explicit (t_from, t_to) grid reproduces that
    steps = diffusers_steps(3, spacing="trailing")
    ks = time_to_ddpm_index(steps[:, 0]).tolist()
    d = _ddim("trailing", True)
    d.set_timesteps(3)
    assert ks == d.timesteps.tolist()
    assert not torch.equal(steps[1, 1], steps[2, 0])
    # DDPM chains its timesteps and always ends at alpha = 1 (t = 1)
    p = diffusers_steps(3, scheduler="ddpm", spacing="trailing")
    assert torch.equal(p[:-1, 1], p[1:, 0]) and float(p[-1, 1]) == 1.0


def test_v_prediction_equals_diffusers():
    """Salimans & Ho's v: our target is diffusers' get_velocity, and DDIM driven by a
    v-prediction model equals DDIMScheduler(prediction_type="v_prediction")."""
    from wasserflow.paths import DDPMDiscreteSchedule as S
    from wasserflow.paths import to_v_prediction

    d = _to64(
        DDIMScheduler(
            T,
            1e-4,
            0.02,
            "linear",
            clip_sample=False,
            set_alpha_to_one=True,
            timestep_spacing="trailing",
            prediction_type="v_prediction",
        )
    )
    path = AffinePath(S.from_alphas_cumprod(d.alphas_cumprod))
    k = torch.tensor([0, 1, 10, 500, 998, 999])
    x1, eps = _x(6, 3), _x(6, 4)
    t = 1.0 - (k.double() + 1) / T
    ours = to_v_prediction(x1, eps, path.coefficients(t))
    assert torch.allclose(ours, d.get_velocity(x1, eps, k), rtol=0, atol=1e-12)

    def v_model(x, t):
        return 0.3 * x * torch.cos(3 * t)[:, None] - 0.2 * torch.sin(5 * t)[:, None]

    f = Field(v_model, "v_prediction", path)
    for n in (1, 2, 8, 50):
        x0 = _x(4, n)
        d.set_timesteps(n)
        ref = x0
        for k in d.timesteps[:n]:
            tk = 1.0 - (k.double() + 1) / T
            ref = d.step(v_model(ref, tk.expand(4)), k, ref).prev_sample
        out = ddim(f, x0, diffusers_steps(n, spacing="trailing", set_alpha_to_one=True))
        assert torch.allclose(out.x, ref, rtol=0, atol=1e-10), n
