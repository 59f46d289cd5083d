"""build_model: JSON round trip of the config, seeded init without touching the global RNG."""

import json

import pytest
import torch

from wasserflow.models import MODEL_KINDS, build_model, model_config


def _same_params(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_config_json_round_trip_rebuilds_the_same_model(kind):
    cfg = {"kind": kind, "shape": [1, 8, 8], "width": 24, "depth": 2, "activation": "gelu"}
    model = build_model(cfg, seed=7)
    text = json.dumps(model.config)
    again = build_model(json.loads(text), seed=7)
    assert again.config == model.config
    assert _same_params(model, again)
    assert not _same_params(model, build_model(json.loads(text), seed=8))
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(model(x, 0.5), again(x, 0.5))


def test_seeded_build_leaves_global_rng_alone():
    state = torch.get_rng_state()
    build_model({"dim": 2, "width": 8}, seed=3)
    assert torch.equal(state, torch.get_rng_state())


def test_defaults_and_validation():
    cfg = model_config({"dim": 2})
    assert cfg == {
        "kind": "mlp",
        "shape": [2],
        "width": 128,
        "depth": 3,
        "activation": "silu",
        "time_embedding": "sinusoidal",
        "embed_dim": 64,
    }
    assert model_config(kind="energy", dim=2)["time_embedding"] == "none"
    bad = [
        ({"dim": 2, "widht": 3}, "unknown model config keys"),
        ({"dim": 2, "kind": "unet9"}, "unknown model kind"),
        ({"width": 3}, "needs 'shape'"),
        ({"dim": 2, "activation": "swish9"}, "unknown activation"),
        ({"dim": 2, "depth": 0}, "positive int"),
        ({"shape": [2, 0]}, "positive ints"),
        ({"dim": 2, "time_embedding": "fourier"}, "time_embedding"),
        ({"shape": [1, 8, 8], "dim": 63}, "give one"),
    ]
    for cfg, msg in bad:
        with pytest.raises(ValueError, match=msg):
            build_model(cfg)
