"""A diffusers ``UNet2DModel`` and its scheduler config as a wasserflow model.

:func:`from_diffusers` loads the model with diffusers' own ``from_pretrained`` from a local
folder (safetensors only: ``use_safetensors=True, local_files_only=True``; nothing is
downloaded and no pickle is read) and reads its noise schedule and parametrisation from the
scheduler config (:mod:`.diffusers_schedule`). The result is an
:class:`~wasserflow.interop.ExternalModel` whose field is on wasserflow's clock: at time t the
network is called as ``unet(x, k(t)).sample`` with diffusers' timestep k(t) (k at
t_k = 1 - (k + 1) / T, the log-noise-level interpolation in between), and its output is an
epsilon, v or x1 prediction on the DDPM path over the model's own abar table. Every sampler
applies; ``ddim`` (trailing spacing, final alpha 1) is the default, and
:func:`~wasserflow.interop.scheduler_grid` gives the grid on which a sampler takes the steps of
the diffusers scheduler a user runs.

Folders: a pipeline saved with ``save_pretrained`` (``unet/`` and ``scheduler/``), or a model
folder (``config.json`` and ``diffusion_pytorch_model.safetensors``) with a
``scheduler_config.json`` beside it or the config passed as ``scheduler_config``. A model whose
output has twice the input channels and whose scheduler has a learned variance
(``variance_type`` "learned" / "learned_range", improved DDPM) is read as epsilon and variance;
the field uses the epsilon half.

A class-conditional ``UNet2DModel`` (``num_class_embeds`` N, called with ``class_labels``)
is wrapped as a model of K = N - 1 classes whose null class (the unconditional model of
classifier-free guidance) is the index ``null_class``, by default N - 1 (DiT's convention:
the last row, trained as the dropped label); wasserflow's labels 0..K-1 are the other indices
in order and its null label K is ``null_class``. ``model.sample(n, labels=c, guidance=s)``
then guides as diffusers' pipelines do, u + s (c - u) on the network's output
(``ClassifierFreeGuidance``). Continuous class embeddings (``class_embed_type`` "timestep" or
"identity") are refused.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import EnvironmentProblem, InputError
from ..models import class_labels, resolve_device
from ..samplers import Field, SamplingContext
from .diffusers_schedule import DiffusersClock, read_config
from .external import ExternalModel

MODEL_CLASSES = ("UNet2DModel",)
WEIGHTS = "diffusion_pytorch_model.safetensors"
LEARNED_VARIANCE = ("learned", "learned_range")


class DiffusersNet:
    """``fn(x, t)``: the diffusers model's prediction at clock times t (module doc).

    x is cast to the model's device and dtype and the output back to x's; the timestep is
    passed as float32 (diffusers' UNets embed ``timesteps.float()``). ``classes`` (a
    class-conditional model): the :class:`ClassMap` of its labels and the wasserflow labels of
    the rows (n,) or one int, passed as ``class_labels``."""

    def __init__(
        self,
        model: nn.Module,
        clock: DiffusersClock,
        channels: int,
        classes: tuple[ClassMap, Tensor | int] | None = None,
    ):
        self.model, self.clock, self.channels, self.classes = model, clock, channels, classes

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        p = next(self.model.parameters())
        k = self.clock.timestep(t.detach()).to(p.device, torch.float32)
        extra = {}
        if self.classes is not None:
            cmap, labels = self.classes
            extra["class_labels"] = cmap.indices(labels, x.shape[0]).to(p.device)
        out = self.model(x.to(p.device, p.dtype), k, **extra)
        out = getattr(out, "sample", out)
        if isinstance(out, tuple):
            out = out[0]
        return out[:, : self.channels].to(x.device, x.dtype)


@dataclass(frozen=True)
class ClassMap:
    """wasserflow's labels 0..K (K the null class) as a diffusers model's class indices
    (module doc): label c < K is the c-th index other than ``null``, label K is ``null``."""

    num_embeds: int
    null: int

    @property
    def num_classes(self) -> int:
        return self.num_embeds - 1

    def indices(self, labels: Tensor | int, n: int) -> Tensor:
        """The class indices of n rows with wasserflow ``labels`` (n,) or one int."""
        y = class_labels(labels, self.num_classes, n)
        shifted = y + (y >= self.null).to(torch.int64)  # skip the null row
        return torch.where(y == self.num_classes, torch.full_like(y, self.null), shifted)


def _class_map(model: nn.Module, null_class: int | None, where: str) -> ClassMap | None:
    """The class map of a class-conditional model (None: unconditional); continuous class
    embeddings and a null index outside the table are refused."""
    kind = getattr(model.config, "class_embed_type", None)
    if kind:
        raise InputError(
            f"{where} embeds continuous class inputs (class_embed_type {kind!r}); wasserflow "
            "wraps class labels of num_class_embeds"
        )
    n = getattr(model.config, "num_class_embeds", None)
    if not n:
        if null_class is not None:
            raise InputError(f"{where} is unconditional: drop null_class")
        return None
    null = n - 1 if null_class is None else int(null_class)
    if n < 2 or not 0 <= null < n:
        raise InputError(
            f"{where} has {n} class embeddings: null_class must be one of them (0..{n - 1}), "
            f"got {null}"
        )
    return ClassMap(int(n), null)


def _find(folder: Path) -> tuple[Path, Path | None]:
    """(model folder, scheduler config file or None) of a pipeline or model folder."""
    if not folder.is_dir():
        raise InputError(
            f"{folder} is not a folder: give a diffusers model or pipeline folder "
            "(written by save_pretrained)"
        )
    if (folder / "unet" / "config.json").is_file():
        sched = folder / "scheduler" / "scheduler_config.json"
        return folder / "unet", sched if sched.is_file() else None
    if (folder / "config.json").is_file():
        sched = folder / "scheduler_config.json"
        return folder, sched if sched.is_file() else None
    raise InputError(
        f"{folder} holds no diffusers model: expected config.json (a model folder) or "
        "unet/config.json (a pipeline folder)"
    )


def _load_model(model_dir: Path) -> nn.Module:
    try:
        cls_name = json.loads((model_dir / "config.json").read_text()).get("_class_name")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise InputError(f"{model_dir / 'config.json'} is not a diffusers model config") from e
    if cls_name not in MODEL_CLASSES:
        raise InputError(
            f"{model_dir} holds a {cls_name}; wasserflow wraps unconditional "
            f"{', '.join(MODEL_CLASSES)} models"
        )
    if not (model_dir / WEIGHTS).is_file():
        pickled = sorted(p.name for p in model_dir.glob("*.bin"))
        extra = f" (it has {', '.join(pickled)}: pickle, which wasserflow does not load)"
        raise InputError(
            f"{model_dir} has no {WEIGHTS}{extra if pickled else ''}: save the model with "
            "save_pretrained(safe_serialization=True)"
        )
    try:
        import diffusers
    except ImportError as e:
        raise EnvironmentProblem(
            "loading a diffusers model needs diffusers: pip install diffusers"
        ) from e
    try:
        with _quiet():
            return getattr(diffusers, cls_name).from_pretrained(
                str(model_dir),
                use_safetensors=True,
                local_files_only=True,
                low_cpu_mem_usage=False,
            )
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{model_dir}: diffusers could not load the model ({first})") from e


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """diffusers' own log (advice on accelerate, dtype casts) silenced, then restored."""
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity(dlog.ERROR)
    try:
        yield
    finally:
        dlog.set_verbosity(level)


def _sample_shape(model: nn.Module) -> tuple[int, int, int]:
    cfg = model.config
    size = cfg.sample_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return int(cfg.in_channels), int(h), int(w)


def _checked_shape(model: nn.Module, cfg: Mapping[str, Any], where: str) -> tuple[int, ...]:
    """The sample shape of a model whose output keeps the data's channels (twice them with a
    learned variance); anything else is refused in one line."""
    shape = _sample_shape(model)
    out_channels = int(getattr(model.config, "out_channels", shape[0]))
    learned = cfg.get("variance_type") in LEARNED_VARIANCE
    if out_channels != shape[0] and not (learned and out_channels == 2 * shape[0]):
        raise InputError(
            f"{where} maps {shape[0]} channels to {out_channels}: a field keeps the data's "
            "shape (twice the channels only with a learned variance_type)"
        )
    return shape


def from_diffusers(
    folder_or_model: str | Path | nn.Module,
    scheduler_config: Mapping[str, Any] | str | Path | Any = None,
    *,
    data: str | None = None,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    null_class: int | None = None,
) -> ExternalModel:
    """A diffusers model as an :class:`ExternalModel` (module doc).

    Args:
        folder_or_model: a pipeline or model folder written by ``save_pretrained``, or a loaded
            ``UNet2DModel``.
        scheduler_config: a dict, a ``scheduler_config.json`` or a diffusers scheduler; default:
            the one saved with the folder.
        data: a data spec to evaluate against (pixels in [-1, 1], as diffusers' models are
            trained on), or None (:meth:`ExternalModel.with_data` adds one).
        device: where the network runs (samplers stay on the CPU).
        dtype: cast the network to this dtype (e.g. float64 for comparisons to round-off).
        null_class: a class-conditional model's null class index (default: the last).
    """
    where = "the model"
    if isinstance(folder_or_model, nn.Module):
        model = folder_or_model
        found = None
    else:
        folder = Path(folder_or_model)
        model_dir, found = _find(folder)
        model = _load_model(model_dir)
        where = str(folder)
    config = scheduler_config if scheduler_config is not None else found
    if config is None:
        raise InputError(
            f"{where}: no scheduler config found: pass scheduler_config (a dict or a "
            "scheduler_config.json) or save the scheduler with the model"
        )
    cfg = read_config(config)
    clock = DiffusersClock.from_config(cfg)
    shape = _checked_shape(model, cfg, where)
    cmap = _class_map(model, null_class, where)
    with _quiet():
        model.to(resolve_device(device))
        if dtype is not None:
            model.to(dtype)
    model.eval()
    T = clock.num_train_timesteps
    desc = f"the diffusers {type(model).__name__}" + (
        f" in {where}" if where != "the model" else ""
    )
    betas = "trained" if cfg.get("trained_betas") is not None else cfg["beta_schedule"]
    ctx = SamplingContext(
        path=clock.path,
        t_end=1.0,
        t_last_trained=1.0 - 1.0 / T,
        num_train_timesteps=T,
        score_valid=True,
        description=desc,
    )

    def labelled(labels: Tensor | int) -> Field:
        net = DiffusersNet(model, clock, shape[0], None if cmap is None else (cmap, labels))
        return Field(fn=net, prediction=clock.prediction, path=clock.path)

    return ExternalModel(
        labelled(None if cmap is None else cmap.num_classes),
        ctx,
        shape,
        method="diffusers",
        description=(f"{desc} ({cfg['prediction_type']}, {betas} betas, T = {T})"),
        default_sampler="ddim",
        default_options={"eta": 0.0},
        data=data,
        model=model,
        labelled=None if cmap is None else labelled,
        num_classes=None if cmap is None else cmap.num_classes,
    )
