"""diffusers and TorchCFM models as the teachers of a distillation (registered when this package
is imported: :func:`wasserflow.engine.teachers.register_teacher_source`).

    wasserflow train --method flowmap-distill --data cifar10:DIR \\
        --set objective.teacher=diffusers:ddpm-cifar10 --set objective.init=random
    wasserflow train --method flowmap-distill --data digits_images --model unet \\
        --set objective.teacher=torchcfm:otcfm.pt#ema_model --set objective.teacher_model=unet \\
        --set 'objective.teacher_model_options={"size": "digits"}' --set objective.init=random

``diffusers:DIR`` is a ``save_pretrained`` folder (:func:`~wasserflow.interop.from_diffusers`);
``torchcfm:CKPT[#KEY]`` a state dict loaded into the registered backbone ``teacher_model`` with
``teacher_model_options`` (:func:`~wasserflow.interop.from_torchcfm`). The teacher's ODE is then
solved by wasserflow's samplers, on wasserflow's clock. The student starts from its teacher's
weights (``objective.init`` teacher, the default) only where the teacher is a velocity network
of its own backbone: a ``torchcfm:`` state dict loaded into the student's model with its
options (TorchCFM's own UNet sees t, wasserflow's 1000 t: that start is refused); a diffusers
teacher, or TorchCFM's UNet as above, takes ``objective.init=random``.
"""

from __future__ import annotations

from ..engine.teachers import register_teacher_source
from ..errors import InputError
from ..objectives import TeacherSpec
from .diffusers_models import from_diffusers
from .external import ExternalModel
from .torchcfm_models import from_torchcfm


def check_diffusers(where: str, spec: TeacherSpec) -> None:
    """A diffusers folder holds its own model config."""
    if spec.model or spec.model_options:
        raise InputError(
            "teacher_model and teacher_model_options go with a torchcfm: teacher (a diffusers "
            "folder holds its own model config)"
        )


def diffusers_teacher(
    where: str, spec: TeacherSpec, shape: tuple[int, ...], device: str
) -> ExternalModel:
    """The diffusers model in the folder ``where``."""
    return from_diffusers(where, device=device)


def check_torchcfm(where: str, spec: TeacherSpec) -> None:
    """A state dict needs the network it is loaded into."""
    if not spec.model:
        raise InputError(
            f"teacher torchcfm:{where}: name its network with objective.teacher_model (unet or "
            "mlp) and its sizes with objective.teacher_model_options"
        )


def torchcfm_teacher(
    where: str, spec: TeacherSpec, shape: tuple[int, ...], device: str
) -> ExternalModel:
    """The TorchCFM state dict ``CKPT[#KEY]`` in the backbone ``spec.model``, built for the
    student's data ``shape``."""
    path, _, key = where.partition("#")
    return from_torchcfm(
        path,
        spec.model,
        key=key or None,
        options=dict(spec.model_options),
        shape=shape,
        device=device,
    )


register_teacher_source("diffusers", diffusers_teacher, check_diffusers)
register_teacher_source("torchcfm", torchcfm_teacher, check_torchcfm)
