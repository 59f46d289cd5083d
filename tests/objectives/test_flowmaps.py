"""The flow-map objectives (MeanFlow, shortcut models, flow-map distillation) against references
no one here wrote: the exact flow map of the linear path's ODE between N(0, I) and N(m, S)
(paths/oracle.py's GaussianFlowMap, itself checked against RK4 on the mixture oracle's field in
tests/paths/test_oracle_flow_maps.py), central finite differences for the JVP, scipy's
distributions for the times.

The exact average velocity satisfies the MeanFlow identity and the shortcut models'
self-consistency, so it is a fixed point of both targets (to round-off); trained on Gaussian
data for a few hundred steps, each objective's one-jump map approaches the exact one (the same
map, m + S^1/2 x, is the Brenier map), far closer than one Euler step of the exact velocity,
and distillation recovers its teacher's map (an oracle field through interop)."""

import pytest
import scipy.stats
import torch

from wasserflow.data import gmm2d
from wasserflow.engine import load_run, make_config, train_run
from wasserflow.engine.build import build_network
from wasserflow.engine.teachers import TEACHER_SOURCES, register_teacher_source
from wasserflow.errors import InputError
from wasserflow.interop import from_callable
from wasserflow.models import build_backbone
from wasserflow.objectives import (
    FlowMapNet,
    Shortcut,
    ShortcutObjective,
    meanflow_target,
    meanflow_times,
)
from wasserflow.objectives.flowmap_distill import jump_indices, student_start
from wasserflow.paths import AffinePath, GaussianFlowMap, LinearSchedule

M = torch.tensor([1.0, -0.5], dtype=torch.float64)  # gaussian2d: N(M, S)
S = torch.tensor([[1.5, 0.6], [0.6, 0.5]], dtype=torch.float64)
PATH = AffinePath(LinearSchedule())
EXACT = GaussianFlowMap(M, S, PATH)
X0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
ONE_JUMP = EXACT.flow_map(X0, 0.0, 1.0)
SCALE = float((ONE_JUMP - X0).pow(2).sum(1).mean())  # E|X(x0, 0, 1) - x0|^2


def _rel_error(x):
    return float((x - ONE_JUMP).pow(2).sum(1).mean()) / SCALE


def _points(seed=0, n=200):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = 0.8 * torch.rand(n, generator=g, dtype=torch.float64)
    s = t + (1 - t) * torch.rand(n, generator=g, dtype=torch.float64)
    return x, t, s


# ------------------------------------------------------------------ MeanFlow


def test_meanflow_times_are_the_papers_logit_normals_on_our_clock():
    n = 100_000
    t, s = meanflow_times(n, torch.Generator().manual_seed(0), torch.float64)
    assert (t <= s).all() and (t >= 0).all() and (s <= 1).all()
    jumps = s > t
    assert abs(float(jumps.double().mean()) - 0.25) < 4 * (0.25 * 0.75 / n) ** 0.5
    # the paper's t (1 - ours) is the larger of two logit-normals: CDF F^2; its r the smaller
    F = scipy.stats.norm(-0.4, 1.0).cdf

    def logit(p):
        return scipy.special.logit(p)

    assert scipy.stats.kstest((1 - t).numpy(), lambda p: F(logit(p)) ** 2).pvalue > 1e-3
    r = (1 - s)[jumps].numpy()
    assert scipy.stats.kstest(r, lambda p: 1 - (1 - F(logit(p))) ** 2).pvalue > 1e-3
    # uniform times: the larger of two uniforms, CDF p^2
    t, s = meanflow_times(n, torch.Generator().manual_seed(1), torch.float64, kind="uniform")
    assert scipy.stats.kstest((1 - t).numpy(), lambda p: p**2).pvalue > 1e-3


def test_the_exact_average_velocity_is_a_fixed_point_of_the_meanflow_target():
    x, t, s = _points()
    u, target = meanflow_target(EXACT.average_velocity, x, t, s, EXACT.velocity(x, t))
    torch.testing.assert_close(u, EXACT.average_velocity(x, t, s))
    torch.testing.assert_close(target, u, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["mlp", "unet"])
def test_the_jvp_target_equals_finite_differences(name):
    shape, opts = {"mlp": ([2], {"width": 32}), "unet": ([1, 8, 8], {"channels": 8, "groups": 4})}[
        name
    ]
    backbone = build_backbone(name, shape, opts, seed=0, conditions=("scalar",)).double()
    with torch.no_grad():  # wake the zero-initialised output layers of the unet
        for p in backbone.parameters():
            p += 0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1),
                                    dtype=p.dtype)  # fmt: skip
    net = FlowMapNet(backbone, time_factor=1e-3)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, *shape, generator=g, dtype=torch.float64)
    v = torch.randn(6, *shape, generator=g, dtype=torch.float64)
    t = 0.5 * torch.rand(6, generator=g, dtype=torch.float64)
    s = t + 0.4
    u, target = meanflow_target(net, x, t, s, v)  # the unet's attention: math kernel inside
    assert u.requires_grad and not target.requires_grad
    eps = 1e-6
    with torch.no_grad():
        dudt = (net(x + eps * v, t + eps, s) - net(x - eps * v, t - eps, s)) / (2 * eps)
        torch.testing.assert_close(u, net(x, t, s))
    want = v + (s - t).reshape(-1, *[1] * len(shape)) * dudt
    torch.testing.assert_close(target, want, rtol=1e-7, atol=1e-8)
    assert (target - v).abs().max() > 1e-3  # the JVP term is not negligible


def _train(method, steps, tmp_path, **overrides):
    cfg = make_config(
        method, "gaussian2d", steps=steps, batch_size=256, lr=3e-3, width=64, depth=2,
        warmup=20, ema_decay=0.99, overrides=overrides,
    )  # fmt: skip
    train_run(cfg, tmp_path / method)
    return load_run(tmp_path / method)


def _one_jump(run, k=1):
    return run.sample(2000, nfe=k, x0=X0, data_space=False).x


EULER_EXACT = _rel_error(X0 + EXACT.velocity(X0, 0.0))  # one Euler step of the exact field: 1.2


def test_meanflow_learns_the_one_step_map(tmp_path):
    """The paper's logit-normal times (the objective's default; 0.02-0.04 on seeds 0-2 at 500
    steps, where uniform times, the meanflow recipe's, give 0.22-0.31 here)."""
    run = _train("meanflow", 500, tmp_path, **{"objective.times": "logit_normal"})
    err = _rel_error(_one_jump(run))
    assert err < 0.1 < 0.1 * EULER_EXACT, err


# ------------------------------------------------------------------ shortcut models


def test_the_exact_map_is_self_consistent_under_the_shortcut_target():
    """Run the shortcut loss with the exact average velocity as the network: its
    self-consistency rows lose nothing but round-off; its flow-matching rows keep the
    conditional variance (their target is the conditional velocity)."""

    class Exact(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))  # the dtype

        def forward(self, x, t, s=None):
            return EXACT.average_velocity(x, t, t if s is None else s)

    g = torch.Generator().manual_seed(0)
    data = M + torch.randn(400, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(S).T
    # M = 1024: 9 of the 10 levels compose two exact jumps (round-off); the smallest takes two
    # Euler steps of 1 / 1024 on v, whose average velocity is off by O(d): |.|^2 ~ 1e-6
    per = Shortcut(PATH, options=ShortcutObjective(0.5, base_steps=1024))(Exact(), data, g)
    assert float((per[200:] < 1e-20).double().mean()) > 0.8
    assert per[200:].max() < 1e-4 * per[:200].mean()
    # M = 2: the one level is two Euler steps of 1/2 on v, which the exact map is not
    coarse = Shortcut(PATH, options=ShortcutObjective(0.5, base_steps=2))
    assert coarse(Exact(), data, torch.Generator().manual_seed(0))[200:].max() > 1e-3


def test_shortcut_learns_the_one_step_map(tmp_path):
    run = _train("shortcut", 400, tmp_path)
    assert _rel_error(_one_jump(run)) < 0.1  # measured 0.014 at 600 steps
    assert _rel_error(_one_jump(run, 4)) < 0.1


# ------------------------------------------------------------------ distillation


def test_jump_indices_cover_every_power_of_two():
    i, j = jump_indices(20_000, 8, torch.Generator().manual_seed(0))
    assert (i >= 0).all() and (j <= 8).all()
    steps = (j - i).tolist()
    assert set(steps) == {1, 2, 4, 8}
    assert all(abs(steps.count(k) / 20_000 - 0.25) < 0.02 for k in (1, 2, 4, 8))


@pytest.fixture
def gaussian_teacher():
    register_teacher_source(
        "test-gaussian",
        lambda where, spec, shape, device: from_callable(
            EXACT.velocity, "velocity", "linear", shape=shape
        ),
    )
    yield "test-gaussian:exact"
    TEACHER_SOURCES.pop("test-gaussian")


def test_distillation_recovers_the_teachers_map(tmp_path, gaussian_teacher):
    run = _train(
        "flowmap-distill", 400, tmp_path, **{
            "objective.teacher": gaussian_teacher, "objective.teacher_sampler": "rk4",
            "objective.teacher_nfe": 64, "objective.pairs": 2048, "objective.init": "random",
        },
    )  # fmt: skip
    assert _rel_error(_one_jump(run)) < 0.03  # measured 0.008
    assert _rel_error(_one_jump(run, 2)) < 0.06  # measured 0.021
    half = EXACT.flow_map(X0, 0.0, 0.5)  # a jump from the middle, t = 1/2 -> 1
    with torch.no_grad():
        got = half + 0.5 * run.model(half.float(), torch.full((2000,), 0.5),
                                     torch.ones(2000)).double()  # fmt: skip
    assert _rel_error(got) < 0.06


def _distil(tmp_path, name, teacher, steps, **overrides):
    cfg = make_config(
        "flowmap-distill", "gaussian2d", steps=steps, batch_size=256, lr=3e-3, width=64,
        depth=2, warmup=20, ema_decay=0.99, seed=1,
        overrides={"objective.teacher": str(teacher), "objective.pairs": 2048, **overrides},
    )  # fmt: skip
    train_run(cfg, tmp_path / name)
    return cfg, load_run(tmp_path / name)


def test_a_student_starts_as_its_teacher_and_learns_faster(tmp_path):
    """init teacher (the default): the student's backbone takes the teacher's weights and its
    step embedding starts at zero, so u(x, t, s) = v(x, t) for every s before any step, and the
    zeroed layer still gets a gradient. The teacher is I-CFM's curved flow: it starts at one
    Euler step of the teacher, 0.67 of E|X - x|^2 from the teacher's one-jump map (rk4 at 64
    NFE: what it learns); at 60 steps it is 0.0008 from it, a student of random weights
    0.066."""
    cfg = make_config(
        "icfm", "gaussian2d", steps=300, batch_size=256, lr=3e-3, width=64, depth=2,
        warmup=20, ema_decay=0.99, time_embedding="sinusoidal",
    )  # fmt: skip
    train_run(cfg, tmp_path / "icfm")
    teacher_run = load_run(tmp_path / "icfm")
    teacher = teacher_run.velocity_network()
    cfg, _ = _distil(tmp_path, "warm", tmp_path / "icfm", 1)
    student = build_network(cfg, seed=0)
    student_start(teacher_run, cfg.objective)(student)
    x, t, s = (v.float() for v in _points())
    with torch.no_grad():
        v = teacher(x, t)
        for end in (t, s, torch.ones_like(t)):
            torch.testing.assert_close(student(x, t, end), v, rtol=0, atol=1e-6)
    student(x, t, s).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())

    x0 = X0[:1000]
    target = teacher_run.sample(1000, sampler="rk4", nfe=64, x0=x0, data_space=False).x
    scale = float((target - x0).pow(2).sum(1).mean())
    errors = {}
    for init in ("teacher", "random"):
        _, run = _distil(tmp_path, init, tmp_path / "icfm", 60, **{"objective.init": init})
        x1 = run.sample(1000, nfe=1, x0=x0, data_space=False).x
        errors[init] = float((x1 - target).pow(2).sum(1).mean()) / scale
    assert errors["teacher"] < 0.1 * errors["random"], errors


def test_a_student_refuses_a_teacher_it_cannot_start_from(tmp_path, gaussian_teacher):
    with pytest.raises(InputError, match="no velocity network .* set objective.init random"):
        _distil(tmp_path, "oracle", gaussian_teacher, 5)
    cfg = make_config("otcfm", "gaussian2d", steps=5, width=32, depth=2,
                      time_embedding="sinusoidal")  # fmt: skip
    train_run(cfg, tmp_path / "wide")
    with pytest.raises(InputError, match="not the student's backbone .* objective.init random"):
        _distil(tmp_path, "narrow", tmp_path / "wide", 5)
    _distil(tmp_path, "narrow-random", tmp_path / "wide", 5, **{"objective.init": "random"})


# ------------------------------------------------------------------ class-conditional flow maps


def test_a_conditional_distillation_learns_each_classs_guided_map(tmp_path):
    """A class-conditional OT-CFM teacher on gmm2d, distilled with its guidance s = 2 baked in:
    the student's one jump with label c lands where the teacher's guided ODE (rk4, 64 NFE)
    takes the same noise, for each class, and its null class where the unguided unconditional
    teacher does (its label-dropped trajectories). Measured at 300 steps, in units of
    E|X - x|^2: 2e-5 to 5e-5 per class and 0.0016 for the null class, where one Euler step of
    the guided teacher is 0.16-1.6 and the unguided teacher's map lies 0.02-0.09 away (so the
    guidance the student learned is resolved)."""
    common = dict(batch_size=256, lr=3e-3, width=64, depth=2, warmup=20, ema_decay=0.99)
    cfg = make_config("otcfm", "gmm2d", steps=400, overrides={"condition": {}}, **common)
    train_run(cfg, tmp_path / "teacher")
    teacher = load_run(tmp_path / "teacher")
    over = {"condition": {}, "objective.teacher": str(tmp_path / "teacher"),
            "objective.teacher_guidance": 2.0, "objective.pairs": 4096,
            "objective.teacher_sampler": "rk4", "objective.teacher_nfe": 64,
            "objective.frames": 1}  # fmt: skip
    train_run(make_config("flowmap-distill", "gmm2d", steps=300, overrides=over, **common),
              tmp_path / "student")  # fmt: skip
    student = load_run(tmp_path / "student")
    x0 = X0[:600]

    def sample(run, c, sampler, nfe, guidance):
        return run.sample(600, sampler=sampler, nfe=nfe, x0=x0, labels=c, guidance=guidance,
                          data_space=False).x  # fmt: skip

    for c, s in [(0, 2.0), (1, 2.0), (2, 2.0), (3, None)]:  # 3: the null class
        target = sample(teacher, c, "rk4", 64, s)
        scale = float((target - x0).pow(2).sum(1).mean())
        err, euler, unguided = (
            float((x - target).pow(2).sum(1).mean()) / scale
            for x in (
                sample(student, c, None, 1, None),
                sample(teacher, c, "euler", 1, s),
                sample(teacher, c, "rk4", 64, None),  # the guidance the student learned
            )
        )
        assert err < 0.01 < 0.1 < euler, (c, err, euler)
        assert c == 3 or unguided > 100 * err, (c, unguided, err)


def test_a_conditional_meanflow_learns_each_classs_map(tmp_path):
    """gmm2d's class c is N(m_c, S_c): its exact one-jump map is GaussianFlowMap(m_c, S_c)'s
    (closed form), one per class from the same noise. One conditional MeanFlow (labels dropped
    to the null class a tenth of the time) learns all three: 0.024-0.034 of E|X - x|^2 each at
    500 steps, where one Euler step of an exact field is about 1."""
    mix = gmm2d()
    cfg = make_config(
        "meanflow", "gmm2d", steps=500, batch_size=256, lr=3e-3, width=64, depth=2,
        warmup=20, ema_decay=0.99,
        overrides={"condition": {}, "objective.times": "logit_normal"},
    )  # fmt: skip
    train_run(cfg, tmp_path / "c")
    run = load_run(tmp_path / "c")
    x0 = X0[:600]
    for c in range(3):
        exact = GaussianFlowMap(mix.means[c], mix.covs[c], PATH).flow_map(x0, 0.0, 1.0)
        x = run.sample(600, nfe=1, x0=x0, labels=c, data_space=False).x
        err = float((x - exact).pow(2).sum(1).mean() / (exact - x0).pow(2).sum(1).mean())
        assert err < 0.1, (c, err)


def test_a_flow_maps_guidance_is_the_unconditional_map_at_zero_and_counts_its_passes(tmp_path):
    """Guidance of a flow map acts on its average velocity: at scale 0 the jumps are the
    unconditional model's (labels dropped to the null class), at scale 1 the conditional
    model's; a doubled batch and two passes give the same jumps; a guided jump costs one
    pass of 2n rows batched, two of n rows unbatched."""
    from wasserflow.samplers import Guidance

    cfg = make_config("shortcut", "gmm2d", steps=20, batch_size=64, width=16, depth=2,
                      overrides={"condition": {}})  # fmt: skip
    train_run(cfg, tmp_path / "s")
    run = load_run(tmp_path / "s")
    x0, labels = X0[:40], torch.arange(3).repeat(14)[:40]

    def jumps(k, **kw):
        return run.sample(40, nfe=k, x0=x0, labels=labels, data_space=False, **kw)

    free = run.sample(40, nfe=2, x0=x0, data_space=False).x  # no labels: the null class
    torch.testing.assert_close(jumps(2, guidance=0.0).x, free)
    cond = jumps(2)
    assert not torch.allclose(cond.x, free)
    batched = jumps(2, guidance=Guidance(2.5))
    single = jumps(2, guidance=Guidance(2.5, batched=False))
    torch.testing.assert_close(batched.x, single.x)
    assert (cond.passes, cond.rows) == (2, 80)
    assert (batched.passes, batched.rows) == (2, 160) and (single.passes, single.rows) == (4, 160)
    with pytest.raises(ValueError, match="average velocity: drop guidance space"):
        jumps(2, guidance=Guidance(2.0, space="epsilon"))
