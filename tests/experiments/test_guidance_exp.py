"""Experiment ``guidance`` (test profile): against what is known without the code under test.
At s = 1 CFG is the conditional model, so the exact fields' samples are the class law: their
W2 to the class is that of two draws of it (the floor), and the continuity residual is the
grid's discretisation (under 5 % on the test profile's 80 x 80 grid); the scales above 1 are where the verdict's margins lie; the
record reads back from results.json as its dataclass."""

from __future__ import annotations

import json

import pytest
import torch

from wasserflow.experiments import reproduce, resolve_config
from wasserflow.experiments.guidance_exp import GuidanceNumbers
from wasserflow.experiments.records import from_json


@pytest.fixture(scope="module")
def numbers(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("guidance")
    res = reproduce(out, resolve_config("test", seed=0), experiments=["guidance"])["guidance"]
    stored = json.loads((out / "results.json").read_text())["experiments"]["guidance"]
    return res, from_json(GuidanceNumbers, stored["numbers"])


def test_scale_one_samples_the_class_and_transports_its_marginals(numbers):
    res, n = numbers
    one = next(r for r in n.rows if r.scale == 1.0)
    assert one.exact_to_class.value < 1.5 * one.floor.value + 0.02
    assert max(one.residual) < 0.05  # central differences on the 80 x 80 grid (h = 0.11)
    assert one.trained_accuracy > 0.5  # the class is the Bayes-likeliest for most draws


def test_guidance_leaves_the_tilted_law_and_the_verdict_rests_on_the_margins(numbers):
    res, n = numbers
    assert res.verdict.holds is True, res.verdict.text
    big = [r for r in n.rows if r.scale > 1.0]
    assert big and all(r.exact_to_tilted.lower > r.floor.upper for r in big)
    assert all(r.trained_accuracy >= 0.95 for r in big)  # guidance sharpens the class
