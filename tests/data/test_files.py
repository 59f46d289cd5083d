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


BIG = np.array([[1.0, 2.0], [3.0, -1e300], [5.0, 6.0]])


def test_values_beyond_float32_are_named_not_reported_as_inf(tmp_path):
    np.save(tmp_path / "big.npy", BIG)
    (tmp_path / "big.csv").write_text("# units: m\nx,y\n1,2\n\n3,-1e300\n5,6\n")
    torch.save(torch.as_tensor(BIG), tmp_path / "big.pt")
    torch.save({"points": torch.as_tensor(BIG)}, tmp_path / "big_dict.pth")
    for name in ("big.npy", "big.csv", "big.pt", "big_dict.pth"):
        for load in (load_points, make_source):
            with pytest.raises(ValueError) as info:
                load(str(tmp_path / name))
            msg = str(info.value)
            assert name in msg and "too large for float32" in msg, msg
            assert "1e+300" in msg and "3.4e+38" in msg and "rescale" in msg, msg
            assert "row 1, column 1" in msg and "NaN" not in msg, msg
    with pytest.raises(ValueError, match="line 5 of the file"):
        load_points(tmp_path / "big.csv")
    # float64 keeps them, from every format (and .pt still loads with weights_only=True)
    for name in ("big.npy", "big.csv", "big.pt", "big_dict.pth"):
        x = load_points(tmp_path / name, dtype=torch.float64)
        np.testing.assert_array_equal(x.numpy(), BIG)
        assert make_source(str(tmp_path / name), torch.float64).points.dtype == torch.float64
    # the largest float32 is still fine
    np.save(tmp_path / "edge.npy", np.array([[float(torch.finfo(torch.float32).max)]]))
    assert torch.isfinite(load_points(tmp_path / "edge.npy")).all()


def test_nan_inf_named_by_row_column_and_line(tmp_path):
    (tmp_path / "nan.csv").write_text("x,y\n1,2\n\n3,nan\n")
    np.save(tmp_path / "inf.npy", np.array([[1.0, 2.0], [np.inf, 0.0]]))
    torch.save(torch.tensor([[0.0], [float("-inf")]]), tmp_path / "inf.pt")
    for name, where in (
        ("nan.csv", "row 1, column 1, line 4 of the file: nan"),
        ("inf.npy", "row 1, column 0: inf"),
        ("inf.pt", "row 1, column 0: -inf"),
    ):
        with pytest.raises(ValueError, match="NaN or inf") as info:
            load_points(tmp_path / name, dtype=torch.float64)
        assert name in str(info.value) and where in str(info.value), str(info.value)


def test_complex_and_float128_npy_refused(tmp_path):
    np.save(tmp_path / "cx.npy", np.array([[1 + 1j, 2.0]]))
    with pytest.raises(ValueError, match="complex dtype"):
        load_points(tmp_path / "cx.npy")
    if np.finfo(np.longdouble).max > np.finfo(np.float64).max:  # not on every platform
        np.save(tmp_path / "ld.npy", np.array([[np.longdouble("1e400"), 1]]))
        with pytest.raises(ValueError, match="beyond float64's range") as info:
            load_points(tmp_path / "ld.npy")
        assert "ld.npy" in str(info.value) and "1.00e+400" in str(info.value)


def test_finite_source_refuses_points_beyond_its_dtype():
    from wasserflow.data import FiniteSource

    with pytest.raises(ValueError, match="'mine': 1 finite value is too large for float32"):
        FiniteSource("mine", torch.tensor([[1e39, 0.0]], dtype=torch.float64))
    src = FiniteSource("mine", torch.tensor([[1e39, 0.0]], dtype=torch.float64), torch.float64)
    assert src.sample(2).dtype == torch.float64
