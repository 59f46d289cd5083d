"""Train the feature networks shipped in src/wasserflow/metrics/weights/ (deterministic, CPU).

    .venv/bin/python scripts/train_feature_nets.py                  # both
    .venv/bin/python scripts/train_feature_nets.py --only digits8   # scikit-learn digits only
    .venv/bin/python scripts/train_feature_nets.py --mnist DIR      # the MNIST test set's folder

* digits8: scikit-learn's 1,797 digits (8 x 8, pixels v / 8 - 1), trained on the first 1,297,
  evaluated on the last 500.
* mnist28: the 10,000 MNIST test images (IDX, t10k-images-idx3-ubyte.gz and
  t10k-labels-idx1-ubyte.gz in --mnist, default ../shared/data/mnist), trained on the first
  8,000, evaluated on the last 2,000.

Both: Adam with cosine-decayed step size, random shifts of the digits as augmentation, every
random number from one seeded torch.Generator (weights included), one CPU thread by default,
so a rerun writes the same weights. Each file is written atomically with its architecture,
data split and held-out accuracy in the safetensors metadata; the accuracies are printed.
"""

from __future__ import annotations

import argparse
import gzip
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wasserflow.data.image_files import load_idx_images
from wasserflow.data.images import load_digits_images, load_digits_labels
from wasserflow.metrics.features import WEIGHTS_DIR, SmallCNN, SmallCNNSpec, save_feature_net

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "digits8": dict(
        spec=SmallCNNSpec((1, 8, 8), ((32, 32), (64, 64)), feature_dim=64),
        n_train=1297,
        epochs=60,
        batch=64,
        lr=2e-3,
        shift=1,
    ),
    "mnist28": dict(
        spec=SmallCNNSpec((1, 28, 28), ((32, 32), (64, 64), (64,)), feature_dim=128),
        n_train=8000,
        epochs=15,
        batch=64,
        lr=2e-3,
        shift=2,
    ),
}


def read_idx_labels(path: Path) -> torch.Tensor:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    magic, n = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")
    if magic != 0x00000801 or len(data) != 8 + n:
        raise SystemExit(f"{path}: not an IDX labels file (magic 0x{magic:08x})")
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int64))


def init_weights(net: torch.nn.Module, g: torch.Generator) -> None:
    """He-normal weights, zero biases, drawn from ``g`` (not the global generator)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan_in))


def random_shift(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    """Shift each image by (dy, dx) uniform in {-s..s}^2, filling with the background -1."""
    n, _, h, w = x.shape
    pad = F.pad(x, (s, s, s, s), value=-1.0)
    dy = torch.randint(0, 2 * s + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 1, h, w + 2 * s)
    pad = pad.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 1, h, w)
    return pad.gather(3, cols)


@torch.no_grad()
def accuracy(net: SmallCNN, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return float((pred == y).double().mean())


def train(name: str, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[SmallCNN, dict]:
    cfg = CONFIGS[name]
    n_train = cfg["n_train"]
    g = torch.Generator().manual_seed(seed)
    net = SmallCNN(cfg["spec"])
    init_weights(net, g)
    xt, yt = x[:n_train], y[:n_train]
    xh, yh = x[n_train:], y[n_train:]
    steps_per_epoch = math.ceil(n_train / cfg["batch"])
    total = cfg["epochs"] * steps_per_epoch
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"], weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total) / total))
    )
    t0 = time.perf_counter()
    for epoch in range(cfg["epochs"]):
        net.train()
        perm = torch.randperm(n_train, generator=g)
        for i in range(0, n_train, cfg["batch"]):
            idx = perm[i : i + cfg["batch"]]
            xb = random_shift(xt[idx], cfg["shift"], g)
            loss = F.cross_entropy(net(xb), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if epoch % 5 == 4 or epoch == cfg["epochs"] - 1:
            print(
                f"  {name} epoch {epoch + 1}/{cfg['epochs']}: loss {loss.item():.4f}, "
                f"held-out accuracy {accuracy(net, xh, yh):.4f} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    acc = accuracy(net, xh, yh)
    info = {
        "name": name,
        "train_range": [0, n_train],
        "held_out_range": [n_train, len(x)],
        "held_out_accuracy": acc,
        "held_out_correct": round(acc * len(xh)),
        "seed": seed,
        "epochs": cfg["epochs"],
        "trained_by": "scripts/train_feature_nets.py",
        "torch": torch.__version__,
    }
    return net, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(CONFIGS), help="train one network")
    ap.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in [args.only] if args.only else sorted(CONFIGS):
        if name == "digits8":
            x, y = load_digits_images(), load_digits_labels()
            data = "scikit-learn load_digits (1,797 images), pixels v / 8 - 1"
        else:
            x = load_idx_images(args.mnist / "t10k-images-idx3-ubyte.gz")
            y = read_idx_labels(args.mnist / "t10k-labels-idx1-ubyte.gz")
            data = "MNIST test set t10k-images-idx3-ubyte (10,000 images), pixels v / 127.5 - 1"
        t0 = time.perf_counter()
        net, info = train(name, x, y, args.seed)
        info["data"] = data
        path = args.out / f"{name}.safetensors"
        save_feature_net(path, net, info)
        n_params = sum(p.numel() for p in net.parameters())
        print(
            f"{name}: held-out accuracy {info['held_out_accuracy']:.4f} "
            f"({info['held_out_correct']}/{info['held_out_range'][1] - info['held_out_range'][0]}), "
            f"{n_params} parameters, {path.stat().st_size} bytes, "
            f"{time.perf_counter() - t0:.0f} s -> {path}",
            flush=True,
        )


if __name__ == "__main__":
    main()
