"""Time-conditioned MLPs: shapes, the sinusoidal embedding (vs diffusers), TorchCFM's MLP."""

import pytest
import torch

from wasserflow.models import SinusoidalTimeEmbedding, VectorFieldMLP, build_model


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(2,), (8,), (1, 8, 8), (3, 4, 4)])
def test_output_shape_equals_input_shape(shape):
    model = build_model({"kind": "mlp", "shape": list(shape), "width": 32, "depth": 2}, seed=0)
    x = torch.randn(5, *shape, generator=gen(0))
    for t in (0.5, torch.tensor(0.5), torch.rand(5, generator=gen(1)), torch.rand(5, 1)):
        assert model(x, t).shape == x.shape
    with pytest.raises(ValueError, match="does not match"):
        model(torch.randn(5, 7), 0.5)
    with pytest.raises(ValueError, match="t must be"):
        model(x, torch.rand(4))
    with pytest.raises(ValueError, match="pass t"):
        model(x)


def test_sinusoidal_embedding_matches_diffusers_and_separates_times():
    emb_mod = pytest.importorskip("diffusers.models.embeddings")
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    emb = SinusoidalTimeEmbedding(64)
    ours = emb(t)
    ref = emb_mod.get_timestep_embedding(1000 * t, 64, downscale_freq_shift=0)
    # diffusers works in float32 (arguments up to 1000): agree to float32 rounding of 1000 t w
    torch.testing.assert_close(ours, ref.to(ours.dtype), rtol=0, atol=2e-4)
    d = torch.cdist(ours, ours) + 1e3 * torch.eye(1001, dtype=torch.float64)
    assert float(d.min()) > 0.05  # times 0.001 apart are told apart
    model = build_model({"kind": "mlp", "dim": 2, "width": 32}, seed=0)
    x = torch.randn(16, 2, generator=gen(0))
    with torch.no_grad():
        assert float((model(x, 0.3) - model(x, 0.301)).abs().max()) > 0


def test_selu_linear_config_is_torchcfm_mlp():
    models = pytest.importorskip("torchcfm.models")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref = models.MLP(dim=2, w=64, time_varying=True)
    ours = build_model(
        {
            "kind": "mlp",
            "dim": 2,
            "width": 64,
            "depth": 3,
            "activation": "selu",
            "time_embedding": "linear",
        },
        seed=1,
    )
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    ours.load_state_dict(ref.state_dict())  # same keys and shapes
    x, t = torch.randn(32, 2, generator=gen(2)), torch.rand(32, generator=gen(3))
    torch.testing.assert_close(ours(x, t), ref(torch.cat([x, t[:, None]], 1)))


def test_time_free_mlp_ignores_t():
    m = VectorFieldMLP((2,), width=16, time_embedding="none")
    x = torch.randn(3, 2, generator=gen(0))
    assert torch.equal(m(x), m(x, 0.7))
