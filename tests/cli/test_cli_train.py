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


def table_numbers(row: dict) -> list[str]:
    """The numbers of a row of evaluate's table, from --json: W2, PE and its curvature, and
    the brackets [lower, upper] of the coupling gap and of W2^2(noise, samples)."""
    numbers = [f"{row[k]:.4g}" for k in ("w2", "action", "straightness")]
    for key in ("coupling_gap", "w2_squared"):
        box = row["geometry"][key]
        up = "inf" if box["upper"] is None else f"{box['upper']:.4g}"
        numbers.append(f"[{box['lower']:.4g}, {up}]")
    return numbers


def test_evaluate_table_keeps_every_number_in_a_pipe_and_at_80_columns(
    trained, capsys, monkeypatch
):
    """Piped: progress lines per budget as they come, then one table line per budget holding
    all its numbers; in an 80-column terminal every number whole, every line within 80."""
    import io

    from wasserflow.cli import train
    from wasserflow.cli.output import WideConsole

    argv = ["evaluate", str(trained), "--nfe", "1,4", "--n", "200"]
    _, out, _ = run([*argv, "--json"], capsys)
    rows = json.loads(out)["results"]
    code, out, err = run(argv, capsys)
    assert code == 0 and not err
    assert "evaluated euler at NFE 1" in out and "evaluated euler at NFE 4" in out
    for row in rows:
        assert any(all(v in line for v in table_numbers(row)) for line in out.splitlines()), row
    buf = io.StringIO()
    terminal = WideConsole(file=buf, width=80, force_terminal=True, color_system=None)
    monkeypatch.setattr(train, "console", terminal)
    assert run(argv, capsys)[0] == 0
    text = buf.getvalue().split("samples against")[1]  # the table, after the progress bar
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    words = {w for line in text.splitlines() for w in line.replace("│", " ").split()}
    for row in rows:  # every number whole (a bracket may break after its comma)
        assert {w for v in table_numbers(row) for w in v.split()} <= words, row


def test_train_in_a_pipe_prints_progress_lines(tmp_path, capsys):
    argv = ["train", "--method", "icfm", "--data", "moons", "--steps", "30", "--width", "8"]
    code, out, _ = run([*argv, "--depth", "1", "--out", str(tmp_path / "r")], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("icfm on moons: step 1/30, loss ")
    assert lines[1].startswith("icfm on moons: step 30/30, loss ")


def test_mnist_folder_trains_a_unet_sized_from_the_data(tmp_path, capsys):
    """The issue's first hour: ``train --method otcfm --data mnist:FOLDER --model unet``."""
    import gzip

    folder = tmp_path / "mnist"
    folder.mkdir()
    u8 = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    head = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (8, 28, 28))
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(head + u8.tobytes()))
    out = tmp_path / "run"
    argv = ["train", "--method", "otcfm", "--data", f"mnist:{folder}", "--model", "unet"]
    code, _, err = run([*argv, "--steps", "1", "--batch-size", "4", "--out", str(out)], capsys)
    assert code == 0, err
    model = json.loads((out / "config.json").read_text())["model"]
    assert model["size"] == "mnist" and model["shape"] == [1, 28, 28]


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
