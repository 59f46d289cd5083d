"""InceptionV3 as FID uses it (the TensorFlow 2015-12-05 graph), defined here, weights from a file.

No torchvision: the network is written out here, block by block, with the module names of
torchvision's ``Inception3`` (``Conv2d_1a_3x3`` ... ``Mixed_7c``, ``fc``), so its state dict
has exactly the keys and shapes of the weight files of pytorch-fid
(``pt_inception-2015-12-05-6726825d.pth``) and torch-fidelity
(``weights-inception-2015-12-05-6726825d.pth``): both are that state dict of the TensorFlow
graph's weights (1,008 classes, no auxiliary head). The FID variant differs from torchvision's
ImageNet InceptionV3 in the pooling branch of its blocks, as pytorch-fid's
``FIDInceptionA/C/E`` describe: the 3x3 average pools of the A, C and first E blocks leave
the zero padding out of the mean (TensorFlow's ``count_include_pad=False``), and the last E
block pools with a 3x3 *max*; every convolution is followed by batch norm (eps 1e-3) and ReLU.

Features: the 2,048-d output of the final global average pool ("pool3"). Inputs are images in
[-1, 1] (wasserflow's pixel range), (n, C, H, W) with C = 1 (repeated to 3 channels) or 3,
resized bilinearly to 299 x 299 (``align_corners=False``); pytorch-fid takes [0, 1] images,
resizes them the same way and maps them by 2x - 1, the same numbers since an affine map of
the pixels commutes with bilinear interpolation. torch-fidelity resizes 8-bit images with its
port of TensorFlow 1's bilinear resize, so FID at sizes other than 299 differs slightly
between the two libraries (at 299 x 299 the resize is the identity in both).

The weights file is never downloaded here. :func:`inception_weights_path` looks at the
argument, then the environment variable ``WASSERFLOW_INCEPTION_WEIGHTS``, then
``~/.cache/wasserflow/`` for either file name; it is read with
``torch.load(weights_only=True)`` (no arbitrary unpickling) or as ``.safetensors``.

References: Szegedy et al. (2016), "Rethinking the Inception architecture for computer
vision"; Heusel et al. (2017) (FID); pytorch-fid (M. Seitzer) and torch-fidelity (A. Obukhov et
al.), whose published weight files this loads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError

__all__ = [
    "INCEPTION_FILE_NAMES",
    "INCEPTION_URL",
    "InceptionV3FID",
    "inception_weights_path",
    "load_inception",
    "load_inception_state_dict",
]

INCEPTION_FILE_NAMES: tuple[str, ...] = (
    "pt_inception-2015-12-05-6726825d.pth",
    "weights-inception-2015-12-05-6726825d.pth",
)
"""pytorch-fid's and torch-fidelity's names of the FID InceptionV3 weights."""
INCEPTION_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
"""Where pytorch-fid publishes the weights (to be fetched on a machine with internet)."""
ENV_VAR = "WASSERFLOW_INCEPTION_WEIGHTS"
INPUT_SIZE = 299
FEATURE_DIM = 2048


class _ConvBN(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3) -> ReLU; keys ``conv.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: Tensor) -> Tensor:
    """3x3 stride-1 average pool whose mean leaves the zero padding out (TensorFlow's)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max3(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


class _BlockA(nn.Module):
    """35 x 35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 (Mixed_5b/c/d)."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 64, 1)
        self.branch5x5_1 = _ConvBN(cin, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg3(x))], dim=1)


class _BlockB(nn.Module):
    """35 -> 17 reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2 (Mixed_6a)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], dim=1)


class _BlockC(nn.Module):
    """17 x 17 block with factorised 7x7 convolutions (Mixed_6b/c/d/e)."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 192, 1)
        self.branch7x7_1 = _ConvBN(cin, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], dim=1)


class _BlockD(nn.Module):
    """17 -> 8 reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2 (Mixed_7a)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = _ConvBN(cin, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], dim=1)


class _BlockE(nn.Module):
    """8 x 8 block with split 1x3 / 3x1 outputs (Mixed_7b: average pool, Mixed_7c: max pool)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = _avg3 if pool == "avg" else _max3
        self.branch1x1 = _ConvBN(cin, 320, 1)
        self.branch3x3_1 = _ConvBN(cin, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        parts = [
            self.branch1x1(x),
            self.branch3x3_2a(s),
            self.branch3x3_2b(s),
            self.branch3x3dbl_3a(d),
            self.branch3x3dbl_3b(d),
            self.branch_pool(self.pool(x)),
        ]
        return torch.cat(parts, dim=1)


class InceptionV3FID(nn.Module):
    """The FID InceptionV3 up to its 2,048-d pool3 features (and the 1,008-way ``fc``).

    ``forward(x)``: x (n, 1 or 3, H, W) in [-1, 1] -> (n, 2048) pool3 features (module doc).
    ``fc`` is kept only so the published state dicts load strictly; it is not used.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _BlockA(192, 32)
        self.Mixed_5c = _BlockA(256, 64)
        self.Mixed_5d = _BlockA(288, 64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, 128)
        self.Mixed_6c = _BlockC(768, 160)
        self.Mixed_6d = _BlockC(768, 160)
        self.Mixed_6e = _BlockC(768, 192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, "avg")
        self.Mixed_7c = _BlockE(2048, "max")
        self.fc = nn.Linear(FEATURE_DIM, 1008)

    @staticmethod
    def prepare(x: Tensor) -> Tensor:
        """(n, 1|3, H, W) in [-1, 1] -> (n, 3, 299, 299), the network's input."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise InputError(
                f"InceptionV3 takes images (n, 1 or 3, H, W), got shape {tuple(x.shape)}: "
                "convert RGBA or other channel counts to RGB first"
            )
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(
                x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False
            )
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.prepare(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


def _how_to_get() -> str:
    home = Path.home() / ".cache" / "wasserflow" / INCEPTION_FILE_NAMES[0]
    return (
        f"on a machine with internet download {INCEPTION_FILE_NAMES[0]} from {INCEPTION_URL} "
        f"(pytorch-fid's file; torch-fidelity's {INCEPTION_FILE_NAMES[1]} works too) and put "
        f"it at {home}, or set {ENV_VAR}=/path/to/the/file, or pass its path"
    )


def inception_weights_path(path: str | os.PathLike | None = None) -> Path:
    """The weights file: ``path``, else ``$WASSERFLOW_INCEPTION_WEIGHTS``, else the first of
    :data:`INCEPTION_FILE_NAMES` in ``~/.cache/wasserflow/``. A missing file raises
    :class:`~wasserflow.errors.InputError` saying where to put it and how to get it."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"InceptionV3 weights file {str(p)!r} not found: {_how_to_get()}")
        return p
    cache = Path.home() / ".cache" / "wasserflow"
    for name in INCEPTION_FILE_NAMES:
        if (cache / name).is_file():
            return cache / name
    raise InputError(
        f"InceptionV3 weights for FID not found ({ENV_VAR} unset, none of "
        f"{', '.join(INCEPTION_FILE_NAMES)} in {cache}): {_how_to_get()}"
    )


def _map_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The published files' keys onto this module's: strip a ``module.`` prefix (a
    DataParallel save) and drop batch norm's ``num_batches_tracked`` counters (unused in
    eval mode; older files lack them)."""
    out = {}
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module.") :]
        if k.endswith("num_batches_tracked"):
            continue
        out[k] = v
    return out


def load_inception_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a weights file without unpickling code: ``.safetensors`` or a torch state dict
    through ``torch.load(weights_only=True)``; keys mapped by :func:`_map_keys`."""
    p = Path(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # unreadable, truncated, or a pickle of more than tensors
        raise InputError(
            f"cannot read InceptionV3 weights from {str(p)!r} ({type(err).__name__}): give "
            f"pytorch-fid's {INCEPTION_FILE_NAMES[0]} or torch-fidelity's "
            f"{INCEPTION_FILE_NAMES[1]} as downloaded"
        ) from None
    if (
        isinstance(state, Mapping)
        and "state_dict" in state
        and isinstance(state["state_dict"], Mapping)
    ):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(
            f"{str(p)!r} is not a state dict of tensors: give pytorch-fid's "
            f"{INCEPTION_FILE_NAMES[0]} or torch-fidelity's {INCEPTION_FILE_NAMES[1]}"
        )
    return _map_keys(state)


def load_inception(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> InceptionV3FID:
    """The FID InceptionV3 with the weights of :func:`inception_weights_path` (``path``), in
    eval mode, without gradients, on ``device``. Keys or shapes that differ from the
    published files are refused in one line."""
    p = inception_weights_path(path)
    state = load_inception_state_dict(p)
    with torch.device("meta"):  # no time spent on a random init that is overwritten
        net = InceptionV3FID()
    want = {k: v.shape for k, v in _map_keys(net.state_dict()).items()}
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    bad = sorted(k for k in set(want) & set(state) if tuple(state[k].shape) != tuple(want[k]))
    if missing or extra or bad:
        raise InputError(
            f"{str(p)!r} is not the FID InceptionV3 (2015-12-05) state dict: "
            f"{len(missing)} keys missing (e.g. {missing[:2]}), {len(extra)} unexpected "
            f"(e.g. {extra[:2]}), {len(bad)} of another shape (e.g. {bad[:2]}): give "
            f"pytorch-fid's {INCEPTION_FILE_NAMES[0]} or torch-fidelity's {INCEPTION_FILE_NAMES[1]}"
        )
    net = net.to_empty(device="cpu")
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):  # the counters are unused in eval mode
            m.num_batches_tracked.zero_()
    net.load_state_dict(state, strict=False)
    net.requires_grad_(False)
    return net.eval().to(device)
