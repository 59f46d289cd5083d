"""Neural fields on the common clock t in [0, 1] (imports only :mod:`wasserflow.geometry`).

Every model is called as ``model(x, t)`` with x of shape (N, *shape) and t a float, a 0-d
tensor, (N,) or (N, 1); a vector-field model returns a tensor of the shape of x. Backbones are
shape-agnostic: they flatten the non-batch dimensions and restore them, so images (N, C, H, W)
work with the MLP.

Backbones are registered by name with a config dataclass (:mod:`.registry`:
``@register_model("mlp", MLPConfig)``; ``build_backbone(name, shape, options, scalar=False,
seed=None)``; ``BACKBONES``); runs name them (``wasserflow train --model mlp --model-set
width=64``). The dict front below builds the MLP kinds.

Build from a JSON-serialisable config (stored in checkpoints)::

    model = build_model({"kind": "mlp", "shape": [2], "width": 64, "depth": 3,
                         "activation": "selu", "time_embedding": "linear"}, seed=0)
    model.config                       # the full config dict; json.dumps-able
    same = build_model(json.loads(json.dumps(model.config)), seed=0)   # same parameters

* ``"mlp"`` -> :class:`VectorFieldMLP`: Linear(d + e, w), act, [Linear(w, w), act] x (depth-1),
  Linear(w, d) on [x_flat, phi(t)]; phi is :class:`SinusoidalTimeEmbedding` (default;
  sin/cos of 1000 t w_k, w_k = 10000^(-k/h)), raw t ("linear"), or absent ("none").
  ``time_embedding="linear", width=64, depth=3, activation="selu"`` is TorchCFM's
  ``MLP(dim, w=64, time_varying=True)`` layer for layer (state dicts interchangeable).
* ``"energy"`` -> :class:`PotentialField` around :class:`PotentialMLP` E: (N, *shape) -> (N,);
  ``field(x, t) = -grad_x E(x)`` via ``torch.autograd.grad`` (graph kept when training, so a
  loss on the field trains E; see :class:`PotentialField`), ``field.energy(x)`` gives E.
  Time-independent by default (Energy Matching); any time_embedding makes E(x, t).

* :class:`JKOFlow` (method ``jko-flow``): blocks of JKO steps toward N(0, I), each a
  :class:`~wasserflow.geometry.RidgeMap`; exact log-likelihood; fitted by
  :mod:`wasserflow.objectives.jko_flow`, not built by :func:`build_model`.

Devices: :func:`place` runs a network on cuda behind forward hooks that move its inputs there
and its output back (:mod:`wasserflow.models.device`); sampling then stays on the CPU. Training
on a GPU is device-resident (:mod:`wasserflow.engine.acceleration`): data drawn on the CPU,
noise and times drawn on the device from a generator seeded by the run, so a CPU run and a GPU
run of one seed agree in law, not sample by sample.

Seeding: ``build_model(config, seed=s)`` initialises inside ``torch.random.fork_rng`` and never
changes the caller's global RNG state. Activations: :data:`ACTIVATIONS` (silu default, selu,
relu, gelu, tanh, softplus, elu).

Class labels (:mod:`.conditioning`): a backbone built with ``conditions=("class:K",)`` takes
labels y in [0, K] (K: no class, the null label of classifier-free guidance) after t;
:class:`WithLabels` binds them (``WithLabels(net, y)(x, t) = net(x, t, y)``).

UNet (:mod:`.unet`, ``--model unet``): :class:`UNet` with :class:`UNetConfig`, a DDPM/ADM UNet
for (C, H, W) images with presets ``size`` "digits", "mnist", "cifar10" (TorchCFM's nets).
"""

from .conditioning import (
    ClassEmbedding,
    WithLabels,
    align_conditions,
    class_count,
    class_labels,
)
from .device import place, resolve_device
from .embedding import ACTIVATIONS, LinearTime, SinusoidalTimeEmbedding, make_activation
from .energy import PotentialField
from .factory import MODEL_KINDS, build_model, model_config
from .jko_flow import FlowSample, JKOFlow, jko_step_sizes
from .mlp import TIME_EMBEDDINGS, MLPConfig, PotentialMLP, TimeMLP, VectorFieldMLP
from .registry import BACKBONES, Backbone, build_backbone, get_backbone, register_model
from .unet import UNET_SIZES, UNet, UNetConfig

__all__ = [
    "BACKBONES",
    "Backbone",
    "ClassEmbedding",
    "WithLabels",
    "align_conditions",
    "class_count",
    "class_labels",
    "MLPConfig",
    "UNET_SIZES",
    "UNet",
    "UNetConfig",
    "build_backbone",
    "get_backbone",
    "register_model",
    "ACTIVATIONS",
    "FlowSample",
    "JKOFlow",
    "MODEL_KINDS",
    "TIME_EMBEDDINGS",
    "LinearTime",
    "PotentialField",
    "PotentialMLP",
    "SinusoidalTimeEmbedding",
    "TimeMLP",
    "VectorFieldMLP",
    "build_model",
    "jko_step_sizes",
    "place",
    "resolve_device",
    "make_activation",
    "model_config",
]
