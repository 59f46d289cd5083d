"""A DDPM / ADM-style UNet backbone for images (N, C, H, W), registered as ``"unet"``.

The architecture is the one of Ho et al. (2020) as refined by Dhariwal & Nichol (2021, ADM)
and used by TorchCFM's ``UNetModelWrapper`` (written here from the description, not copied):

* time: phi(t) sinusoidal of width ``channels`` applied to ``time_scale * t``
  (:class:`~wasserflow.models.embedding.SinusoidalTimeEmbedding`), then
  Linear(channels, 4 channels), SiLU, Linear(4 channels, 4 channels);
* a 3x3 stem conv, then per level l (resolution H / 2^l, width ``channels * channel_mult[l]``)
  ``num_res_blocks`` residual blocks [GroupNorm, SiLU, conv3x3, + Linear(SiLU(emb)),
  GroupNorm, SiLU, Dropout, conv3x3 (zero-initialised), 1x1 skip when the width changes],
  each followed by self-attention where the level's resolution is in
  ``attention_resolutions``, and a stride-2 3x3 conv between levels;
* a middle block ResBlock, attention, ResBlock (always, as ADM);
* a mirrored decoder with ``num_res_blocks + 1`` blocks per level on the concatenated skips,
  nearest-neighbour x2 upsampling followed by a 3x3 conv;
* GroupNorm, SiLU, a zero-initialised 3x3 conv to C channels.

With the same options the parameter count equals TorchCFM's ``UNetModelWrapper`` (checked in
``tests/models/test_unet.py``): "mnist" 1,075,361 parameters, "cifar10" 35,746,307.

**Time.** t is embedded as given (the clock in [0, 1], or lambda / 5 for a log-SNR time input).
``time_scale`` = 1000 (the default) maps [0, 1] onto DDPM's integer steps, as this library's
MLP does; TorchCFM feeds t in [0, 1] unscaled, which ``time_scale=1`` reproduces.

**Shapes.** x must be (N, C, H, W) with H and W divisible by 2^(levels - 1); other shapes are
refused with a ValueError (no padding). Attention resolutions are in pixels and must be the
height of some level (H, H / 2, ...), else they are refused too.

**Scalar head** (``scalar=True``, Energy Matching's potential), ``energy_head``:

* ``"norm"`` (default): E(x, t) = 0.5 * sum over C, H, W of unet(x, t)^2. The whole UNet is
  used at full resolution, the field -grad_x E = -J^T u keeps the spatial structure, and E is
  bounded below by 0, which the Langevin phase of Energy Matching needs (exp(-E / T) must be
  normalisable). The final conv is *not* zero-initialised here: with u = 0, E and its gradients
  in every parameter would vanish identically and the network could never train.
* ``"pool"``: GroupNorm, SiLU, a global average pool and Linear(channels, 1) on the decoder's
  last features (cheaper, but E is unbounded below).

A scalar head is time-independent unless ``time_conditioned`` is True (Energy Matching's E is
time-independent; the time MLP and the per-block time projections are then not built).

**Extra conditions** (``conditions``, :mod:`.conditioning`; none by default): called as
``unet(x, t, c_1, ..., c_k)``, each condition embedded to the width 4 ``channels`` of the time
embedding and added to it before the residual blocks' projections (ADM adds its class
embedding there); a scalar condition has the time's recipe (sinusoid of ``time_scale * c``,
Linear, SiLU, Linear) with its own weights (module ``cond``), as DiT-style flow maps embed
their second time. They need a time-conditioned network.

**Attention under forward-mode AD.** ``torch.func.jvp`` has no rule for the fused attention
kernels (PyTorch's CPU flash kernel raises NotImplementedError, pytorch#165530); a caller
differentiating forward (MeanFlow's target) runs the network inside
``torch.nn.attention.sdpa_kernel([SDPBackend.MATH])``, whose composite kernel differentiates
both ways.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._time import broadcast_time
from .conditioning import ConditionEmbeddings, no_conditions
from .embedding import SinusoidalTimeEmbedding
from .registry import register_model

UNET_SIZES: dict[str, dict] = {
    # scikit-learn's 8x8 digits (1 x 8 x 8): ~0.6 M parameters, minutes on 2 CPU cores.
    "digits": {
        "channels": 32,
        "channel_mult": (1, 2),
        "num_res_blocks": 1,
        "attention_resolutions": (4,),
        "num_heads": 4,
        "head_channels": None,
        "dropout": 0.0,
        "groups": 8,
    },
    # TorchCFM's MNIST examples: UNetModelWrapper(dim=(1, 28, 28), num_channels=32,
    # num_res_blocks=1); its defaults are channel_mult (1, 2, 2), attention_resolutions "16",
    # read as the downsampling rate 28 // 16 = 1, i.e. attention at 28 x 28, one head.
    "mnist": {
        "channels": 32,
        "channel_mult": (1, 2, 2),
        "num_res_blocks": 1,
        "attention_resolutions": (28,),
        "num_heads": 1,
        "head_channels": None,
        "dropout": 0.0,
        "groups": 32,
    },
    # TorchCFM's train_cifar10.py: 128 channels, (1, 2, 2, 2), 2 blocks, attention at 16 x 16,
    # heads of 64 channels (4 heads there), dropout 0.1.
    "cifar10": {
        "channels": 128,
        "channel_mult": (1, 2, 2, 2),
        "num_res_blocks": 2,
        "attention_resolutions": (16,),
        "num_heads": 4,
        "head_channels": 64,
        "dropout": 0.1,
        "groups": 32,
    },
}
"""Named sizes of the ``unet`` backbone: ``size`` picks one, any field given overrides it."""

ENERGY_HEADS = ("norm", "pool")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class UNetConfig:
    """Options of the ``unet`` backbone (:class:`UNet`); JSON types only.

    Attributes:
        size: a preset of :data:`UNET_SIZES` ("digits", "mnist", "cifar10"); every field left
            None takes the preset's value.
        channels: base width (the first level's channels and the time embedding's width).
        channel_mult: width multiplier per level (list of positive ints); levels =
            len(channel_mult), H and W must be divisible by 2^(levels - 1).
        num_res_blocks: residual blocks per level in the encoder (decoder: one more).
        attention_resolutions: resolutions in pixels (a level's height) with self-attention
            after each residual block; the middle block always has one.
        num_heads: attention heads (ignored when ``head_channels`` is set).
        head_channels: channels per head (heads = width / head_channels), or None.
        dropout: dropout rate in the residual blocks, in [0, 1).
        groups: GroupNorm groups; must divide ``channels * m`` for every multiplier m.
        time_scale: the sinusoidal embedding sees ``time_scale * t`` (1000: DDPM's steps;
            TorchCFM uses 1).
        energy_head: the scalar head, "norm" (0.5 |unet|^2) or "pool" (pooled linear).
        time_conditioned: whether the net sees t; None means yes for a field, no for a scalar
            potential.
    """

    size: str = "digits"
    channels: int | None = None
    channel_mult: list[int] | tuple[int, ...] | None = None
    num_res_blocks: int | None = None
    attention_resolutions: list[int] | tuple[int, ...] | None = None
    num_heads: int | None = None
    head_channels: int | None = None
    dropout: float | None = None
    groups: int | None = None
    time_scale: float = 1000.0
    energy_head: str = "norm"
    time_conditioned: bool | None = None

    def __post_init__(self) -> None:
        if self.size not in UNET_SIZES:
            raise ValueError(
                f"unknown unet size {self.size!r}: choose one of {', '.join(UNET_SIZES)}"
            )
        preset = UNET_SIZES[self.size]
        for f in fields(self):
            if f.name in preset and getattr(self, f.name) is None:
                object.__setattr__(self, f.name, preset[f.name])
        for key in ("channels", "num_res_blocks", "num_heads", "groups"):
            v = getattr(self, key)
            if not _is_int(v) or v < 1:
                raise ValueError(f"model config {key!r} must be a positive int, got {v!r}")
        if self.head_channels is not None and (
            not _is_int(self.head_channels) or self.head_channels < 1
        ):
            raise ValueError(
                f"model config 'head_channels' must be a positive int or None, "
                f"got {self.head_channels!r}"
            )
        for key, allow_empty in (("channel_mult", False), ("attention_resolutions", True)):
            v = getattr(self, key)
            if (
                not isinstance(v, (list, tuple))
                or (not v and not allow_empty)
                or not all(_is_int(m) and m >= 1 for m in v)
            ):
                raise ValueError(
                    f"model config {key!r} must be a list of positive ints"
                    f"{'' if allow_empty else ' (at least one)'}, got {v!r}"
                )
            object.__setattr__(self, key, tuple(v))
        if not _is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model config 'dropout' must be in [0, 1), got {self.dropout!r}")
        if (
            not _is_number(self.time_scale)
            or not math.isfinite(self.time_scale)
            or self.time_scale <= 0
        ):
            raise ValueError(
                f"model config 'time_scale' must be a positive number, got {self.time_scale!r}"
            )
        if self.channels % 2:
            raise ValueError(
                f"model config 'channels' must be even (the sinusoidal time embedding's "
                f"width), got {self.channels}"
            )
        for m in self.channel_mult:
            if (self.channels * m) % self.groups:
                raise ValueError(
                    f"model config 'groups' ({self.groups}) must divide every level's width "
                    f"channels * channel_mult = {[self.channels * k for k in self.channel_mult]}"
                )
            width = self.channels * m
            if self.head_channels is not None and width % self.head_channels:
                raise ValueError(
                    f"model config 'head_channels' ({self.head_channels}) must divide every "
                    f"level's width {[self.channels * k for k in self.channel_mult]}"
                )
            if self.head_channels is None and width % self.num_heads:
                raise ValueError(
                    f"model config 'num_heads' ({self.num_heads}) must divide every "
                    f"level's width {[self.channels * k for k in self.channel_mult]}"
                )
        if self.energy_head not in ENERGY_HEADS:
            raise ValueError(
                f"model config 'energy_head' must be one of {ENERGY_HEADS}, "
                f"got {self.energy_head!r}"
            )
        if self.time_conditioned is not None and not isinstance(self.time_conditioned, bool):
            raise ValueError(
                f"model config 'time_conditioned' must be true, false or null, "
                f"got {self.time_conditioned!r}"
            )


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm, SiLU, conv3x3, + time projection, GroupNorm, SiLU, Dropout, conv3x3 (zero),
    plus the input (through a 1x1 conv when the width changes). ``emb_dim`` 0: no time."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim else None
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H x W positions, residual, zero-initialised output.

    ``explicit``: softmax(q k^T / sqrt(d)) v written out, which autograd differentiates twice
    (a scalar head trains through -grad E; CPU's fused attention has no double backward);
    otherwise ``F.scaled_dot_product_attention`` (fused kernels).
    """

    def __init__(self, channels: int, heads: int, groups: int, explicit: bool = False):
        super().__init__()
        self.heads, self.explicit = heads, explicit
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = _zero(nn.Linear(channels, channels))

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        n, c, h, w = x.shape
        seq = self.norm(x).reshape(n, c, h * w).transpose(1, 2)  # (N, L, C)
        qkv = self.qkv(seq).reshape(n, h * w, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (N, heads, L, d)
        if self.explicit:
            weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
            a = weights @ v
        else:
            a = F.scaled_dot_product_attention(q, k, v)
        out = self.proj(a.transpose(1, 2).reshape(n, h * w, c))
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Stage(nn.ModuleList):
    """Layers applied in order, each given the time embedding."""

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb)
        return x


def _resolutions(shape: tuple[int, ...], cfg: UNetConfig) -> list[int]:
    """The height of each level for images of ``shape`` (C, H, W), whose sides must halve
    evenly down the levels and whose attention resolutions must be among them."""
    if len(shape) != 3:
        raise ValueError(f"the unet backbone needs images of shape (C, H, W), got {shape}")
    _, height, width = shape
    levels = len(cfg.channel_mult)
    factor = 2 ** (levels - 1)
    if height % factor or width % factor:
        raise ValueError(
            f"shape {shape}: H and W must be divisible by 2^(levels - 1) = {factor} for "
            f"channel_mult {list(cfg.channel_mult)} ({levels} levels); use fewer levels"
        )
    resolutions = [height // 2**level for level in range(levels)]
    missing = sorted(set(cfg.attention_resolutions) - set(resolutions))
    if missing:
        raise ValueError(
            f"attention_resolutions {missing} are not resolutions of shape {shape} with "
            f"channel_mult {list(cfg.channel_mult)}: choose among {resolutions}"
        )
    return resolutions


@register_model("unet", UNetConfig, conditions=True)
class UNet(nn.Module):
    """The ``unet`` backbone: (N, C, H, W), t -> (N, C, H, W), or with ``scalar`` E: (N,).

    See the module docstring for the architecture, the time embedding, the scalar heads and
    the extra conditions.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        config: UNetConfig,
        *,
        scalar: bool = False,
        conditions: tuple[str, ...] = (),
    ):
        super().__init__()
        shape = tuple(int(s) for s in shape)
        cfg = config
        resolutions = _resolutions(shape, cfg)
        c_in, levels = shape[0], len(cfg.channel_mult)
        self.shape, self.scalar, self.config = shape, scalar, cfg
        self.time_conditioned = (
            (not scalar) if cfg.time_conditioned is None else bool(cfg.time_conditioned)
        )
        ch, groups, drop = cfg.channels, cfg.groups, float(cfg.dropout)
        emb_dim = 4 * ch if self.time_conditioned else 0
        if self.time_conditioned:
            self.time_embed = SinusoidalTimeEmbedding(ch, scale=float(cfg.time_scale))
            self.time_mlp = nn.Sequential(
                nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
            )

        def heads(c: int) -> int:
            return c // cfg.head_channels if cfg.head_channels else cfg.num_heads

        def block(c_a: int, c_b: int, res: int) -> Stage:
            layers: list[nn.Module] = [ResBlock(c_a, c_b, emb_dim, drop, groups)]
            if res in cfg.attention_resolutions:
                layers.append(SelfAttention(c_b, heads(c_b), groups, scalar))
            return Stage(layers)

        widths = [ch * m for m in cfg.channel_mult]
        self.stem = nn.Conv2d(c_in, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips = [widths[0]]
        c = widths[0]
        for level, w in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                self.down.append(block(c, w, resolutions[level]))
                c = w
                skips.append(c)
            if level < levels - 1:
                self.down.append(Stage([Downsample(c)]))
                skips.append(c)
        self.middle = Stage(
            [
                ResBlock(c, c, emb_dim, drop, groups),
                SelfAttention(c, heads(c), groups, scalar),
                ResBlock(c, c, emb_dim, drop, groups),
            ]
        )
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            w = widths[level]
            for i in range(cfg.num_res_blocks + 1):
                stage = block(c + skips.pop(), w, resolutions[level])
                c = w
                if level and i == cfg.num_res_blocks:
                    stage.append(Upsample(c))
                self.up.append(stage)
        self.out_norm = nn.GroupNorm(groups, c)
        if scalar and cfg.energy_head == "pool":
            self.head = nn.Linear(c, 1)
        else:
            self.head = nn.Conv2d(c, c_in, 3, padding=1)
            if not scalar:  # zero output at init (ADM); never for the norm head (see above)
                _zero(self.head)
        self.cond = self._conditions(tuple(conditions), ch, emb_dim)

    def _conditions(
        self, conditions: tuple[str, ...], ch: int, emb_dim: int
    ) -> ConditionEmbeddings | None:
        """The embeddings of the extra conditions, built last (none: the same initial weights
        as a network without them)."""
        if not conditions:
            return None
        if not self.time_conditioned:
            raise ValueError(
                f"extra conditions {list(conditions)} are added to the time embedding: the "
                "unet must be time-conditioned"
            )
        scale = float(self.config.time_scale)
        return ConditionEmbeddings(
            conditions,
            emb_dim,
            lambda: nn.Sequential(
                SinusoidalTimeEmbedding(ch, scale=scale),
                nn.Linear(ch, emb_dim),
                nn.SiLU(),
                nn.Linear(emb_dim, emb_dim),
            ),
        )

    def forward(self, x: Tensor, t: Tensor | float | None = None, *conditions: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"input of shape {tuple(x.shape)} does not match the model's shape {self.shape}"
            )
        if self.cond is None:
            no_conditions(conditions)
        emb = None
        if self.time_conditioned:
            if t is None:
                raise ValueError("this unet is time-conditioned: pass t (a float or (N,))")
            emb = self.time_mlp(self.time_embed(broadcast_time(t, x)))
            if self.cond is not None:
                emb = emb + self.cond(conditions, x)
        h = self.stem(x)
        hs = [h]
        for stage in self.down:
            h = stage(h, emb)
            hs.append(h)
        h = self.middle(h, emb)
        for stage in self.up:
            h = stage(torch.cat([h, hs.pop()], dim=1), emb)
        h = F.silu(self.out_norm(h))
        if self.scalar and self.config.energy_head == "pool":
            return self.head(h.mean(dim=(2, 3)))[:, 0]
        u = self.head(h)
        if self.scalar:
            return 0.5 * u.pow(2).flatten(1).sum(1)
        return u
