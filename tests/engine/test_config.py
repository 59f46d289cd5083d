"""The typed run configuration: JSON round trip, unknown and contradictory keys refused, and
run folders written by wasserflow 0.1 (config version 1, commit ef9c19e) sampling the same
numbers as that version did (tests/engine/data/v1-runs: tiny runs of every method, with the
samples the old code drew from them, seed 5, the default sampler at 4 NFE and Euler at 3)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from wasserflow.engine import CONFIG_VERSION, METHODS, RunConfig, load_run, make_config, train_run

V1 = Path(__file__).parent / "data" / "v1-runs"


@pytest.mark.parametrize("method", METHODS)
def test_json_round_trip(method):
    cfg = make_config(method, "moons", steps=7, lr=2e-3, model_options={"width": 24})
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["version"] == CONFIG_VERSION
    assert RunConfig.from_dict(d) == cfg


def test_unknown_keys_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown key 'objective.predictoin'.*prediction"):
        make_config("icfm", "moons", overrides={"objective.predictoin": "x1"})
    with pytest.raises(ValueError, match=r"unknown key 'nope'.*ot_batch.*train"):
        make_config("icfm", "moons", overrides={"nope": 1})
    d = make_config("icfm", "moons").to_dict()
    d["train"]["stepz"] = 3
    with pytest.raises(ValueError, match=r"unknown keys of config.train \['stepz'\].*steps"):
        RunConfig.from_dict(d)
    with pytest.raises(ValueError, match=r"unknown option widht for model mlp.*width"):
        make_config("icfm", "moons", model_options={"widht": 3})


def test_contradictions_are_refused_when_the_config_is_made():
    # DDPM's T lives in the schedule; a time distribution with other levels contradicts it
    with pytest.raises(ValueError, match="contradicts the DDPM schedule"):
        make_config(
            "ddpm", "moons", overrides={"schedule": {"name": "ddpm", "num_train_timesteps": 500}}
        )
    with pytest.raises(ValueError, match="coupling.kind must be ot"):
        make_config("energy-matching", "moons", overrides={"coupling": "independent"})
    with pytest.raises(ValueError, match="needs coupling.sigma"):
        make_config("icfm", "moons", overrides={"coupling": "entropic"})
    with pytest.raises(ValueError, match="must be an integer"):
        make_config("icfm", "moons", overrides={"train.steps": 2.5})


@pytest.mark.parametrize("name", sorted(p.name for p in V1.iterdir()))
def test_version_1_run_folders_sample_the_same_numbers(name, tmp_path):
    run_dir = tmp_path / name
    shutil.copytree(V1 / name, run_dir)
    assert json.loads((run_dir / "config.json").read_text())["version"] == 1
    want = np.load(run_dir / "samples-v1.npz")
    run = load_run(run_dir)
    for key, sampler, nfe in (("default", None, 4), ("euler", "euler", 3)):
        if key not in want:
            continue
        if run.context().model_steps is not None:  # a model with its own steps
            nfe = None
        s = run.sample(64, sampler=sampler, nfe=nfe, generator=torch.Generator().manual_seed(5))
        # float32 networks: another CPU's kernels (AVX2 against AVX-512) round differently, by
        # up to ~1.4e-6 relative on this project's machines; a migration error moves samples by O(1)
        np.testing.assert_allclose(s.x.numpy(), want[key], rtol=1e-5, atol=1e-6)
        assert s.nfe == int(want[f"{key}_nfe"])


def test_a_version_1_run_resumes(tmp_path):
    run_dir = tmp_path / "icfm"
    shutil.copytree(V1 / "icfm", run_dir)
    cfg = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    (res,) = train_run(cfg, run_dir, resume=True)
    assert res.resumed_from == cfg.train.steps  # complete: nothing to redo


def test_a_sampler_by_name_starts_from_its_own_defaults():
    cfg = make_config("ddpm", "moons", overrides={"sampler": "dpm_solver"})
    assert (cfg.sampler.name, cfg.sampler.options) == ("dpm_solver", {})  # ddim's eta dropped
    cfg = make_config("ddpm", "moons", overrides={"sampler.name": "unipc"})
    assert cfg.sampler.options == {}
    with pytest.raises(ValueError, match="the coupling is independent"):
        make_config("icfm", "moons", overrides={"ot_batch": 1024})
