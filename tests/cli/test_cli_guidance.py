"""The command line of class-conditional runs: train --conditional, sample --class with
--guidance / --cfg-w (both conventions printed), evaluate --guidance (a sweep as JSON)."""

import json

import numpy as np
from _cli import run as cli


def test_the_command_line_trains_samples_and_sweeps(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = cli(["train", "--method", "otcfm", "--data", "gmm2d", "--steps", "20",
                        "--batch-size", "64", "--out", str(out), "--conditional"], capsys)  # fmt: skip
    assert code == 0, err
    npy = tmp_path / "s.npy"
    code, text, err = cli(["sample", str(out), "--class", "2", "--cfg-w", "1.5", "--nfe", "4",
                           "--n", "50", "-o", str(npy)], capsys)  # fmt: skip
    assert code == 0, err
    assert "guidance s = 2.5 (w = 1.5)" in " ".join(text.split())
    assert np.load(npy).shape == (50, 2)
    code, text, err = cli(["evaluate", str(out), "--guidance", "1,2", "--nfe", "4",
                           "--n-per-class", "20", "--json"], capsys)  # fmt: skip
    assert code == 0, err
    rows = json.loads(text)["results"]
    assert [r["scale"] for r in rows] == [1.0, 2.0] and [r["w"] for r in rows] == [0.0, 1.0]
    assert all(len(r["class_w2"]) == 3 and r["accuracy"] is not None for r in rows)
    code, _, err = cli(["sample", str(out), "--guidance", "2", "-o", str(npy)], capsys)
    assert code == 2 and "needs the classes" in err
