"""wasserflow.interop: models trained elsewhere as wasserflow fields, sampled and measured alike.

Every model is one velocity field on one clock (t = 0 noise, t = 1 data; docs/design.md
section 2); this package makes that true for models wasserflow did not train::

    from wasserflow.interop import from_diffusers, from_torchcfm, from_callable, scheduler_grid
    from wasserflow.metrics import evaluate_run

    model = from_diffusers("ddpm-folder", data="cifar10:cifar-10-batches-bin")
    rows = evaluate_run(model, [10, 20, 50], n=1000)        # W2 to fresh data, NFE, geometry
    g = scheduler_grid("DPMSolverMultistepScheduler", 20, config="ddpm-folder/scheduler")
    x = model.sample(16, sampler=g.sampler, grid=g.grid, options=g.options).x

* :func:`from_diffusers` (:mod:`.diffusers_models`): a diffusers ``UNet2DModel`` folder
  (safetensors) and its scheduler config (epsilon, v_prediction or sample prediction; linear,
  scaled_linear, squaredcos_cap_v2 or trained betas; any number of training steps).
* :func:`from_torchcfm` (:mod:`.torchcfm_models`): a TorchCFM velocity network's state dict
  (safetensors or ``torch.load(weights_only=True)``; pickled objects are refused) in a given
  module or in wasserflow's ``unet`` / ``mlp`` (TorchCFM's UNet layout converted).
* :func:`from_callable` (:mod:`.external`): any ``fn(x, t) -> prediction`` with its
  parametrisation and path.
* :func:`scheduler_grid` (:mod:`.scheduler_grids`): a diffusers scheduler's timesteps and
  sigmas after ``set_timesteps``, and the clock grid on which a wasserflow sampler takes the
  same steps (DDIM, DDPM, DPM-Solver++, UniPC, Euler and Heun with Karras sigmas).

Importing this package registers ``diffusers:DIR`` and ``torchcfm:CKPT[#KEY]`` as teachers of a
flow-map distillation (:mod:`.teachers`). Each returns an :class:`ExternalModel`, which samples and evaluates like a trained run
(:class:`~wasserflow.engine.TrainedRun`). diffusers is imported only when a diffusers model is
loaded; TorchCFM is never imported.
"""

from .checkpoints import STATE_KEYS, load_state_dict
from .diffusers_models import from_diffusers
from .diffusers_schedule import DiffusersClock, alphas_cumprod, read_config
from .external import ExternalModel, as_path, from_callable
from .scheduler_grids import SAMPLER_OF, SchedulerGrid, scheduler_grid
from .teachers import diffusers_teacher, torchcfm_teacher
from .torchcfm_models import convert_torchcfm_unet, from_torchcfm

__all__ = [
    "SAMPLER_OF",
    "STATE_KEYS",
    "DiffusersClock",
    "ExternalModel",
    "SchedulerGrid",
    "alphas_cumprod",
    "as_path",
    "convert_torchcfm_unet",
    "diffusers_teacher",
    "torchcfm_teacher",
    "from_callable",
    "from_diffusers",
    "from_torchcfm",
    "load_state_dict",
    "read_config",
    "scheduler_grid",
]
