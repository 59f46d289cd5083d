"""TorchCFM velocity networks (Tong et al. 2024, "Improving and generalizing flow-based
generative models with minibatch optimal transport", atong01/conditional-flow-matching) as
wasserflow models.

TorchCFM trains v(t, x) on the linear path x_t = t x1 + (1 - t) x0 with x0 noise at t = 0 and
the data at t = 1: wasserflow's clock and its ``linear`` schedule, velocity prediction. Its
networks are called as ``net(t, x)`` (the image ``UNetModelWrapper``) or on the concatenation
[x, t] (the 2-D ``MLP``). :func:`from_torchcfm` loads a state dict without pickle
(:func:`~wasserflow.interop.checkpoints.load_state_dict`; TorchCFM's checkpoints hold
"net_model" and "ema_model", the EMA weights are taken by default) into

* a network module given by the caller (``model=net``, e.g. TorchCFM's own
  ``UNetModelWrapper``), called as ``inputs`` says ("t,x", "x,t" or "cat"); or
* a registered wasserflow backbone (``model="unet"`` or ``"mlp"``) with ``options``, which
  needs no TorchCFM installed: the ``mlp`` with TorchCFM's layout (``width`` 64, 3 hidden layers,
  SELU, the raw time as an input; the state-dict keys are the same) and the ``unet``, whose
  ``mnist`` and ``cifar10`` sizes are TorchCFM's networks parameter for parameter. A TorchCFM
  UNet state dict is converted to the ``unet``'s layout (:func:`convert_torchcfm_unet`) and
  its time is fed unscaled (``time_scale=1``, TorchCFM's embedding of t in [0, 1]).

The coupling a TorchCFM model was trained with is not in its checkpoint; OT-CFM's marginal
path is not a Gaussian reference independent of the data, so score-based samplers are refused
unless ``score_valid=True`` says the model is an independent-coupling I-CFM.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..models import build_backbone, place, resolve_device
from ..models.unet import SelfAttention, UNet
from ..paths import AffinePath, LinearSchedule
from ..samplers import Field, SamplingContext
from .checkpoints import load_state_dict
from .external import ExternalModel

INPUTS = ("t,x", "x,t", "cat")
MLP_DEFAULTS = {"width": 64, "depth": 3, "activation": "selu", "time_embedding": "linear"}
"""TorchCFM's 2-D ``MLP(dim, time_varying=True, w=64)`` as wasserflow's ``mlp``."""
UNET_DEFAULTS = {"time_scale": 1.0}

_RENAMES = [
    (r"^time_embed\.", "time_mlp."),
    (r"^input_blocks\.0\.0\.", "stem."),
    (r"^middle_block\.", "middle."),
    (r"^output_blocks\.", "up."),
    (r"^out\.0\.", "out_norm."),
    (r"^out\.2\.", "head."),
    (r"\.in_layers\.0\.", ".norm1."),
    (r"\.in_layers\.2\.", ".conv1."),
    (r"\.emb_layers\.1\.", ".emb."),
    (r"\.out_layers\.0\.", ".norm2."),
    (r"\.out_layers\.3\.", ".conv2."),
    (r"\.skip_connection\.", ".skip."),
    (r"\.op\.", ".conv."),
    (r"\.proj_out\.", ".proj."),
]


class TorchCFMNet:
    """``fn(x, t)`` calling a network ``net(t, x)``, ``net(x, t)`` or ``net(cat[x, t])``, in
    the network's device and dtype (the output comes back in x's)."""

    def __init__(self, net: nn.Module, inputs: str = "t,x"):
        if inputs not in INPUTS:
            raise ValueError(f"inputs {inputs!r}: choose one of {', '.join(INPUTS)}")
        self.net, self.inputs = net, inputs

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        p = next(self.net.parameters(), None)
        dev, dt = (x.device, x.dtype) if p is None else (p.device, p.dtype)
        xin, tin = x.to(dev, dt), t.to(dev, dt)
        if self.inputs == "t,x":
            out = self.net(tin, xin)
        elif self.inputs == "x,t":
            out = self.net(xin, tin)
        else:
            out = self.net(torch.cat([xin.reshape(x.shape[0], -1), tin[:, None]], dim=1))
        return out.reshape(x.shape).to(x.device, x.dtype)


def _heads(layer: SelfAttention) -> int:
    return int(layer.heads)


def convert_torchcfm_unet(state: Mapping[str, Tensor], net: UNet) -> dict[str, Tensor]:
    """A TorchCFM ``UNetModel`` state dict in the layout of wasserflow's ``unet`` ``net``.

    The modules correspond one to one (ADM's UNet; see :mod:`wasserflow.models.unet`):
    ``input_blocks.0`` is the stem and ``input_blocks.i`` (i >= 1) is ``down.(i - 1)``,
    ``middle_block`` / ``output_blocks`` / ``out`` are ``middle`` / ``up`` / ``out_norm`` and
    ``head``. Three tensors change form: the sinusoidal embedding is [cos, sin] in TorchCFM and
    [sin, cos] here (the halves of the first time layer's input columns swap); attention's
    1x1 convolutions become linear maps; and TorchCFM's qkv rows are grouped per head
    (head, q/k/v, channel; its "legacy" order) where here they are (q/k/v, head, channel).
    """
    target = net.state_dict()
    attn = {name: m for name, m in net.named_modules() if isinstance(m, SelfAttention)}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = key
        m = re.match(r"^input_blocks\.(\d+)\.", key)
        if m and m.group(1) != "0":
            new = f"down.{int(m.group(1)) - 1}." + key[m.end() :]
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, new)
        if new not in target:
            raise InputError(
                f"the TorchCFM state dict's {key!r} has no counterpart in the unet (as "
                f"{new!r}): build the unet with the checkpoint's sizes (--model-set)"
            )
        v = value
        owner = new.rsplit(".", 2)[0]
        if owner in attn and new.endswith((".qkv.weight", ".qkv.bias")):
            h = _heads(attn[owner])
            rest = v.shape[1:]
            rows = v.reshape(v.shape[0], -1) if v.dim() > 1 else v[:, None]
            c = rows.shape[0] // 3
            rows = rows.reshape(h, 3, c // h, -1).permute(1, 0, 2, 3).reshape(3 * c, -1)
            v = rows.reshape(3 * c, *rest) if value.dim() > 1 else rows[:, 0]
        if v.dim() == 3 and target[new].dim() == 2:  # conv1d(kernel 1) -> linear
            v = v[:, :, 0]
        if new == "time_mlp.0.weight":
            half = v.shape[1] // 2
            v = torch.cat([v[:, half:], v[:, :half]], dim=1)
        if tuple(v.shape) != tuple(target[new].shape):
            raise InputError(
                f"the TorchCFM state dict's {key!r} has shape {list(value.shape)}, the unet's "
                f"{new!r} {list(target[new].shape)}: build the unet with the checkpoint's "
                "sizes (--model-set)"
            )
        out[new] = v
    missing = sorted(set(target) - set(out))
    if missing:
        raise InputError(
            f"the TorchCFM state dict lacks {len(missing)} of the unet's tensors (first "
            f"{missing[0]!r}): build the unet with the checkpoint's sizes (--model-set)"
        )
    return out


def _backbone(
    name: str,
    state: dict[str, Tensor],
    shape,
    options: Mapping[str, Any] | None,
    data: str | None = None,
) -> nn.Module:
    if shape is None:
        raise InputError(f"model {name!r} needs the data's shape: pass shape= or data=")
    opts = dict(options or {})
    defaults = {"mlp": MLP_DEFAULTS, "unet": UNET_DEFAULTS}.get(name, {})
    opts = {**defaults, **opts}
    try:
        net = build_backbone(name, tuple(shape), opts, seed=0)
    except ValueError as e:
        if data is None or len(shape) != 1:
            raise
        from ..data import reshape_hint

        fix = reshape_hint(data) or "give the data as images (array:FILE of shape (N, C, H, W))"
        raise InputError(f"{e} from the data {data!r}: {fix}") from None
    if isinstance(net, UNet) and any(k.startswith("input_blocks.") for k in state):
        state = convert_torchcfm_unet(state, net)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        detail = " ".join(str(e).split())[:300]
        raise InputError(
            f"the checkpoint does not fit model {name} with options {opts} ({first} {detail})"
        ) from e
    return net


def from_torchcfm(
    checkpoint: str | Path | Mapping[str, Tensor],
    model: str | nn.Module = "unet",
    *,
    key: str | None = None,
    options: Mapping[str, Any] | None = None,
    shape: tuple[int, ...] | None = None,
    data: str | None = None,
    inputs: str = "t,x",
    score_valid: bool = False,
    device: str = "cpu",
) -> ExternalModel:
    """A TorchCFM velocity network as an :class:`ExternalModel` (module doc).

    Args:
        checkpoint: a ``.safetensors`` / ``torch.save`` file of a state dict or of a dict of
            them (TorchCFM's), or the mapping itself.
        model: a network module (its architecture must match the state dict) or the name of a
            registered wasserflow backbone ("unet", "mlp") built with ``options``.
        key: the checkpoint's entry to load (default: ema_model, net_model, model or
            state_dict, or the file itself when it is one state dict).
        options: the backbone's options (``--model-set``), over TorchCFM's defaults.
        shape: one sample's shape (default: the data's, from ``data``).
        data: a data spec to evaluate against.
        inputs: how a module is called: "t,x" (TorchCFM's UNet), "x,t" or "cat" ([x, t]).
        score_valid: True for an independent-coupling model (I-CFM): allows score samplers.
        device: where the network runs.
    """
    state = load_state_dict(checkpoint, key)
    if shape is None and data is not None:
        from ..data import make_source

        shape = tuple(make_source(data).shape)
    if isinstance(model, str):
        net = _backbone(model, state, shape, options, data)
        fn = None
        name = f"wasserflow's {model}"
    elif isinstance(model, nn.Module):
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise InputError(f"the checkpoint does not fit the given network ({first})") from e
        net = model
        fn = TorchCFMNet(net, inputs)
        name = type(model).__name__
        if shape is None:
            raise InputError("pass shape= (one sample's shape) or data= with a network module")
    else:
        raise ValueError("model must be a backbone name ('unet', 'mlp') or an nn.Module")
    if fn is None:
        place(net, device).eval()
    else:
        net.to(resolve_device(device)).eval()
    path = AffinePath(LinearSchedule())
    field = (
        Field(fn=fn, prediction="velocity", path=path)
        if fn is not None
        else Field.from_network(net, path, "velocity", "t")
    )
    where = "a state dict" if isinstance(checkpoint, Mapping) else str(checkpoint)
    desc = f"the TorchCFM velocity field in {where} ({name})"
    ctx = SamplingContext(
        path=path,
        t_end=1.0,
        t_last_trained=1.0,
        score_valid=bool(score_valid),
        description=desc,
    )
    return ExternalModel(
        field,
        ctx,
        tuple(shape),
        method="torchcfm",
        description=desc,
        default_sampler="euler",
        data=data,
        model=net,
        velocity_network=net if fn is None else None,
    )
