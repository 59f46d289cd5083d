"""``wasserflow train / sample / evaluate`` end to end on a tiny run, and their errors."""

import json

import numpy as np
import pytest
from _cli import run

from wasserflow.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "icfm"
    with pytest.raises(SystemExit) as e:
        main(
            [
                "train",
                "--method",
                "icfm",
                "--data",
                "moons",
                "--steps",
                "60",
                "--out",
                str(out),
                "--width",
                "32",
                "--depth",
                "2",
                "--batch-size",
                "64",
            ]
        )
        raise SystemExit(0)
    assert (e.value.code or 0) == 0
    return out


def test_train_writes_config_and_checkpoint(trained):
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["method"] == "icfm" and cfg["path"]["schedule"]["name"] == "linear"
    assert cfg["data"]["spec"] == "moons" and cfg["train"]["steps"] == 60
    assert (trained / "checkpoint.safetensors").is_file()
    assert len((trained / "metrics.jsonl").read_text().splitlines()) >= 1


def test_retrain_into_same_folder_needs_resume(trained, capsys):
    code, _, err = run(
        ["train", "--method", "icfm", "--data", "moons", "--steps", "60", "--out", str(trained)],
        capsys,
    )
    assert code == 2 and "--resume" in err
    code, out, _ = run(
        ["train", "--method", "icfm", "--data", "moons", "--out", str(trained), "--resume"], capsys
    )
    assert code == 0


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".pt"])
def test_sample_writes_file(trained, capsys, tmp_path, suffix):
    out = tmp_path / f"s{suffix}"
    code, _, _ = run(["sample", str(trained), "--nfe", "4", "--n", "50", "--out", str(out)], capsys)
    assert code == 0
    from wasserflow.data import load_points

    assert tuple(load_points(out).shape) == (50, 2)


def test_sampler_mismatch_is_an_error(trained, capsys, tmp_path):
    code, _, err = run(
        [
            "sample",
            str(trained),
            "--sampler",
            "energy_langevin",
            "--n",
            "5",
            "--out",
            str(tmp_path / "x.npy"),
        ],
        capsys,
    )
    assert code == 2 and "energy model" in err


def test_evaluate_json(trained, capsys):
    code, out, _ = run(["evaluate", str(trained), "--nfe", "1,4", "--n", "200", "--json"], capsys)
    assert code == 0
    res = json.loads(out)
    assert [r["nfe"] for r in res["results"]] == [1, 4]
    for r in res["results"]:
        assert np.isfinite(r["w2"]) and r["w2"] > 0
        assert r["geometry"]["geodesic_gap"]["lower"] >= -1e-9  # action >= W2^2 of its endpoints


def test_jko_flow_trains_block_by_block_and_evaluates(tmp_path, capsys):
    out = tmp_path / "jko"
    code, _, err = run(
        ["train", "--method", "jko-flow", "--data", "moons", "--steps", "3", "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["objective"]["blocks"] == 3 and cfg["train"]["steps"] == 3
    code, text, _ = run(["evaluate", str(out), "--n", "200", "--json"], capsys)
    assert code == 0
    (row,) = json.loads(text)["results"]
    assert row["sampler"] == "jko" and row["nfe"] >= 3 and np.isfinite(row["w2"])
    code, _, err = run(["evaluate", str(out), "--nfe", "1,2"], capsys)
    assert code == 2 and "3 blocks" in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--method", "nope", "--data", "moons", "--out", "X"], "unknown method"),
        (
            [
                "train",
                "--method",
                "icfm",
                "--data",
                "moons",
                "--out",
                "X",
                "--set",
                "objective.predictoin=x1",
            ],
            "unknown key 'objective.predictoin': valid keys are kind, "
            "prediction, time_input, times, weighting",
        ),
        (
            ["train", "--method", "icfm", "--data", "moons", "--out", "X", "--set", "lr=3"],
            "unknown key 'lr': valid keys are",
        ),
        (
            [
                "train",
                "--method",
                "icfm",
                "--data",
                "moons",
                "--out",
                "X",
                "--model-set",
                "widht=3",
            ],
            "unknown option widht for model mlp: valid options are width",
        ),
        (
            ["train", "--method", "icfm", "--data", "moons", "--out", "X", "--model", "unet9"],
            "unknown model 'unet9'",
        ),
        (["train", "--method", "icfm", "--data", "nosuchset", "--out", "X"], "nosuchset"),
        (["evaluate", "/nonexistent/run"], "not a wasserflow run"),
        (["evaluate", ".", "--nfe", "1,x"], "--nfe"),
        (
            ["train", "--method", "sde-vp", "--data", "moons", "--out", "X", "--set", "prediction"],
            "KEY=VALUE",
        ),
        (
            [
                "train",
                "--method",
                "sde-vp",
                "--data",
                "moons",
                "--out",
                "X",
                "--set",
                "time_input=clock",
            ],
            "time_input 'clock'",
        ),
        (
            [
                "train",
                "--method",
                "sde-vp",
                "--data",
                "moons",
                "--out",
                "X",
                "--set",
                "prediction=noise",
            ],
            "prediction 'noise'",
        ),
    ],
)
def test_bad_input(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2 and needle in err, err
    assert not (tmp_path / "X").exists()  # refused before anything is written


def test_recipe_overrides_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "vp"
    code, _, err = run(
        [
            "train",
            "--method",
            "sde-vp",
            "--data",
            "moons",
            "--steps",
            "20",
            "--out",
            str(out),
            "--width",
            "16",
            "--time-embedding",
            "linear",
            "--set",
            "prediction=velocity",
            "--set",
            "time_input=logsnr",
            "--set",
            'times={"kind": "uniform", "t_max": 0.99}',
        ],
        capsys,
    )
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["objective"]["prediction"] == "velocity"
    assert cfg["objective"]["time_input"] == "logsnr"
    assert cfg["objective"]["times"] == {
        "kind": "uniform",
        "t_min": 0.0,
        "t_max": 0.99,
        "levels": 1000,
        "power": 1.0,
    }  # defaults filled in
    assert cfg["model"]["time_embedding"] == "linear"
    code, text, err = run(
        ["evaluate", str(out), "--nfe", "4", "--sampler", "dpm_solver", "--json", "--n", "50"],
        capsys,
    )
    assert code == 0, err
    before = (out / "config.json").read_text()
    code, _, err = run(
        [
            "train",
            "--method",
            "sde-vp",
            "--data",
            "moons",
            "--out",
            str(out),
            "--resume",
            "--set",
            "prediction=epsilon",
        ],
        capsys,
    )
    assert code == 2 and "objective.prediction: 'velocity' in the run, 'epsilon' given" in err
    assert (out / "config.json").read_text() == before
