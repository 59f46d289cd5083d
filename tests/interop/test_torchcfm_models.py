"""TorchCFM networks' state dicts loaded by from_torchcfm (into wasserflow's unet / mlp, or into
TorchCFM's own module) and sampled by wasserflow's Euler, against TorchCFM's network called
directly and its Euler loop (torchdiffeq's odeint, as TorchCFM's examples integrate)."""

from dataclasses import dataclass

import pytest
import torch
from _tiny import SHAPE, UNET_OPTIONS, image_data, torchcfm_unet
from safetensors.torch import save_file
from torchcfm.models.models import MLP
from torchdiffeq import odeint

from wasserflow.errors import InputError
from wasserflow.interop import from_torchcfm, load_state_dict
from wasserflow.metrics import evaluate_run


def _x(n, seed=0, shape=SHAPE):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def _rel(ours, theirs):
    return float((ours - theirs.double()).abs().max()) / max(1.0, float(theirs.abs().max()))


def _torchcfm_euler(net, x0, steps):
    t_span = torch.linspace(0, 1, steps + 1)
    with torch.no_grad():
        return odeint(lambda t, x: net(t, x), x0, t_span, method="euler")[-1]


@pytest.mark.parametrize("heads", [True, False], ids=["heads16", "one-head"])
def test_unet_state_dict_in_wasserflows_unet_equals_torchcfms_net(heads):
    net = torchcfm_unet(0, heads)
    opts = UNET_OPTIONS | ({} if heads else {"head_channels": None, "num_heads": 1})
    ckpt = {"net_model": torchcfm_unet(1, heads).state_dict(), "ema_model": net.state_dict()}
    model = from_torchcfm(ckpt, "unet", options=opts, shape=SHAPE)  # the EMA weights
    x, t = _x(4).double(), torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    with torch.no_grad():
        ours = model.field().velocity(x, t)
        theirs = net(t.float(), x.float())
    assert _rel(ours, theirs) < 1e-5
    # Euler with 6 steps, from the same noise
    x0 = _x(3, 1)
    out = model.sample(3, sampler="euler", nfe=6, x0=x0.double())
    assert out.nfe == 6 and _rel(out.x, _torchcfm_euler(net, x0, 6)) < 1e-5


def test_the_conversion_can_fail():
    # negative controls: another head split of qkv, the other state dict, net(x, t) order
    net = torchcfm_unet(0)
    x, t = _x(2).double(), torch.tensor([0.2, 0.9], dtype=torch.float64)
    with torch.no_grad():
        theirs = net(t.float(), x.float())
        wrong_heads = from_torchcfm(
            net.state_dict(), "unet", options=UNET_OPTIONS | {"head_channels": 32}, shape=SHAPE
        )
        assert _rel(wrong_heads.field().velocity(x, t), theirs) > 1e-3
        other = from_torchcfm(
            {"net_model": torchcfm_unet(1).state_dict(), "ema_model": net.state_dict()},
            "unet",
            key="net_model",
            options=UNET_OPTIONS,
            shape=SHAPE,
        )
        assert _rel(other.field().velocity(x, t), theirs) > 1e-3
    with pytest.raises(InputError, match="no counterpart|shape"):
        from_torchcfm(
            net.state_dict(),
            "unet",
            options=UNET_OPTIONS | {"channels": 16, "groups": 8},
            shape=SHAPE,
        )


def test_torchcfms_own_module_from_a_file(tmp_path):
    # the module itself (called net(t, x)), its state dict read with weights_only=True from a
    # TorchCFM-style checkpoint with an optimizer state and a step count
    net = torchcfm_unet(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    path = tmp_path / "cfm.pt"
    torch.save({"net_model": net.state_dict(), "optim": opt.state_dict(), "step": 7}, path)
    model = from_torchcfm(path, torchcfm_unet(5), data=image_data(tmp_path / "x.npy"))
    x0 = _x(3, 2)
    out = model.sample(3, nfe=4, x0=x0.double())
    assert _rel(out.x, _torchcfm_euler(net, x0, 4)) < 1e-5
    rows = evaluate_run(model, [1, 2], n=8)
    assert [r.nfe for r in rows] == [1, 2] and rows[0].action is not None


def test_2d_mlp_in_wasserflows_mlp_and_as_a_module(tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mlp = MLP(dim=2, time_varying=True, w=64)
    path = tmp_path / "mlp.safetensors"
    save_file(mlp.state_dict(), str(path))
    x, t = _x(5, 0, (2,)).double(), torch.rand(5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = mlp(torch.cat([x.float(), t[:, None]], 1))
        for m in (
            from_torchcfm(path, "mlp", data="moons"),
            from_torchcfm(path, MLP(dim=2, time_varying=True, w=64), inputs="cat", shape=(2,)),
        ):
            assert _rel(m.field().velocity(x, t.double()), theirs) < 1e-6
    assert not from_torchcfm(path, "mlp", data="moons").supports("ddim")  # OT-CFM: no score
    assert from_torchcfm(path, "mlp", data="moons", score_valid=True).supports("ddim")


@dataclass
class Flags:  # an arbitrary Python object, as training scripts pickle their arguments
    lr: float = 1e-3


def test_checkpoints_are_read_without_unpickling_objects(tmp_path):
    sd = torchcfm_unet(0).state_dict()
    bad = tmp_path / "pickled.pt"
    torch.save({"net_model": sd, "flags": Flags()}, bad)
    with pytest.raises(InputError, match="unpickling arbitrary Python objects") as e:
        load_state_dict(bad)
    assert "\n" not in str(e.value) and "Flags" in str(e.value)
    torch.save(torchcfm_unet(0), tmp_path / "module.pt")  # a whole pickled module
    with pytest.raises(InputError, match="unpickling arbitrary"):
        load_state_dict(tmp_path / "module.pt")
    # keys: EMA first, a named entry, a flat safetensors file with prefixes, module. prefix
    torch.save({"net_model": {"a": torch.zeros(1)}, "ema_model": {"a": torch.ones(1)}}, bad)
    assert float(load_state_dict(bad)["a"]) == 1.0
    assert float(load_state_dict(bad, key="net_model")["a"]) == 0.0
    flat = tmp_path / "flat.safetensors"
    save_file({"ema_model.a": torch.ones(1), "net_model.a": torch.zeros(1)}, str(flat))
    assert float(load_state_dict(flat, key="net_model")["a"]) == 0.0
    assert list(load_state_dict({"module.w": torch.ones(2)})) == ["w"]
    with pytest.raises(InputError, match="no state dict 'ema'"):
        load_state_dict(flat, key="ema")
    torch.save({"step": 3, "lr": 0.1}, bad)
    with pytest.raises(InputError, match="holds no state dict"):
        load_state_dict(bad)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="not a torch checkpoint"):
        load_state_dict(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="no such checkpoint"):
        load_state_dict(tmp_path / "missing.pt")
