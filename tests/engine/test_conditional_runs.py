"""Class-conditional runs (engine): every network method trains on labelled batches and samples
a class with guidance; the number of classes comes from the data; a conditional run resumes
bit for bit; contradictory settings are refused in one line."""

import json

import pytest
import torch

from wasserflow.cli import main
from wasserflow.engine import METHODS, load_run, make_config, train_run
from wasserflow.engine.checkpoint import load as load_checkpoint

NETWORK_METHODS = [m for m in METHODS if m != "jko-flow"]
SMALL = {
    "rectified-flow": {"reflow.pairs": 128, "reflow.nfe": 4},
    "energy-matching": {"objective.negative_steps": 3},
    # its conditional teacher (otcfm) trained first, 8 steps; 128 labelled trajectories
    "flowmap-distill": {"objective.pairs": 128, "objective.teacher_steps": 8},
}


@pytest.mark.parametrize("method", NETWORK_METHODS)
def test_every_network_method_trains_and_samples_conditionally(method, tmp_path):
    overrides = {"condition": {}, **SMALL.get(method, {})}
    cfg = make_config(method, "gmm2d", steps=6, batch_size=48, overrides=overrides)
    assert cfg.condition.num_classes is None  # fixed from the data when training starts
    train_run(cfg, tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["condition"] == {"num_classes": 3, "label_dropout": 0.1}
    r = load_run(tmp_path)
    assert r.num_classes == 3
    res = r.sample(30, nfe=4, labels=torch.arange(3).repeat(10), guidance=2.0,
                   generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.isfinite(res.x).all() and res.passes == res.nfe and res.rows == 60 * res.nfe
    assert torch.isfinite(r.sample(10, nfe=4).x).all()  # no labels: the unconditional model


def test_a_guided_teacher_needs_a_conditional_student_and_an_unguided_sampler(tmp_path, capsys):
    with pytest.raises(ValueError, match="train the student with --conditional") as e:
        make_config("flowmap-distill", "gmm2d", overrides={"objective.teacher_guidance": 2})
    assert "\n" not in str(e.value)
    over = {"condition": {}, **SMALL["flowmap-distill"], "objective.teacher_guidance": 2.0}
    train_run(make_config("flowmap-distill", "gmm2d", steps=4, overrides=over), tmp_path)
    run = load_run(tmp_path)
    assert run.context().distilled_guidance == 2.0
    run.sample(10, labels=1)  # its own jumps: the guided teacher's
    with pytest.raises(ValueError, match="guided at s = 2 .* sample it without guidance"):
        run.sample(10, labels=1, guidance=2.0)
    with pytest.raises(SystemExit) as e:
        main(
            ["sample", str(tmp_path), "--class", "1", "--n", "10", "--out", str(tmp_path / "x.npy")]
        )
        raise SystemExit(0)
    assert (e.value.code or 0) == 0
    assert "guidance s = 2 (w = 1), distilled into the model" in capsys.readouterr().out


class _Stop(Exception):
    pass


def _stop_at(step):
    def progress(stage, s, record):
        if s == step:
            raise _Stop

    return progress


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("otcfm", {}),
        ("otcfm", {"per_class": False, "ot_batch": 64}),
        ("sbcfm", {}),
        ("meanflow-ot", {}),
        ("flowmap-distill", SMALL["flowmap-distill"]),
    ],
    ids=[
        "otcfm-stream-per-class",
        "otcfm-blind-blocks",
        "sbcfm-entropic-in-loss",
        "meanflow-ot-flow-map",
        "flowmap-distill-labelled-frames",
    ],
)
def test_a_conditional_run_resumes_bit_for_bit(method, extra, tmp_path):
    over = {"condition": {}, "train.checkpoint_every": 10, "train.log_every": 10, **extra}
    cfg = make_config(method, "gmm2d", steps=30, batch_size=32, overrides=over)
    train_run(cfg, tmp_path / "full")
    with pytest.raises(_Stop):
        train_run(cfg, tmp_path / "part", progress=_stop_at(25))
    train_run(cfg, tmp_path / "part", resume=True)
    a, _ = load_checkpoint(tmp_path / "full" / "checkpoint.safetensors")
    b, _ = load_checkpoint(tmp_path / "part" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and any(
        k.startswith(("model.cond.", "model.backbone.cond.")) for k in a
    )
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_conditional_settings_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="trains no network"):
        make_config("jko-flow", "gmm2d", overrides={"condition": {}})
    with pytest.raises(ValueError, match="per_class false.*needs condition"):
        make_config("otcfm", "gmm2d", overrides={"per_class": False})
    with pytest.raises(ValueError, match="label_dropout must lie in"):
        make_config("icfm", "gmm2d", overrides={"condition.label_dropout": 1.5})
    cfg = make_config("icfm", "gaussian2d", steps=2, overrides={"condition": {}})
    with pytest.raises(ValueError, match="has no labels.*class-conditional"):
        train_run(cfg, tmp_path / "a")
    cfg = make_config("icfm", "gmm2d", steps=2, overrides={"condition.num_classes": 5})
    with pytest.raises(ValueError, match="num_classes is 5 but gmm2d has 3"):
        train_run(cfg, tmp_path / "b")
    r = load_run(_trained(tmp_path / "c", conditional=False))
    with pytest.raises(ValueError, match="not class-conditional"):
        r.sample(4, labels=1)
    with pytest.raises(ValueError, match="needs the classes"):
        load_run(_trained(tmp_path / "d")).sample(4, guidance=2.0)


def _trained(out, conditional=True):
    over = {"condition": {}} if conditional else {}
    train_run(make_config("icfm", "gmm2d", steps=4, batch_size=32, overrides=over), out)
    return out
