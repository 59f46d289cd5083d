"""Classifier-free guidance in the field (samplers/guidance.py), against references no one here
wrote: the guided field is the conditional one at s = 1 (bit for bit, every sampler); the
five parametrisations give the same guided step (float64); on Gaussian classes the guided
linear-path ODE matches its closed form (the flow of a linear field, integrated by
scipy.integrate.quad / solve_ivp), which is not the tilted Gaussian p_c^s p_u^(1 - s); the
interval guides only inside; passes and rows are counted; the singular point of a conversion
is where the choice of the guidance's parametrisation matters."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from wasserflow.geometry import GaussianMixture
from wasserflow.models import WithLabels, build_backbone
from wasserflow.paths import (
    PREDICTIONS,
    AffinePath,
    ClassOracle,
    LinearSchedule,
    VPSchedule,
    convert,
    gaussian_oracle,
)
from wasserflow.samplers import (
    SAMPLERS,
    Field,
    Guidance,
    PassCounter,
    get_sampler,
    guided_field,
    oracle_labelled,
    uniform_grid,
)

LINEAR = AffinePath(LinearSchedule())
MIX = GaussianMixture.create(
    [0.5, 0.3, 0.2],
    torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=torch.float64),
    torch.stack(
        [
            torch.diag(torch.tensor(v, dtype=torch.float64))
            for v in ([0.6, 0.1], [0.3, 0.05], [0.1, 0.4])
        ]
    ),  # fmt: skip
)


def _x0(n=12, d=2, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _net_labelled(prediction="velocity", path=LINEAR):
    """A class-conditional MLP (3 classes, float64) as a labelled field."""
    net = build_backbone("mlp", [2], {"width": 32, "depth": 2}, seed=0, conditions=("class:3",))
    net = net.double()
    with torch.no_grad():  # make the class embedding matter
        for p in net.cond.parameters():
            p.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(2))
    return lambda y: Field.from_network(WithLabels(net, y), path, prediction)


@pytest.mark.parametrize("sampler", ["euler", "heun", "rk4", "dopri5", "dpm_solver", "ddim"])
def test_scale_one_is_the_conditional_model_bit_for_bit(sampler):
    labelled = _net_labelled()
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    grid = uniform_grid(8, 0.0, 0.99)
    with torch.no_grad():
        plain = get_sampler(sampler)(labelled(y), _x0(), grid)
    for g in (Guidance(1.0), Guidance.from_w(0.0), Guidance(1.0, batched=False), None):
        counter = PassCounter()
        with torch.no_grad():
            res = get_sampler(sampler)(guided_field(labelled, y, 3, g, counter), _x0(), grid)
        assert torch.equal(res.x, plain.x)
        assert counter.passes == res.nfe == plain.nfe and counter.rows == 12 * res.nfe


def test_w_is_s_minus_one_and_matches_ho_and_salimans_formula():
    labelled = _net_labelled()
    y = torch.tensor([0, 2, 1])
    x, t = _x0(3), torch.full((3,), 0.4, dtype=torch.float64)
    cond = labelled(y).fn(x, t)
    uncond = labelled(torch.full((3,), 3)).fn(x, t)
    for w in (-1.0, -0.5, 0.5, 2.0):
        g = Guidance.from_w(w)
        assert g.scale == 1.0 + w and g.w == w
        out = guided_field(labelled, y, 3, g).fn(x, t)
        torch.testing.assert_close(out, (1 + w) * cond - w * uncond, rtol=1e-12, atol=1e-12)
    # s = 0 is the unconditional model
    torch.testing.assert_close(guided_field(labelled, y, 3, 0.0).fn(x, t), uncond)


def test_batched_and_unbatched_agree_and_count_their_passes():
    labelled = _net_labelled()
    y = torch.tensor([0, 1, 2, 2])
    grid = uniform_grid(5)
    out = {}
    for batched in (True, False):
        c = PassCounter()
        f = guided_field(labelled, y, 3, Guidance(2.5, batched=batched), c)
        res = get_sampler("heun")(f, _x0(4), grid)
        out[batched] = res.x
        assert c.passes == res.nfe * (1 if batched else 2)
        assert c.rows == 2 * 4 * res.nfe  # two rows per sample per evaluation, either way
    torch.testing.assert_close(out[True], out[False], rtol=1e-12, atol=1e-12)


def _oracle_in(prediction, path):
    """The exact labelled mixture field, given as a network of parametrisation ``prediction``."""
    o = ClassOracle(MIX, path)

    def labelled(y):
        def fn(x, t):
            return convert(x, o.velocity(x, t, y), path.coefficients(t), "velocity", prediction)

        return Field(fn, prediction, path)

    return labelled


@pytest.mark.parametrize("schedule", [LinearSchedule(), VPSchedule()], ids=["linear", "vp"])
def test_the_five_parametrisations_give_the_same_guided_step(schedule):
    """One model given as an epsilon, x1, score, velocity or v-prediction network: the guided
    velocity, an Euler step and a DDIM step agree in float64 whatever the parametrisation the
    network predicts and whatever the one the guidance is formed in."""
    path = AffinePath(schedule)
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    x = 1.5 * _x0(6)
    ref = None
    for t0 in (0.2, 0.55, 0.9):
        t = torch.full((6,), t0, dtype=torch.float64)
        ref = guided_field(_oracle_in("velocity", path), y, 3, 2.5).velocity(x, t)
        for pred in PREDICTIONS:
            for space in (None, *PREDICTIONS):
                f = guided_field(_oracle_in(pred, path), y, 3, Guidance(2.5, space=space))
                torch.testing.assert_close(f.velocity(x, t), ref, rtol=1e-9, atol=1e-9)
    grid = torch.tensor([0.3, 0.5], dtype=torch.float64)
    steps = {
        name: get_sampler(name)(guided_field(_oracle_in("velocity", path), y, 3, 2.5), x, grid).x
        for name in ("euler", "ddim")
    }
    for pred in PREDICTIONS:
        for name, want in steps.items():
            got = get_sampler(name)(guided_field(_oracle_in(pred, path), y, 3, 2.5), x, grid).x
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_where_the_parametrisation_matters_a_singular_conversion():
    """At t = 0 on the linear path alpha = 0: an epsilon network's x1 is undefined, so guiding it
    in x1 gives NaN/inf while guiding its own output (the default) stays finite."""
    labelled = _oracle_in("epsilon", LINEAR)
    y = torch.tensor([0, 1, 2])
    x, t = _x0(3), torch.zeros(3, dtype=torch.float64)
    assert torch.isfinite(guided_field(labelled, y, 3, 2.0).fn(x, t)).all()
    assert not torch.isfinite(
        guided_field(labelled, y, 3, Guidance(2.0, space="x1")).fn(x, t)
    ).all()


# ------------------------------------------------------------------ Gaussian closed form

MC, SC = np.array([1.5, -1.0]), np.array([0.5, 0.8])  # class: N(m_c, diag(s_c^2))
MU, SU = np.array([0.0, 0.5]), np.array([1.5, 1.1])  # unconditional: N(m_u, diag(s_u^2))


def _gauss_labelled():
    """Label 0: the class Gaussian's exact field; label 1 (null): the unconditional one's."""
    oc = gaussian_oracle(torch.tensor(MC), torch.diag(torch.tensor(SC**2)), LINEAR)
    ou = gaussian_oracle(torch.tensor(MU), torch.diag(torch.tensor(SU**2)), LINEAR)

    def labelled(y):
        def fn(x, t):
            out = torch.empty_like(x)
            for k, o in ((0, oc), (1, ou)):
                rows = y == k
                if rows.any():
                    out[rows] = o.velocity(x[rows], t[rows])
            return out

        return Field(fn, "velocity", LINEAR)

    return labelled


def _coeffs(t, m, s):
    """On the linear path from N(0, 1) to N(m, s^2): v = a(t) x + m (1 - t a(t)) with
    a = (t s^2 - (1 - t)) / sd(t)^2 = d/dt log sd(t), sd(t)^2 = t^2 s^2 + (1 - t)^2."""
    var = t * t * s * s + (1 - t) ** 2
    a = (t * s * s - (1 - t)) / var
    return a, m * (1 - t * a), math.sqrt(var)


def test_guided_gaussian_ode_matches_its_closed_form():
    """x' = s v_c + (1 - s) v_u is linear in x: x(1) = G(1) (x0 + int_0^1 b / G), G(t) =
    sd_c(t)^s sd_u(t)^(1 - s) (its integrating factor, exp int a), per coordinate. The
    endpoint law N(G(1) * 0 + shift, G(1)^2) has std s_c^s s_u^(1 - s), not the tilted
    Gaussian's (s / s_c^2 + (1 - s) / s_u^2)^(-1/2): CFG does not sample p_c^s p_u^(1 - s)."""
    s = 2.0
    x0 = _x0(64)
    y = torch.zeros(64, dtype=torch.int64)
    f = guided_field(_gauss_labelled(), y, 1, s)
    got = get_sampler("rk4")(f, x0, uniform_grid(400)).x
    for j in range(2):

        def G(t, j=j):
            return _coeffs(t, MC[j], SC[j])[2] ** s * _coeffs(t, MU[j], SU[j])[2] ** (1 - s)

        def b(t, j=j):
            return s * _coeffs(t, MC[j], SC[j])[1] + (1 - s) * _coeffs(t, MU[j], SU[j])[1]

        shift = quad(lambda t: b(t) / G(t), 0.0, 1.0, epsabs=1e-13, epsrel=1e-13)[0]
        want = G(1.0) * (x0[:, j].numpy() + shift)
        np.testing.assert_allclose(got[:, j].numpy(), want, rtol=0, atol=1e-8)
        cfg_std = SC[j] ** s * SU[j] ** (1 - s)
        tilted_std = (s / SC[j] ** 2 + (1 - s) / SU[j] ** 2) ** -0.5
        assert G(1.0) == pytest.approx(cfg_std, rel=1e-12)
        assert cfg_std < tilted_std - 0.05  # here CFG is narrower than the tilted law


def test_the_guidance_interval_guides_inside_only():
    labelled = _gauss_labelled()
    y = torch.zeros(5, dtype=torch.int64)
    x = _x0(5)
    g = Guidance(3.0, interval=(0.3, 0.7))
    for t0, inside in ((0.1, False), (0.3, True), (0.5, True), (0.7, True), (0.9, False)):
        t = torch.full((5,), t0, dtype=torch.float64)
        want = guided_field(labelled, y, 1, 3.0 if inside else 1.0).fn(x, t)
        assert torch.equal(guided_field(labelled, y, 1, g).fn(x, t), want)
    # the ODE against scipy's DOP853 on the piecewise-linear field (grid points on the edges)
    got = get_sampler("rk4")(guided_field(labelled, y, 1, g), x, uniform_grid(2000)).x
    for j in range(2):

        def rhs(t, z, j=j):
            s = 3.0 if 0.3 <= t <= 0.7 else 1.0
            ac, bc, _ = _coeffs(t, MC[j], SC[j])
            au, bu, _ = _coeffs(t, MU[j], SU[j])
            return (s * ac + (1 - s) * au) * z + s * bc + (1 - s) * bu

        sol = solve_ivp(rhs, (0.0, 1.0), x[:, j].numpy(), method="DOP853", rtol=1e-12,
                        atol=1e-12, vectorized=True)  # fmt: skip
        np.testing.assert_allclose(got[:, j].numpy(), sol.y[:, -1], rtol=0, atol=2e-3)


def test_mixture_oracle_guidance_ends_between_the_conditional_and_unconditional_laws():
    """s = 0 samples the mixture, s = 1 the class component (exact fields, fine RK4):
    the class-0 samples' mean moves from the mixture's to component 0's, then past it."""
    o = ClassOracle(MIX, LINEAR)
    y = torch.zeros(2000, dtype=torch.int64)
    x0 = _x0(2000, seed=3)
    means = {}
    for s in (0.0, 1.0, 3.0):
        f = guided_field(oracle_labelled(o), y, 3, s)
        means[s] = get_sampler("rk4")(f, x0, uniform_grid(200)).x.mean(0)
    torch.testing.assert_close(means[0.0], MIX.mean, atol=0.1, rtol=0)
    torch.testing.assert_close(means[1.0], MIX.means[0], atol=0.05, rtol=0)
    assert float(means[3.0][0]) < float(means[1.0][0]) - 0.1  # pushed away from the others


def test_bad_guidance_is_refused_in_one_line():
    with pytest.raises(ValueError, match="finite"):
        Guidance(float("nan"))
    with pytest.raises(ValueError, match="interval"):
        Guidance(2.0, interval=(0.8, 0.2))
    with pytest.raises(ValueError, match="space"):
        Guidance(2.0, space="noise")


def test_every_sampler_a_model_takes_runs_guided_without_a_switch():
    """A labelled exact mixture on the VP path, sampled by every registered sampler it supports:
    at s = 1 the guided samples are the class component's own (its oracle as a model of its
    own), and at s = 3 they are finite and differ."""
    from wasserflow.interop import from_callable

    path = AffinePath(VPSchedule())
    o = ClassOracle(MIX, path)

    def fn(x, t, extra):
        return o.velocity(x, t, extra.get("label", 3))

    model = from_callable(fn, "velocity", path, shape=(2,), num_classes=3, t_end=1 - 1e-3)
    comp = o.oracle(1)
    alone = from_callable(comp.velocity, "velocity", path, shape=(2,), t_end=1 - 1e-3)
    ran = []
    for name, spec in SAMPLERS.items():
        if not model.supports(name) or spec.needs_model_steps or name == "annealed_langevin":
            continue  # annealed_langevin samples a VE path's noise levels
        kw = {"sampler": name, "nfe": 8, "generator": torch.Generator().manual_seed(0)}
        one = model.sample(16, labels=1, guidance=1.0, **kw).x
        kw["generator"] = torch.Generator().manual_seed(0)
        ref = alone.sample(16, **kw).x
        torch.testing.assert_close(one, ref, rtol=1e-10, atol=1e-10)
        kw["generator"] = torch.Generator().manual_seed(0)
        three = model.sample(16, labels=1, guidance=3.0, **kw)
        assert torch.isfinite(three.x).all() and not torch.allclose(three.x, one)
        assert three.passes == three.nfe
        ran.append(name)
    assert {"euler", "dopri5", "ddim", "ddpm", "dpm_solver", "unipc", "edm_heun"} <= set(ran)
    assert {"euler_maruyama", "predictor_corrector", "ipndm", "dpm_solver_3m"} <= set(ran)
