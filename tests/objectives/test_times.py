"""Time distributions: the power law t = t_min + (t_max - t_min) u^p favours the noise end."""

import pytest
import torch

from wasserflow.engine import build_objective, make_config
from wasserflow.objectives import TimeDistribution


def test_power_times_have_the_power_law():
    td = TimeDistribution(kind="power", power=3.0)
    t = td.sample(200_000, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    # P(t <= s) = s^(1/3); E[t] = 1 / (1 + 3)
    assert abs(float((t <= 0.125).double().mean()) - 0.5) < 0.005
    assert abs(float(t.mean()) - 0.25) < 0.003
    # the same generator draws give u^p of the uniform draws
    u = TimeDistribution().sample(10, torch.Generator().manual_seed(1), dtype=torch.float64)
    p = td.sample(10, torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(p, u**3)
    assert td.to_dict()["power"] == 3.0


def test_power_validation_and_recipe():
    with pytest.raises(ValueError, match="> 0"):
        TimeDistribution(kind="power", power=0.0)
    with pytest.raises(ValueError, match="kind 'power'"):
        TimeDistribution(kind="uniform", power=2.0)
    recipe = make_config("otcfm", "moons", overrides={"times": {"kind": "power", "power": 3.0}})
    assert build_objective(recipe, total_steps=10).times == TimeDistribution("power", power=3.0)
