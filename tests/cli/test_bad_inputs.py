"""Every bad input through the command line: one line on stderr, nothing on stdout that looks
like a result, a non-zero exit and no traceback (docs/design.md: bad input is one line naming
the problem and the fix)."""

import shlex
from fractions import Fraction

import numpy as np
import pytest
import torch
from _cli import run

T = "train --method icfm --data moons --out X"
S = "sample {run} --out {d}/s.npy"
E = "evaluate {run} --n 50"
W = "ot w2 {d}/pts.npy"
I = "ot interpolate {d}/pts.npy {d}/pts.npy -o {d}/g.png"  # noqa: E741
FP = "flow fp -o {d}/fp.png --steps 2"
JKO = "flow jko -o {d}/jko.png --steps 2"
REP = "reproduce --profile test --out {d}/rep"

BAD = {
    "train: no method": "train --out X",
    "train: no data": "train --method icfm --out X",
    "train: no out": "train --method icfm --data moons",
    "train: unknown method": "train --method nope --data moons --out X",
    "train: unknown data": "train --method icfm --data nosuchset --out X",
    "train: unknown option": T + " --bogus",
    "train: steps 0": T + " --steps 0",
    "train: batch size -1": T + " --batch-size -1",
    "train: lr text": T + " --lr abc",
    "train: lr negative": T + " --lr -1",
    "train: lr nan": T + " --lr nan",
    "train: lr inf": T + " --lr inf",
    "train: seed text": T + " --seed x",
    "train: unknown model": T + " --model unet9",
    "train: unet on points": T + " --model unet",
    "train: model-set unknown key": T + " --model-set widht=3",
    "train: model-set no value": T + " --model-set novalue",
    "train: model-set bad value": T + " --model-set width=-3",
    "train: set unknown key": T + " --set lr=3",
    "train: set unknown dotted key": T + " --set objective.predictoin=x1",
    "train: set no value": T + " --set prediction",
    "train: set bad value": T + " --set time_input=clock",
    "train: set bad section": T + " --set nosection.key=1",
    "train: scale": T + " --scale bogus",
    "train: grad clip negative": T + " --grad-clip -1",
    "train: device tpu": T + " --device tpu",
    "train: device cuda": T + " --device cuda",
    "train: activation": T + " --activation nope",
    "train: time embedding": T + " --time-embedding nope",
    "train: width 0": T + " --width 0",
    "train: nproc 0": T + " --nproc 0",
    "train: resume nothing": "train --resume --out {d}/none",
    "train: resume empty folder": "train --resume --out {d}/empty",
    "train: into a run without resume": "train --method icfm --data moons --out {run}",
    "train: resume another method": "train --resume --method otcfm --out {run}",
    "train: out is a file": "train --method icfm --data moons --out {d}/pts.npy",
    "train: missing points file": "train --method icfm --data {d}/missing.npy --out X",
    "train: nan points file": "train --method icfm --data {d}/nan.npy --out X",
    "train: text points file": "train --method icfm --data {d}/text.csv --out X",
    "train: empty points file": "train --method icfm --data {d}/empty.csv --out X",
    "train: mnist folder without IDX": "train --method icfm --data mnist:{d}/empty --out X",
    "train: mnist no path": "train --method icfm --data mnist: --out X",
    "train: cifar missing": "train --method icfm --data cifar10:{d}/missing --out X",
    "train: images empty folder": "train --method icfm --data images:{d}/empty --out X",
    "train: digits with unet": "train --method otcfm --data digits --model unet --out X",
    "train: unet size unknown": "train --method otcfm --data digits_images --model unet --model-set size=huge --out X",
    "train: unet size mismatch": "train --method otcfm --data digits_images --model unet --model-set size=mnist --out X",
    "train: flip on points": "train --method icfm --data moons,flip --out X",
    "train: pickled points": "train --method icfm --data {d}/pickled.pt --out X",
    "sample: suffix": "sample {run} --out {d}/s.txt",
    "sample: no run": "sample {d}/none --out {d}/s.npy",
    "sample: folder without run": "sample {d}/empty --out {d}/s.npy",
    "sample: sampler": S + " --sampler nope",
    "sample: nfe 0": S + " --nfe 0",
    "sample: n 0": S + " --n 0",
    "sample: no out": "sample {run}",
    "sample: parent is a file": "sample {run} --out {d}/pts.npy/s.npy",
    "sample: device cuda": S + " --device cuda",
    "sample: sampler of another family": S + " --sampler ancestral",
    "train: grad clip nan": T + " --grad-clip nan",
    "evaluate: nothing": "evaluate",
    "evaluate: no run": "evaluate {d}/none",
    "evaluate: nfe text": E + " --nfe 1,x",
    "evaluate: nfe 0": E + " --nfe 0",
    "evaluate: n 1": "evaluate {run} --n 1",
    "evaluate: features": E + " --features nope",
    "evaluate: grids on points": E + " --grids {d}/g",
    "evaluate: sampler": E + " --sampler nope",
    "evaluate: data with a run": E + " --data moons",
    "evaluate: from hf": "evaluate --from hf:X --data moons",
    "evaluate: from without data": "evaluate --from diffusers:X",
    "evaluate: from missing folder": "evaluate --from diffusers:{d}/none --data moons",
    "evaluate: torchcfm missing": "evaluate --from torchcfm:{d}/none.pt --model mlp --data moons",
    "evaluate: torchcfm not a checkpoint": "evaluate --from torchcfm:{d}/text.csv --model mlp --data moons",
    "evaluate: torchcfm no model": "evaluate --from torchcfm:{d}/none.pt --data moons",
    "evaluate: device cuda": E + " --device cuda",
    "evaluate: feature file missing": E + " --features {d}/none.safetensors",
    "reproduce: experiment": REP + " nonsense",
    "reproduce: profile": "reproduce --profile bogus --out {d}/rep",
    "reproduce: methods": REP + " --methods bogus",
    "reproduce: device tpu": REP + " --device tpu",
    "reproduce: device cuda": REP + " --device cuda",
    "reproduce: data": REP + " learned --data nosuchset",
    "reproduce: image data": REP + " images --image-data mnist:{d}/none",
    "reproduce: out is a file": "reproduce --profile test --out {d}/pts.npy",
    "reproduce: seed -1": REP + " --seed -1",
    "demo: n 1": "demo --n 1 --out {d}/demo",
    "demo: out is a file": "demo --n 20 --out {d}/pts.npy",
    "w2: missing Y": W,
    "w2: missing file": W + " {d}/none.npy",
    "w2: empty file": W + " {d}/empty.csv",
    "w2: text file": W + " {d}/text.csv",
    "w2: nan": W + " {d}/nan.npy",
    "w2: inf": W + " {d}/inf.npy",
    "w2: huge": W + " {d}/huge.npy",
    "w2: dimension": W + " {d}/three.npy",
    "w2: suffix": W + " {d}/pts.txt",
    "w2: folder": W + " {d}/empty",
    "w2: pickle": W + " {d}/pickled.pt",
    "w2: method": W + " {d}/pts.npy --method bogus",
    "w2: 1d in 2-D": W + " {d}/pts.npy --method 1d",
    "w2: epsilon negative": W + " {d}/pts.npy --method sinkhorn --epsilon -1",
    "w2: epsilon nan": W + " {d}/pts.npy --method sinkhorn --epsilon nan",
    "w2: projections 0": W + " {d}/pts.npy --method sliced --n-projections 0",
    "w2: huge sliced": W + " {d}/huge.npy --method sliced",
    "w2: huge sinkhorn": W + " {d}/huge.npy --method sinkhorn",
    "interpolate: frames 1": I + " --frames 1",
    "interpolate: dims text": I + " --dims a",
    "interpolate: dims out of range": I + " --dims 0,5",
    "interpolate: out parent is a file": "ot interpolate {d}/pts.npy {d}/pts.npy -o {d}/pts.npy/g.png",
    "interpolate: out is a folder": "ot interpolate {d}/pts.npy {d}/pts.npy -o {d}/empty",
    "interpolate: huge": "ot interpolate {d}/pts.npy {d}/huge.npy -o {d}/g.png",
    "fp: dim 3": FP + " --dim 3",
    "fp: import": FP + " --potential \"__import__('os')\"",
    "fp: attribute": FP + " --potential 'x.sum()'",
    "fp: overflow": FP + " --potential '9**9**9'",
    "fp: division by zero": FP + " --potential 1/0",
    "fp: syntax": FP + " --potential 'sum(x'",
    "fp: unknown function": FP + " --potential 'nope(x)'",
    "fp: index": FP + " --potential 'x[:, 5]'",
    "fp: missing file": FP + " --potential {d}/none.txt",
    "fp: not finite": FP + " --potential 'log(x[:, 0] - 5)'",
    "fp: box": FP + " --box -1",
    "fp: cells": FP + " --cells 2",
    "fp: start std": FP + " --start-std 0",
    "fp: t final 0": FP + " --t-final 0",
    "fp: t final nan": FP + " --t-final nan",
    "fp: steps 0": FP + " --steps 0",
    "fp: scheme": FP + " --scheme bogus",
    "fp: frames 1": FP + " --frames 1",
    "fp: out parent is a file": "flow fp -o {d}/pts.npy/fp.png",
    "jko: solver": JKO + " --solver bogus",
    "jko: h 0": JKO + " --h 0",
    "jko: h nan": JKO + " --h nan",
    "jko: gaussian solver on gmm": JKO + " --solver gaussian --potential gmm",
    "jko: particles 5": JKO + " --solver particles --particles 5",
    "jko: dim 0": JKO + " --dim 0",
    "jko: cells 3": JKO + " --cells 3",
    "jko: box nan": JKO + " --box nan",
    "unknown command": "nosuchcommand",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    np.save(d / "pts.npy", rng.normal(size=(40, 2)))
    np.save(d / "nan.npy", np.array([[0.0, np.nan], [1.0, 1.0]]))
    np.save(d / "inf.npy", np.array([[0.0, np.inf], [1.0, 1.0]]))
    np.save(d / "huge.npy", np.array([[1e300, 0.0], [0.0, 1.0]]))
    np.save(d / "three.npy", np.zeros((5, 3)))
    np.savetxt(d / "pts.txt", np.zeros((5, 2)))
    (d / "empty.csv").write_text("")
    (d / "text.csv").write_text("1.0,2.0\nfoo,bar\n")
    (d / "empty").mkdir()
    torch.save({"x": Fraction(1, 2)}, d / "pickled.pt")
    run_dir = d / "run"
    argv = ["train", "--method", "icfm", "--data", "moons", "--steps", "5", "--width", "8"]
    argv += ["--depth", "1", "--batch-size", "16", "--out", str(run_dir)]
    from wasserflow.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
        raise SystemExit(0)
    assert (e.value.code or 0) == 0
    return d, run_dir


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_input_is_one_line_and_a_non_zero_exit(name, files, capsys, tmp_path, monkeypatch):
    d, run_dir = files
    monkeypatch.chdir(tmp_path)
    argv = [a.format(d=d, run=run_dir) for a in shlex.split(BAD[name])]
    code, out, err = run(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, 1), (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "X").exists()  # refused before anything is written
