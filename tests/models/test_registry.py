"""The model registry: a backbone is a class with a config dataclass registered by name, and
every method trains with it (no recipe chooses the backbone)."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from wasserflow.engine import load_run, make_config, train_run
from wasserflow.models import BACKBONES, build_backbone, get_backbone, register_model
from wasserflow.objectives import objective_spec


@dataclass(frozen=True)
class _AffineConfig:
    bias: bool = True


class _Affine(nn.Module):
    """x -> A x + b + c t (a field), or a quadratic form (a scalar head)."""

    def __init__(self, shape, config: _AffineConfig, *, scalar: bool = False):
        super().__init__()
        d = int(torch.tensor(shape).prod())
        self.shape, self.scalar = tuple(shape), scalar
        self.lin = nn.Linear(d + 1, 1 if scalar else d, bias=config.bias)

    def forward(self, x, t=None):
        flat = x.reshape(x.shape[0], -1)
        t = torch.zeros(x.shape[0], 1) if t is None else torch.as_tensor(t).reshape(-1, 1)
        out = self.lin(torch.cat([flat, t.expand(x.shape[0], 1).to(flat.dtype)], 1))
        return out[:, 0] ** 2 if self.scalar else out.reshape(x.shape)


@pytest.fixture
def affine():
    register_model("affine-test", _AffineConfig)(_Affine)
    yield "affine-test"
    BACKBONES.pop("affine-test")


@pytest.mark.parametrize("method", ["icfm", "ddpm", "energy-matching"])
def test_a_registered_backbone_trains_with_any_method(affine, method, tmp_path):
    cfg = make_config(
        method,
        "moons",
        steps=3,
        batch_size=16,
        model=affine,
        model_options={"bias": False},
        warmup=1,
    )
    assert cfg.model.options == {"bias": False}
    train_run(cfg, tmp_path / "r")
    run = load_run(tmp_path / "r")
    scalar = objective_spec(cfg.objective).head == "scalar"
    net = run.model.potential if scalar else run.model  # energy: wrapped scalar head
    assert isinstance(net, _Affine) and net.scalar == scalar and net.lin.bias is None
    out = run.sample(8, nfe=2, generator=torch.Generator().manual_seed(0))
    assert out.x.shape == (8, 2) and torch.isfinite(out.x).all()


def test_unknown_models_and_options_are_refused(affine):
    with pytest.raises(ValueError, match="unknown model 'nope'.*affine-test.*mlp"):
        get_backbone("nope")
    with pytest.raises(
        ValueError, match="unknown option biass for model affine-test: valid options are bias"
    ):
        build_backbone(affine, [2], {"biass": True})
    with pytest.raises(ValueError, match="registered twice"):
        register_model("mlp", _AffineConfig)(_Affine)
