"""The ``wasserflow ot`` commands: values against POT, and one-line errors with exit code 2."""

import json

import numpy as np
import ot
import pytest
import torch
from _cli import run


@pytest.fixture
def clouds(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(45, 2)) + 2
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", y, delimiter=",")
    torch.save(torch.tensor(y), tmp_path / "y.pt")
    return tmp_path, x, y


@pytest.mark.parametrize("yname", ["y.csv", "y.pt"])
def test_w2_json_equals_pot(clouds, capsys, yname):
    d, x, y = clouds
    code, out, _ = run(["ot", "w2", str(d / "x.npy"), str(d / yname), "--json"], capsys)
    assert code == 0
    res = json.loads(out)
    expected = ot.emd2(np.full(60, 1 / 60), np.full(45, 1 / 45), ot.dist(x, y), numItermax=10**8)
    assert res["w2_squared"] == pytest.approx(expected, rel=1e-6)
    assert res["w2"] == pytest.approx(np.sqrt(expected), rel=1e-6)
    assert res["method"] == "exact" and res["converged"] is True


@pytest.mark.parametrize("method", ["gaussian", "sliced"])
def test_w2_other_methods(clouds, capsys, method):
    d, _, _ = clouds
    code, out, _ = run(
        ["ot", "w2", str(d / "x.npy"), str(d / "y.csv"), "--method", method, "--json"], capsys
    )
    assert code == 0 and json.loads(out)["method"] == method


def test_1d_method_needs_one_dimension(clouds, capsys):
    d, _, _ = clouds
    code, _, err = run(["ot", "w2", str(d / "x.npy"), str(d / "y.csv"), "--method", "1d"], capsys)
    assert code == 2 and "R^1" in err


def write_bad(tmp_path, kind):
    p = (
        tmp_path
        / {
            "missing": "nope.npy",
            "empty": "empty.csv",
            "text": "text.csv",
            "nan": "nan.npy",
            "dim": "three.npy",
        }[kind]
    )
    if kind == "empty":
        p.write_text("")
    elif kind == "text":
        p.write_text("1.0,2.0\nfoo,bar\n")
    elif kind == "nan":
        np.save(p, np.array([[0.0, np.nan], [1.0, 1.0]]))
    elif kind == "dim":
        np.save(p, np.zeros((5, 3)))
    return p


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "nan", "dim"])
@pytest.mark.parametrize("command", ["w2", "interpolate"])
def test_bad_files_exit_2_with_one_line(clouds, capsys, kind, command, tmp_path):
    d, _, _ = clouds
    bad = write_bad(tmp_path, kind)
    code, out, err = run(["ot", command, str(d / "x.npy"), str(bad)], capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert bad.name in err


def test_unknown_method_is_a_usage_error(clouds, capsys):
    d, _, _ = clouds
    code, _, _ = run(["ot", "w2", str(d / "x.npy"), str(d / "y.csv"), "--method", "bogus"], capsys)
    assert code == 2


def test_interpolate_writes_png(clouds, capsys, tmp_path):
    d, _, _ = clouds
    out = tmp_path / "sub" / "geo.png"
    code, stdout, _ = run(
        ["ot", "interpolate", str(d / "x.npy"), str(d / "y.pt"), "-o", str(out)], capsys
    )
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_exact_ot_too_large_for_memory_is_one_line(tmp_path, capsys, monkeypatch):
    """40,000 points against 40,000 on a machine with 8 GiB free: refused before allocating,
    in one line with the memory needed and the alternatives."""
    from wasserflow.geometry.ot import exact

    monkeypatch.setattr(exact, "available_bytes", lambda: 8 * 2**30)
    x = np.random.default_rng(0).normal(size=(40_000, 2))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", x + 1)
    code, out, err = run(["ot", "w2", str(tmp_path / "x.npy"), str(tmp_path / "y.npy")], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and not out, err
    assert "40,000" in err and "GiB" in err and "8 GiB is available" in err
    assert "--method sinkhorn" in err and "--method sliced" in err and "subsample" in err
