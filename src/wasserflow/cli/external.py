"""``wasserflow evaluate --from diffusers:DIR`` / ``--from torchcfm:CKPT --model NAME``: measure
a model trained elsewhere (:mod:`wasserflow.interop`) like a run folder.

    wasserflow evaluate --from diffusers:ddpm-cifar10 --data cifar10:cifar-10-batches-bin
    wasserflow evaluate --from torchcfm:otcfm_cifar10.pt --model unet \\
        --model-set size=cifar10 --data cifar10:cifar-10-batches-bin

``diffusers:DIR`` is a model or pipeline folder written by ``save_pretrained`` (safetensors;
its scheduler config saved beside it); ``torchcfm:CKPT`` a state dict (``.safetensors``, or a
``torch.save`` file read with ``weights_only=True``: a pickled object is refused in one line),
``CKPT#KEY`` naming its entry (default: the EMA weights), loaded into the registered backbone
``--model`` with the options ``--model-set`` (TorchCFM's UNet layout is converted to the
``unet``'s). ``--data SPEC`` is the data the samples are compared with (W2, FD).
"""

from __future__ import annotations

from pathlib import Path

from .app import UsageError

SOURCES = ("diffusers", "torchcfm")


def evaluated_model(
    source: str | None,
    run: Path | None,
    *,
    model: str | None = None,
    model_set: list[str] | None = None,
    data: str | None = None,
    device: str = "cpu",
):
    """What ``evaluate`` measures: the run folder ``run``, or the external model ``source``
    (``--from``) with ``--model``, ``--model-set`` and ``--data``; every wrong combination is
    refused in one line."""
    from ..engine import load_run

    extra = [
        flag for flag, v in (("--model", model), ("--model-set", model_set), ("--data", data)) if v
    ]
    if source is None:
        if run is None:
            raise UsageError(
                "give a run folder, or an external model: --from diffusers:DIR or "
                "--from torchcfm:CKPT --model NAME, with --data SPEC"
            )
        if extra:
            raise UsageError(
                f"{', '.join(extra)} go with --from (a run folder has its own model and data)"
            )
        return load_run(run, device=device)
    if run is not None:
        raise UsageError(f"give a run folder or --from, not both ({run} and --from {source})")
    kind, sep, where = source.partition(":")
    if not sep or kind not in SOURCES or not where:
        raise UsageError(
            f"--from {source!r}: write diffusers:DIR (a save_pretrained folder) or "
            "torchcfm:CKPT[#KEY] (a state dict)"
        )
    if data is None:
        raise UsageError(
            f"--from {source}: give --data SPEC, the data the samples are compared with "
            "(e.g. --data cifar10:FOLDER)"
        )
    from ..interop import from_diffusers, from_torchcfm

    if kind == "diffusers":
        if model or model_set:
            raise UsageError(
                "--model and --model-set go with --from torchcfm: (a diffusers folder holds "
                "its own model config)"
            )
        return from_diffusers(where, data=data, device=device)
    if not model:
        raise UsageError(
            f"--from {source}: name the network with --model (unet or mlp) and its sizes with "
            "--model-set (e.g. --model unet --model-set size=cifar10)"
        )
    from .train import _parse_sets

    path, _, key = where.partition("#")
    options = _parse_sets(model_set or [], "--model-set")
    return from_torchcfm(path, model, key=key or None, options=options, data=data, device=device)
