"""User point-cloud loaders: each format, and each bad file raising a ValueError naming it."""

import numpy as np
import pytest
import torch

from wasserflow.data import load_points, make_source

PTS = np.array([[0.5, -1.0, 2.0], [1.5, 3.25, -0.125], [0.0, 0.0, 1e-3]])


def test_npy_csv_pt_round_trip(tmp_path):
    np.save(tmp_path / "a.npy", PTS)
    np.savetxt(tmp_path / "b.csv", PTS, delimiter=",")
    (tmp_path / "h.csv").write_text(
        "x,y,z\n" + "\n".join(",".join(map(repr, r)) for r in PTS.tolist())
    )
    torch.save(torch.as_tensor(PTS), tmp_path / "c.pt")
    torch.save({"points": torch.as_tensor(PTS)}, tmp_path / "d.pt")
    np.save(tmp_path / "i.npy", np.arange(6).reshape(3, 2))  # integers are fine
    for name in ("a.npy", "b.csv", "h.csv", "c.pt", "d.pt"):
        x = load_points(tmp_path / name, dtype=torch.float64)
        assert x.dtype == torch.float64 and x.shape == (3, 3), name
        np.testing.assert_array_equal(x.numpy(), PTS)
    assert load_points(tmp_path / "a.npy").dtype == torch.float32
    assert load_points(tmp_path / "i.npy").shape == (3, 2)
    src = make_source(str(tmp_path / "a.npy"))
    assert src.shape == (3,) and src.is_finite and src.spec == str(tmp_path / "a.npy")
    assert make_source(src.spec).sample(4, torch.Generator().manual_seed(0)).shape == (4, 3)


def _bad_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "comments.csv").write_text("# nothing here\n\n")
    (tmp_path / "words.csv").write_text("x,y\n1,2\nthree,4\n")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    (tmp_path / "nan.csv").write_text("1,2\nnan,4\n")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.inf]]))
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    np.save(tmp_path / "none.npy", np.zeros((0, 2)))
    np.save(tmp_path / "str.npy", np.array([["a", "b"]]))
    torch.save({"a": torch.zeros(2, 2), "b": torch.zeros(2, 2)}, tmp_path / "two.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    (tmp_path / "pts.txt").write_text("1,2\n")
    return {
        "missing.npy": "no such file",
        "empty.csv": "empty",
        "comments.csv": "empty",
        "words.csv": "not numeric",
        "ragged.csv": "different lengths",
        "nan.csv": "NaN or inf",
        "nan.npy": "NaN or inf",
        "flat.npy": "2-D array",
        "cube.npy": "2-D array",
        "none.npy": "no points",
        "str.npy": "non-numeric",
        "two.pt": "2 tensors",
        "list.pt": "not a tensor",
        "junk.pt": "not a readable torch file",
        "pts.txt": "unknown extension",
    }


def test_each_bad_file_raises_value_error_naming_it(tmp_path):
    for name, problem in _bad_files(tmp_path).items():
        with pytest.raises(ValueError) as info:
            load_points(tmp_path / name)
        msg = str(info.value)
        assert name in msg and problem in msg, msg


def test_make_source_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        make_source(str(tmp_path / "gone.csv"))
    with pytest.raises(ValueError, match="unknown data source"):
        make_source("not-a-dataset")
    with pytest.raises(ValueError, match="non-empty string"):
        make_source("  ")
