"""config.json of ``wasserflow reproduce``: the typed profiles round-trip through it, a config
written by the dict-based profiles (before the typed ones) is still recognised, and one that
does not fit is refused in one line naming --out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wasserflow.experiments import PROFILES, ReproduceConfig, resolve_config
from wasserflow.experiments.runner import prepare

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_round_trips_through_json(profile):
    cfg = resolve_config(profile, seed=5)
    text = json.dumps(cfg.to_json())
    assert ReproduceConfig.from_json(json.loads(text)) == cfg


def test_a_config_written_by_the_dict_profiles_is_recognised(tmp_path):
    """data/config-v1-test.json is what the dict-based profiles wrote for
    ``resolve_config("test", methods=[icfm, otcfm, ddpm, jko-flow], seed=3)`` (regenerate it only
    when a test-profile value changes on purpose: old folders are then refused, as they should)."""
    old = json.loads((DATA / "config-v1-test.json").read_text())
    cfg = resolve_config("test", methods=["icfm", "otcfm", "ddpm", "jko-flow"], seed=3)
    assert ReproduceConfig.from_json(old) == cfg
    assert json.dumps(cfg.to_json(), sort_keys=True) == json.dumps(old, sort_keys=True)
    (tmp_path / "config.json").write_text(json.dumps(old))
    prepare(tmp_path, cfg)  # the rerun goes ahead


def _add_key(d):
    d["learned"]["width_multiplier"] = 2


def _drop_experiment(d):
    del d["images"]


def _wrong_type(d):
    d["paths"]["grid"]["n"] = "32"


def _newer_version(d):
    d["version"] = 2


def _changed_value(d):
    d["learned"]["steps"] += 1


@pytest.mark.parametrize(
    "edit", [_add_key, _drop_experiment, _wrong_type, _newer_version, _changed_value]
)
def test_a_config_that_does_not_fit_is_refused_in_one_line(tmp_path, edit):
    old = json.loads((DATA / "config-v1-test.json").read_text())
    edit(old)
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = resolve_config("test", methods=["icfm", "otcfm", "ddpm", "jko-flow"], seed=3)
    with pytest.raises(ValueError, match="--out") as e:
        prepare(tmp_path, cfg)
    assert "\n" not in str(e.value) and "config" in str(e.value)
