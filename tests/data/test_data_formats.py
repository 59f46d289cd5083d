"""The data-format registry: a format registered in one module (here, this test file) is read by
``make_source``, listed by the ``--data`` help and trained on by ``wasserflow train`` with no
other file naming it (the recipe of docs/design.md section 5)."""

import json
import math

import pytest
import torch

from wasserflow.cli import main
from wasserflow.data import (
    FORMATS,
    DataSource,
    SamplerSource,
    data_help,
    make_source,
    register_format,
    source_names,
)
from wasserflow.engine import load_run


def _ring(radius: float):
    def draw(n: int, generator: torch.Generator | None = None, dtype=torch.float32):
        theta = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        return (radius * torch.stack([theta.cos(), theta.sin()], 1)).to(dtype)

    return draw


def _toy(text: str, dtype: torch.dtype) -> DataSource:
    """``toy:RADIUS``: the uniform law on the circle of that radius."""
    try:
        radius = float(text)
    except ValueError:
        radius = float("nan")
    if not math.isfinite(radius) or radius <= 0:
        raise ValueError(f"toy:{text}: the radius must be a positive number, e.g. toy:2")
    return SamplerSource(f"toy{radius:g}", _ring(radius), (2,), dtype, spec=f"toy:{radius:g}")


@pytest.fixture
def toy():
    register_format("toy", help="toy:RADIUS")(_toy)
    yield "toy"
    FORMATS.pop("toy")


def test_a_registered_format_is_read_by_make_source(toy):
    src = make_source("TOY: 2.5")  # the prefix is case-insensitive
    x = src.sample(64, torch.Generator().manual_seed(0))
    assert src.spec == "toy:2.5" and src.shape == (2,) and x.dtype == torch.float32
    torch.testing.assert_close(x.norm(dim=1), torch.full((64,), 2.5))
    again = make_source(src.spec).sample(64, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    assert "toy:RADIUS" in data_help() and "toy" not in source_names()
    with pytest.raises(ValueError, match="radius must be a positive number"):
        make_source("toy:-1")


def test_wasserflow_train_trains_on_a_registered_format(toy, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--method", "icfm", "--data", "toy:2", "--steps", "3", "--out", str(out)]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--width", "16", "--depth", "1", "--batch-size", "16"])
        raise SystemExit(0)
    assert (e.value.code or 0) == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["data"]["spec"] == "toy:2"
    sample = load_run(out).sample(8, nfe=2, generator=torch.Generator().manual_seed(0))
    assert sample.x.shape == (8, 2) and torch.isfinite(sample.x).all()


def test_unknown_specs_name_every_format():
    with pytest.raises(ValueError) as info:
        make_source("not-a-dataset")
    msg = str(info.value)
    assert "\n" not in msg and all(f.help in msg for f in FORMATS.values())


def test_names_aliases_and_prefixes_resolve_as_before():
    assert make_source("Eight-Gaussians").spec == "8gaussians"  # a toy2d alias
    assert make_source("8gaussians").mixture is not None  # the toy set, with its law
    assert make_source("GMM2D").name == "gmm2d"
    with pytest.raises(ValueError, match="unknown data source"):
        make_source("toy2d:moons")  # a family of names is not a prefix


def test_registration_refuses_duplicates_and_bad_names(toy):
    with pytest.raises(ValueError, match="registered twice"):
        register_format("toy", help="toy:X")(_toy)
    with pytest.raises(ValueError, match="already registered"):
        register_format("moons-again", names=("moons",))(_toy)
    with pytest.raises(ValueError, match="without ':'"):
        register_format("a:b", help="a:b")
    assert "moons-again" not in FORMATS
