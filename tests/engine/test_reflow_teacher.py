"""``reflow.teacher``: a linear-path flow trained on a diffusion run's probability-flow pairs
(rectified flow from a diffusion teacher). The pairs are the teacher's own (noise, ODE(noise)),
carried into the student's coordinates; the student is a reflow model (no score)."""

import pytest
import torch

from wasserflow.engine import build, load_run, make_config, train_run
from wasserflow.engine.config import RunConfig
from wasserflow.engine.runs import _teacher_pairs
from wasserflow.errors import InputError

SMALL = {"steps": 15, "width": 16, "depth": 2, "warmup": 2}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    d = tmp_path_factory.mktemp("teacher")
    cfg = make_config("ddpm", "moons", overrides={"prediction": "velocity"}, **SMALL)
    train_run(cfg, d)
    return str(d)


def _student(teacher, data="moons", **kw):
    ov = {"reflow.teacher": teacher, "reflow.pairs": 64, "reflow.nfe": 4, **kw}
    return make_config("icfm", data, overrides=ov, scale="standard", **SMALL)


def test_config_round_trip_and_refusals(teacher):
    cfg = _student(teacher)
    assert cfg.reflow.teacher == teacher and cfg.reflow.teacher_sampler == "dpm_solver"
    assert RunConfig.from_dict(cfg.to_dict()).reflow == cfg.reflow
    with pytest.raises(ValueError, match="independent coupling"):
        make_config("otcfm", "moons", overrides={"reflow.teacher": teacher})
    with pytest.raises(ValueError, match="reflow.teacher must be a run folder"):
        make_config("icfm", "moons", overrides={"reflow.teacher": ""})


def test_pairs_are_the_teachers_ode_in_the_students_coordinates(teacher, tmp_path):
    cfg = _student(teacher)
    train_run(cfg, tmp_path / "s")  # fixes the student's standardizer from the data
    cfg = load_run(tmp_path / "s").config
    assert cfg.data.standardizer is not None
    pairs = _teacher_pairs(cfg, seed=7)
    ref = load_run(teacher).sample(
        64, sampler="dpm_solver", nfe=4, generator=torch.Generator().manual_seed(7)
    )
    assert pairs.shape == (64, 2, 2)
    assert torch.allclose(pairs[:, 0], ref.start.float(), atol=1e-6)
    x1 = build.scaler(cfg).transform(ref.x)
    assert torch.allclose(pairs[:, 1], x1.float(), atol=1e-5)
    assert not torch.allclose(x1, ref.x)  # the scaling was applied
    run = load_run(tmp_path / "s")
    assert not run.context().score_valid  # a reflow model: score samplers are refused
    assert not run.supports("dpm_solver") and run.supports("euler")


def test_teacher_on_other_data_or_a_stochastic_sampler_is_refused(teacher, tmp_path):
    with pytest.raises(InputError, match="train the student on the teacher's data"):
        train_run(_student(teacher, data="gmm2d"), tmp_path / "a")
    with pytest.raises(InputError, match="stochastic"):
        train_run(_student(teacher, **{"reflow.teacher_sampler": "ddpm"}), tmp_path / "b")
