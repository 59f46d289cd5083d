"""``wasserflow evaluate --from``: a saved diffusers folder and a TorchCFM checkpoint evaluated
end to end, and every wrong combination refused in one line (exit 2)."""

import json
from dataclasses import dataclass

import pytest
import torch
from _tiny import image_data, save_model_folder, torchcfm_unet
from diffusers import DDIMScheduler

from wasserflow.cli import main


def run(argv, capsys):
    """(exit code, stdout, stderr) of ``wasserflow argv``."""
    with pytest.raises(SystemExit) as e:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def _evaluate(capsys, *args):
    code, out, err = run(
        ["evaluate", *args, "--nfe", "1,3", "--n", "8", "--features", "none", "--json"], capsys
    )
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return image_data(tmp_path_factory.mktemp("data") / "x.npy")


def test_diffusers_folder_end_to_end(tmp_path, capsys, spec):
    folder = save_model_folder(tmp_path / "ddpm", DDIMScheduler(clip_sample=False))
    res = _evaluate(capsys, "--from", f"diffusers:{folder}", "--data", spec)
    assert res["method"] == "diffusers"
    rows = res["results"]
    assert [r["nfe"] for r in rows] == [1, 3] and all(r["sampler"] == "ddim" for r in rows)
    assert all(r["w2"] > 0 for r in rows)
    # the same numbers as from Python
    from wasserflow.interop import from_diffusers
    from wasserflow.metrics import evaluate_run

    py = evaluate_run(from_diffusers(folder, data=spec), [1, 3], n=8)
    assert [r.w2 for r in py] == [r["w2"] for r in rows]


def test_torchcfm_checkpoint_end_to_end(tmp_path, capsys, spec):
    ckpt = tmp_path / "otcfm.pt"
    torch.save({"net_model": torchcfm_unet(0).state_dict(), "step": 100}, ckpt)
    sizes = ["channels=32", "channel_mult=[1,2]", "attention_resolutions=[4]", "head_channels=16"]
    args = ["--from", f"torchcfm:{ckpt}#net_model", "--model", "unet", "--data", spec]
    for s in ["size=mnist", *sizes]:
        args += ["--model-set", s]
    res = _evaluate(capsys, *args, "--sampler", "euler")
    rows = res["results"]
    assert res["method"] == "torchcfm" and [r["nfe"] for r in rows] == [1, 3]
    assert all(r["action"] is not None for r in rows)  # Euler's path energy


@dataclass
class Flags:
    lr: float = 1e-3


def test_a_pickled_checkpoint_is_refused_in_one_line(tmp_path, capsys, spec):
    ckpt = tmp_path / "pickled.pt"
    torch.save({"net_model": torchcfm_unet(0).state_dict(), "flags": Flags()}, ckpt)
    args = ["evaluate", "--from", f"torchcfm:{ckpt}", "--model", "unet", "--data", spec]
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "unpickling arbitrary" in err


@pytest.mark.parametrize(
    "args,match",
    [
        ([], "give a run folder, or an external model"),
        (["RUN", "--from", "diffusers:X", "--data", "moons"], "not both"),
        (["--from", "hf:X", "--data", "moons"], "write diffusers:DIR"),
        (["--from", "diffusers:X"], "give --data SPEC"),
        (["--from", "torchcfm:X.pt", "--data", "moons"], "name the network with --model"),
        (
            ["--from", "diffusers:X", "--model", "unet", "--data", "moons"],
            "go with --from torchcfm",
        ),
        (["RUN", "--data", "moons"], "--data go with --from"),
        (["--from", "diffusers:/no/such/folder", "--data", "moons"], "is not a folder"),
    ],
)
def test_wrong_combinations_are_refused_in_one_line(args, match, capsys):
    code, out, err = run(["evaluate", *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert match in " ".join(err.split())


@pytest.mark.parametrize("data", ["digits", "flat.npy"])
def test_flat_data_for_an_image_model_names_the_image_form(tmp_path, capsys, data):
    """``--data digits`` for a model of 8 x 8 images: the message names digits_images; a
    flat points file of as many values says how to give it as images."""
    import numpy as np

    ckpt = tmp_path / "otcfm.pt"
    torch.save({"net_model": torchcfm_unet(0).state_dict()}, ckpt)
    np.save(tmp_path / "flat.npy", np.zeros((10, 64)))
    spec = data if data == "digits" else str(tmp_path / data)
    args = ["evaluate", "--from", f"torchcfm:{ckpt}", "--model", "unet", "--data", spec]
    for s in ["size=mnist", "channels=32", "channel_mult=[1,2]", "attention_resolutions=[4]"]:
        args += ["--model-set", s]
    code, out, err = run([*args, "--model-set", "head_channels=16"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    if data == "digits":
        assert "give digits_images (the same points in shape [1, 8, 8])" in err
    else:
        assert "give the data as images (array:FILE of shape (N, C, H, W))" in err


@pytest.mark.parametrize("data", ["digits", "flat.npy"])
def test_flat_data_for_a_diffusers_model_names_the_image_form(tmp_path, capsys, data):
    import numpy as np

    folder = save_model_folder(tmp_path / "ddpm", DDIMScheduler(clip_sample=False))
    np.save(tmp_path / "flat.npy", np.zeros((10, 64)))
    spec = data if data == "digits" else str(tmp_path / data)
    code, out, err = run(["evaluate", "--from", f"diffusers:{folder}", "--data", spec], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    if data == "digits":
        assert "give digits_images (the same points in shape [1, 8, 8])" in err
    else:
        assert "write the points as an array of shape (N, 1, 8, 8) and give array:FILE" in err
