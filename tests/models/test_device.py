"""Networks on a device, the rest on the CPU: the hooks move inputs and outputs and autograd
follows (exercised here with the CPU as the 'device'; no accelerator is needed)."""

import pytest
import torch

from wasserflow.engine import make_config, train_run
from wasserflow.errors import EnvironmentProblem
from wasserflow.models import build_model, place, resolve_device
from wasserflow.models.device import install_device_hooks


def _pair(cfg):
    return build_model(cfg, seed=0), build_model(cfg, seed=0)


def test_hooked_vector_field_equals_the_plain_one_with_gradients():
    plain, hooked = _pair({"kind": "mlp", "shape": [2], "width": 16, "depth": 2})
    install_device_hooks(hooked, torch.device("cpu"))
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    t = torch.rand(8, generator=torch.Generator().manual_seed(1))
    a, b = plain(x, t), hooked(x, t=t)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    a.square().sum().backward()
    b.square().sum().backward()
    for p, q in zip(plain.parameters(), hooked.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)


def test_energy_model_hooks_cover_field_and_energy_second_order():
    cfg = {"kind": "energy", "shape": [2], "width": 16, "depth": 2, "time_embedding": "none"}
    plain, hooked = _pair(cfg)
    install_device_hooks(hooked.potential, torch.device("cpu"))
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), requires_grad=True)
    torch.testing.assert_close(plain.energy(x), hooked.energy(x), rtol=0, atol=0)
    plain.train()
    hooked.train()
    la, lb = plain(x, 0.5).square().sum(), hooked(x, 0.5).square().sum()  # through -grad E
    la.backward()
    lb.backward()
    for p, q in zip(plain.parameters(), hooked.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)


def test_place_on_cpu_is_a_plain_move_and_bad_devices_are_refused():
    m = build_model({"kind": "mlp", "shape": [2], "width": 8, "depth": 1}, seed=0)
    assert place(m, "cpu") is m and not m._forward_pre_hooks
    with pytest.raises(ValueError, match="cpu or cuda"):
        resolve_device("not-a-device")
    with pytest.raises(ValueError, match="only cpu and cuda"):
        resolve_device("meta")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(EnvironmentProblem, match="no CUDA device"):
        train_run(make_config("icfm", "moons", steps=5), tmp_path / "run", device="cuda")
    assert not (tmp_path / "run").exists()


def test_moving_back_to_the_cpu_removes_the_hooks(monkeypatch):
    # a stand-in accelerator (no GPU here): a device of type "cuda" that nothing is moved to
    from types import SimpleNamespace

    from wasserflow.models import device as dev_mod

    fake = SimpleNamespace(type="cuda")
    monkeypatch.setattr(
        dev_mod, "resolve_device", lambda d: fake if d == "fake" else torch.device(d)
    )
    m = build_model({"kind": "mlp", "shape": [2], "width": 8, "depth": 1}, seed=0)
    m.to = lambda d: m  # parameters stay where they are
    place(m, "fake")
    assert len(m._forward_pre_hooks) == 1 and len(m._forward_hooks) == 1
    place(m, "fake")  # placing twice on the same device installs nothing more
    assert len(m._forward_pre_hooks) == 1
    place(m, "cpu")
    assert not m._forward_pre_hooks and not m._forward_hooks
    assert m(torch.randn(4, 2), 0.5).device.type == "cpu"
