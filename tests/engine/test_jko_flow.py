"""The JKO flow as a generative method: Gaussian JKO closed form, exact likelihood, quality,
resume, and the run interface shared with the other methods."""

import json
import math

import pytest
import torch

from wasserflow.data import moons
from wasserflow.engine import load_run, make_config, train_run
from wasserflow.geometry import Gaussian, exact_ot, gaussian_jko, standard_gaussian_potential
from wasserflow.metrics import evaluate_run
from wasserflow.models.jko_flow import JKOFlow, jko_step_sizes
from wasserflow.objectives.jko_flow import fit_jko_flow

SMALL = {"blocks": 4, "units": 8, "particles": 600, "max_iter": 30}


def _cfg(data="moons", **jko):
    return make_config("jko-flow", data, method_overrides={"jko": {**SMALL, **jko}})


class _MemoryJob:
    """A trainer's job (wasserflow.objectives.TrainJob) on fixed particles, kept in memory."""

    seed = 0
    checkpoint_path = "memory"

    def __init__(self, x):
        self.x, self.saved = x, None

    def data(self, n, generator):
        return self.x[:n]

    def train_network(self):
        raise AssertionError("the JKO flow trains no network")

    def load_checkpoint(self):
        return None

    def save_checkpoint(self, tensors, metadata):
        self.saved = tensors

    def restart(self, step):
        pass

    def log(self, step, record):
        pass


def test_step_sizes_are_geometric_and_sum_to_tau():
    h = jko_step_sizes(5, 3.0, 1.5)
    assert math.isclose(sum(h), 3.0, rel_tol=1e-12)
    assert all(math.isclose(b / a, 1.5) for a, b in zip(h, h[1:]))
    assert jko_step_sizes(4, 2.0, 1.0) == (0.5,) * 4
    with pytest.raises(ValueError, match="blocks"):
        jko_step_sizes(0, 1.0)


def test_affine_blocks_on_gaussian_data_follow_the_closed_form_jko(tmp_path):
    # Gaussian data, affine blocks, equal steps: each block is the exact JKO step of
    # KL(. || N(0, I)) from the particles' Gaussian, so the iterates are gaussian_jko's
    L = torch.tensor([[2.0, 0.0], [1.0, 0.5]], dtype=torch.float64)
    x0 = torch.randn(
        4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    ) @ L.T + torch.tensor([3.0, -2.0])
    cfg = make_config(
        "jko-flow",
        "gaussian2d",
        method_overrides={
            "jko": {"blocks": 5, "tau": 1.5, "ratio": 1.0, "units": 0, "max_iter": 200}
        },
    )
    job = _MemoryJob(x0)
    fit_jko_flow(cfg.objective, job)
    flow = JKOFlow.from_tensors(job.saved)
    exact = gaussian_jko(
        Gaussian(x0.mean(0), torch.cov(x0.T, correction=0)), standard_gaussian_potential(2), 0.3, 5
    )
    x = x0
    for T, state in zip(flow.maps, exact.states[1:]):
        x = T(x)
        torch.testing.assert_close(x.mean(0), state.mean, rtol=0, atol=1e-5)
        torch.testing.assert_close(torch.cov(x.T, correction=0), state.cov, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def moons_flow(tmp_path_factory):
    out = tmp_path_factory.mktemp("jko") / "run"
    train_run(_cfg(), out)
    return out


def test_free_energy_never_increases_and_every_block_is_recorded(moons_flow):
    recs = [json.loads(line) for line in (moons_flow / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    F = [r["free_energy"] for r in recs]
    assert all(b <= a + 1e-12 for a, b in zip(F, F[1:]))
    assert all(r["loss"] <= r["objective_identity"] for r in recs)


def test_likelihood_integrates_to_one(moons_flow):
    run = load_run(moons_flow)
    u = torch.linspace(-12, 14, 401, dtype=torch.float64)
    X, Y = torch.meshgrid(u, u, indexing="ij")
    p = run.log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).exp()
    mass = float(p.sum()) * float(u[1] - u[0]) ** 2
    assert abs(mass - 1) < 1e-2


def test_samples_beat_the_reference_noise_on_moons(moons_flow):
    run = load_run(moons_flow)
    out = run.sample(1000, generator=torch.Generator().manual_seed(1))
    fresh = moons(1000, torch.Generator().manual_seed(2), dtype=torch.float64)
    assert exact_ot(out.x, fresh).w2 < 0.6 * exact_ot(out.start, fresh).w2
    assert out.nfe >= run.blocks and out.sampler == "jko"


def test_evaluates_like_every_other_method(moons_flow):
    run = load_run(moons_flow)
    (row,) = evaluate_run(run, [None], n=300)
    assert row.sampler == "jko" and row.geodesic_gap is not None and row.geodesic_gap.lower >= -1e-9
    with pytest.raises(ValueError, match="4 blocks"):
        run.sample(10, nfe=8)
    with pytest.raises(ValueError, match="inverting its blocks"):
        run.sample(10, sampler="euler")


def test_resume_equals_uninterrupted(tmp_path, moons_flow):
    class Stop(Exception):
        pass

    def stop_after_two(stage, step, record):
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        train_run(_cfg(), tmp_path / "r", progress=stop_after_two)
    assert len(load_run(tmp_path / "r").flow.maps) == 2
    train_run(_cfg(), tmp_path / "r", resume=True)
    a, b = load_run(tmp_path / "r").flow.tensors(), load_run(moons_flow).flow.tensors()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="unknown jko-flow options"):
        make_config("jko-flow", "moons", method_overrides={"jko": {"blockz": 3}})
    with pytest.raises(ValueError, match="integer >= 0"):
        make_config("jko-flow", "moons", method_overrides={"jko": {"units": 0.5}})
