"""Typed records to JSON and back (:mod:`wasserflow.experiments.records`), and verdicts made
of checks (:mod:`wasserflow.experiments.context`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from wasserflow.experiments import Check, Verdict
from wasserflow.experiments.records import FLATTEN, OMIT_NONE, from_json, to_json


@dataclass(frozen=True)
class _Leaf:
    value: float
    note: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class _Node:
    named: dict[str, _Leaf] = field(metadata=FLATTEN)
    t: tuple[float, ...] = ()


def test_records_keep_the_json_of_the_dicts_they_replace():
    node = _Node({"VP": _Leaf(1.0), "OT geodesic": _Leaf(0.0, "exact")}, (0.0, 0.5))
    doc = {"VP": {"value": 1.0}, "OT geodesic": {"value": 0.0, "note": "exact"}, "t": [0.0, 0.5]}
    assert to_json(node) == doc
    assert from_json(_Node, json.loads(json.dumps(doc))) == node
    with pytest.raises(ValueError, match=r"node\.VP has unknown key\(s\) valu"):
        from_json(_Node, {"VP": {"valu": 1.0}}, "node")
    with pytest.raises(ValueError, match=r"leaf\.value must be a number"):
        from_json(_Leaf, {"value": True}, "leaf")
    with pytest.raises(ValueError, match="misses the key 'value'"):
        from_json(_Leaf, {}, "leaf")


def test_a_verdict_holds_when_every_check_holds():
    ok, bad = Check("a", 1.0, "<", 2.0), Check("b", None, ">", 0.0)
    assert Verdict.judge([ok], "x") == Verdict(True, "holds: x", (ok,))
    v = Verdict.judge([ok, bad], "y")
    assert v.holds is False and v.text == "does not hold: y" and v.checks == (ok, bad)
    assert to_json(v)["checks"][1] == {"what": "b", "value": None, "relation": ">", "bound": 0.0}
    assert from_json(Verdict, {"holds": False, "text": "t"}) == Verdict(False, "t")  # as before
