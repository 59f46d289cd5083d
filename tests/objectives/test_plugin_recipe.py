"""docs/design.md section 5, "An objective": the recipe followed to the letter. A toy objective
(a denoiser: the network predicts the clean point x1 from x_t on the linear path) is registered
here, in the test file, and trained and sampled through the command line like any method
(``wasserflow train --set objective=toy_denoiser``, then ``wasserflow sample``): nothing in
wasserflow names it."""

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from wasserflow.cli import main
from wasserflow.data import make_source
from wasserflow.engine import load_run
from wasserflow.geometry import exact_ot
from wasserflow.objectives import OBJECTIVES, ObjectiveSpec, register_objective
from wasserflow.samplers import Field

# ----------------------------------------------------------- the module of the recipe


@dataclass(frozen=True)
class DenoiserObjective:
    """Regress the clean point: |net(x_t, t) - x1|^2 on the run's path, t ~ U[0, t_max]."""

    t_max: float = 0.95
    kind: str = "toy_denoiser"

    def __post_init__(self) -> None:
        if not 0.0 < self.t_max <= 1.0:
            raise ValueError(f"t_max must lie in (0, 1], got {self.t_max}")


@register_objective("toy_denoiser", DenoiserObjective)
class DenoiserSpec(ObjectiveSpec):
    """A network predicting x1, sampled as the velocity of that prediction."""

    title = "the toy denoiser"
    pair_batches = False  # the loss draws its own noise

    def loss(self, objective, setup):
        def per_sample(net, x1, generator, step=0):
            x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
            t = objective.t_max * torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype)
            xt = setup.path.interpolate(x0, x1, t)
            return ((net(xt, t) - x1) ** 2).reshape(x1.shape[0], -1).sum(1)

        return per_sample

    def field(self, objective, model, path):
        return Field.from_network(model, path, "x1", "t")

    def sampling_context(self, objective, base, model=None):
        # trained up to t_max: samplers stop there and finish with the predicted x1
        return dataclasses.replace(base, t_end=objective.t_max, t_last_trained=objective.t_max)


# ----------------------------------------------------------- the test


@pytest.fixture(scope="module", autouse=True)
def registered():
    yield
    OBJECTIVES.pop("toy_denoiser")  # other test modules see only the shipped objectives


def wasserflow(*argv):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
        raise SystemExit(0)
    assert (e.value.code or 0) == 0, argv


def test_a_registered_objective_trains_and_samples_through_the_cli(tmp_path):
    out = tmp_path / "run"
    wasserflow(
        "train", "--method", "icfm", "--data", "gaussian2d", "--set", "objective=toy_denoiser",
        "--set", "objective.t_max=0.9", "--steps", 400, "--lr", 3e-3, "--width", 64,
        "--out", out,
    )  # fmt: skip
    stored = json.loads((out / "config.json").read_text())
    assert stored["objective"] == {"t_max": 0.9, "kind": "toy_denoiser"}
    run = load_run(out)
    assert run.context().t_end == 0.9 and run.field().prediction == "x1"
    wasserflow("sample", out, "--n", 500, "--nfe", 8, "--out", tmp_path / "x.npy")
    x = torch.from_numpy(np.load(tmp_path / "x.npy")).to(torch.float64)
    data = make_source("gaussian2d").sample(500, torch.Generator().manual_seed(1))
    noise = torch.randn(500, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert exact_ot(x, data.to(torch.float64)).w2 < 0.5 * exact_ot(noise, data).w2


def test_its_options_are_checked_like_any_objectives(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(
            ["train", "--method", "icfm", "--data", "moons", "--out", str(tmp_path / "r"),
             "--set", "objective=toy_denoiser", "--set", "objective.t_maxx=0.5"]
        )  # fmt: skip
    assert e.value.code == 2 and "unknown key 'objective.t_maxx'" in capsys.readouterr().err
