"""A reproduce run over several seeds (the ``full`` profile's 3): one complete run folder per
seed, a verdict that holds only where it holds on every seed, the spread of each check over the
seeds, resumed like a one-seed run."""

from __future__ import annotations

import dataclasses
import json
import statistics

import pytest

from wasserflow.experiments import EXPERIMENTS, ReproduceConfig, reproduce, resolve_config
from wasserflow.experiments.context import Check, ExperimentResult, Table, Verdict
from wasserflow.experiments.spread import Spread, across_seeds
from wasserflow.metrics import Interval

CHEAP = ["free-energy", "denoise-jko"]


def _stub(monkeypatch, name, run):
    monkeypatch.setitem(EXPERIMENTS, name, dataclasses.replace(EXPERIMENTS[name], run=run))


def test_profiles_name_their_seeds_and_bad_counts_are_refused():
    assert resolve_config("full").seeds == 3 and resolve_config("default").seeds == 1
    cfg = resolve_config("test", seed=4, seeds=2)
    assert cfg.seed_list == (4, 5) and cfg.single(5).seed_list == (5,)
    assert ReproduceConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    assert "seeds" not in resolve_config("test").to_json()  # one seed: the old layout
    for bad in (0, -1, 2.5, True, 101):
        with pytest.raises(ValueError, match="seeds must be an integer") as e:
            resolve_config("test", seeds=bad)
        assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds")
    res = reproduce(out, resolve_config("test", seed=3, seeds=2), experiments=CHEAP)
    return out, res


def test_each_seed_is_a_complete_run_and_the_top_folder_joins_them(two_seeds):
    out, res = two_seeds
    for seed in (3, 4):
        sub = out / f"seed-{seed}"
        assert json.loads((sub / "config.json").read_text())["seed"] == seed
        assert json.loads((sub / "environment.json").read_text())["seed"] == seed
        assert {p.stem for p in (sub / "results").glob("*.json")} == set(CHEAP)
    top = json.loads((out / "results.json").read_text())
    assert top["seeds"] == [3, 4] and set(top["experiments"]) == set(CHEAP)
    fe = top["experiments"]["free-energy"]["numbers"]["per_seed"]
    sub = [
        json.loads((out / f"seed-{s}" / "results" / "free-energy.json").read_text())["numbers"]
        for s in (3, 4)
    ]
    assert [fe["3"], fe["4"]] == sub
    assert fe["3"] != fe["4"]  # the seeds sample differently
    md = (out / "report.md").read_text()
    assert "seeds 3, 4" in md and "The verdict's checks on each seed" in md
    assert "seed-3/report.html" in md
    assert res["denoise-jko"].verdict.holds is True
    assert res["denoise-jko"].verdict.text.startswith("holds on every one of 2 seeds")


def test_a_rerun_resumes_every_seed(two_seeds, monkeypatch):
    out, _ = two_seeds

    def boom(ctx):
        raise AssertionError("a finished experiment was run again")

    for name in CHEAP:
        _stub(monkeypatch, name, boom)
    res = reproduce(out, resolve_config("test", seed=3, seeds=2), experiments=CHEAP)
    assert set(res) == set(CHEAP)
    with pytest.raises(ValueError, match="--out"):
        reproduce(out, resolve_config("test", seed=3, seeds=3), experiments=CHEAP)


def _result(checks: list[Check], pending: bool = False) -> ExperimentResult:
    verdict = Verdict(None, "pending") if pending else Verdict.judge(checks, "text")
    table = Table("t", ["a"], [[1]])
    return ExperimentResult("x", "X", "claim", verdict, {"k": 1}, tables=[table])


def test_a_verdict_that_fails_on_one_seed_does_not_hold_and_the_spread_is_the_sample_spread():
    iv = [Interval(v, v - 0.1, v + 0.1, 0.95, "mean", 100) for v in (1.0, 2.0, 4.0)]
    results = [_result([Check("w2", v, "<", 3.0)]) for v in iv]
    joined = across_seeds([0, 1, 2], results, ["seed-0", "seed-1", "seed-2"])
    assert joined.verdict.holds is False
    assert "holds on 2 of 3 seeds; seed 2: does not hold" in joined.verdict.text
    spread = joined.tables[0]
    row = spread.rows[0]
    assert row[0] == "w2" and row[-1] == "2 of 3" and row[3] == "4 +- 0.1 < 3"
    sd = statistics.stdev([1.0, 2.0, 4.0])  # 1.5275
    assert row[4].startswith(f"2.333 +- {sd:.2g} (sd of 3; 1 to 4)")
    assert row[5] == "3"  # a fixed bound is one number
    assert joined.tables[1].title == "t (seed 0)"
    pending = across_seeds([0, 1], [results[0], _result([], pending=True)], ["a", "b"])
    assert pending.verdict.holds is None
    assert str(Spread((None, float("nan")))) == "n/a"


def test_checks_with_intervals_are_saved_with_the_result():
    gap = Interval(None, 0.0, None, 0.95, "rotation", 2000)
    res = _result([Check("gap", gap, ">", 0.0), Check("nfe", 3, "<", 8.0)])
    back = ExperimentResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.verdict == res.verdict and back.verdict.checks[0].value == gap


def test_the_command_line_takes_seeds(tmp_path, capsys):
    from wasserflow.cli.app import main

    main(["reproduce", "denoise-jko", "--profile", "test", "--seeds", "2", "--out", str(tmp_path)])
    assert (tmp_path / "seed-1" / "results" / "denoise-jko.json").is_file()
    assert "denoise-jko: holds" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--seeds", "0", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
