"""The model families of ``wasserflow train``, each a JSON recipe: path, prediction, coupling,
time distribution, weighting and default sampler. The recipe is stored in the checkpoint, so the
sampler is always rebuilt from the same settings the model was trained with.

| method | path (schedule) | network predicts | coupling | times | default sampler |
|---|---|---|---|---|---|
| ddpm | DDPM discrete linear, T = 1000 | epsilon | independent | DDPM steps | ddim (eta 0) |
| ncsn | VE, L = 10 geometric levels | epsilon (= -sigma score) | independent | levels | annealed_langevin |
| sde-vp | VP (beta 0.1..20) | epsilon | independent | U[0, 1 - 1e-3] | euler_maruyama |
| sde-ve | VE (sigma_max from data) | epsilon | independent | U[0, 1] | predictor_corrector |
| icfm | linear | velocity | independent | U[0, 1] | euler |
| otcfm | linear | velocity | exact OT (minibatch, see below) | U[0, 1] | euler |
| sbcfm | linear + Brownian bridge sigma | velocity | entropic OT, reg 2 sigma^2 | U[1e-3, 1 - 1e-3] | euler |
| rectified-flow | linear, then reflow on its own pairs | velocity | independent, then pairs | U[0, 1] | euler |
| energy-matching | linear, field -grad E | velocity | exact OT | U[0, 1] | energy_langevin |
| jko-flow | JKO steps of KL to N(0, I) | K convex-potential maps | - | blocks | jko |

Every regression recipe also takes ``prediction`` (epsilon, x1, score, velocity or
v_prediction: the conversions of :mod:`wasserflow.paths.parametrization` are exact, so any of
them drives every sampler the path allows) and ``time_input`` ("t" or "logsnr": the network
sees the clock or the path's log-SNR, :meth:`~wasserflow.paths.AffinePath.network_time`). On
the 2-D moons benchmark the VP path trains best with velocity prediction, the log-SNR input
and lr 2e-3 (benchmarks/README.md); the defaults above keep each family's published
parametrisation.

The JKO flow has no path, objective or network: ``"trainer": "blockwise"`` makes the engine fit
its blocks one JKO step at a time (:mod:`wasserflow.engine.blockwise`, options ``"jko"`` =
:data:`wasserflow.models.jko_flow.JKO_FLOW_DEFAULTS`).

OT-CFM's coupling options (:mod:`wasserflow.paths.ot_stream`): ``ot_batch`` (None = the training
batch size B: one exact OT per batch, TorchCFM's OT-CFM; a multiple N of B: exact OT on N points,
whose pairs are served in batches of B), ``ot_reuse`` (epochs over each OT block's pairs, default
1) and ``ot_prefetch`` (solve the next block in a background thread while the network trains,
default True). The pairs are still minibatch-OT pairs; a larger N is a straighter coupling.
A recipe without the ``ot_batch`` key (run folders written before these options) couples inside
the objective with the training generator, as it did then.
"""

from __future__ import annotations

import copy
from typing import Any

from ..models.jko_flow import JKO_FLOW_DEFAULTS
from ..paths import AffinePath, get_schedule
from ..paths.ot_stream import OTStreamConfig
from .energy_matching import EnergyMatching
from .regression import PAIRS, PathRegression
from .times import TimeDistribution

_BASE: dict[str, dict[str, Any]] = {
    "ddpm": {
        "schedule": {"name": "ddpm", "num_train_timesteps": 1000, "kind": "linear"},
        "prediction": "epsilon", "coupling": "independent",
        "times": {"kind": "ddpm", "levels": 1000},
        "sampler": {"name": "ddim", "options": {"eta": 0.0}},
    },
    "ncsn": {
        "schedule": {"name": "ve", "sigma_min": 0.01, "sigma_max": None},
        "prediction": "epsilon", "coupling": "independent",
        "times": {"kind": "levels", "levels": 10},
        "sampler": {"name": "annealed_langevin", "options": {"step_lr": 2e-5}},
    },
    "sde-vp": {
        "schedule": {"name": "vp", "beta_min": 0.1, "beta_max": 20.0},
        "prediction": "epsilon", "coupling": "independent",
        "times": {"kind": "uniform", "t_min": 0.0, "t_max": 1.0 - 1e-3},
        "sampler": {"name": "euler_maruyama", "options": {}},
    },
    "sde-ve": {
        "schedule": {"name": "ve", "sigma_min": 0.01, "sigma_max": None},
        "prediction": "epsilon", "coupling": "independent",
        "times": {"kind": "uniform", "t_min": 0.0, "t_max": 1.0},
        "sampler": {"name": "predictor_corrector", "options": {"snr": 0.16}},
    },
    "icfm": {
        "schedule": {"name": "linear"}, "prediction": "velocity", "coupling": "independent",
        "times": {"kind": "uniform"}, "sampler": {"name": "euler", "options": {}},
    },
    "otcfm": {
        "schedule": {"name": "linear"}, "prediction": "velocity", "coupling": "ot",
        "ot_batch": None, "ot_reuse": 1, "ot_prefetch": True,
        "times": {"kind": "uniform"}, "sampler": {"name": "euler", "options": {}},
    },
    "sbcfm": {
        "schedule": {"name": "linear"}, "prediction": "velocity", "coupling": "entropic",
        "coupling_sigma": 0.5, "bridge": "brownian", "bridge_sigma": 0.5,
        "times": {"kind": "uniform", "t_min": 1e-3, "t_max": 1.0 - 1e-3},
        "sampler": {"name": "euler", "options": {}},
    },
    "rectified-flow": {
        "schedule": {"name": "linear"}, "prediction": "velocity", "coupling": "independent",
        "times": {"kind": "uniform"}, "sampler": {"name": "euler", "options": {}},
        "reflow": {"rounds": 1, "pairs": 8192, "nfe": 100},
    },
    "energy-matching": {
        "schedule": {"name": "linear"}, "prediction": "velocity", "coupling": "ot",
        "times": {"kind": "uniform"},
        "energy_matching": {"warmup_fraction": 0.7, "tau_star": 0.9, "eps_max": 0.01,
                            "cd_weight": 1e-3, "negative_steps": 100, "negative_dt": 0.01},
        "sampler": {"name": "energy_langevin",
                    "options": {"n_langevin": 50, "step_size": 0.01, "temperature": 0.01}},
        "model_kind": "energy",
    },
    "jko-flow": {
        "trainer": "blockwise", "model_kind": "jko", "jko": dict(JKO_FLOW_DEFAULTS),
        "sampler": {"name": "jko", "options": {}},
    },
}

METHODS = tuple(_BASE)


def method_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The JSON recipe of a method, with top-level keys overridden."""
    if name not in _BASE:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    cfg = copy.deepcopy(_BASE[name])
    cfg["method"] = name
    cfg.setdefault("model_kind", "mlp")
    cfg.setdefault("bridge", "constant")
    cfg.setdefault("bridge_sigma", 0.0)
    if "jko" in overrides and "jko" in cfg:  # partial JKO flow options keep the other defaults
        overrides = {**overrides, "jko": {**cfg["jko"], **overrides["jko"]}}
    cfg.update(overrides)
    return cfg


def validate_recipe(cfg: dict[str, Any], total_steps: int = 1) -> None:
    """Raise now (not when training starts) if a recipe's objective cannot be built: an unknown
    prediction, time input, coupling or time distribution. A VE recipe's sigma_max, set from
    the data later, is replaced by a placeholder for the check."""
    if cfg.get("trainer") == "blockwise":
        return
    probe = copy.deepcopy(cfg)
    if probe.get("schedule", {}).get("sigma_max", 0.0) is None:
        probe["schedule"]["sigma_max"] = 10.0 * float(probe["schedule"].get("sigma_min", 0.01)) + 1
    build_objective(probe, total_steps=total_steps)


def build_path(cfg: dict[str, Any]) -> AffinePath:
    """The affine path of a recipe (the VE sigma_max must have been set from the data)."""
    if "schedule" not in cfg:
        raise ValueError(f"method {cfg['method']} has no affine path (it is not trained by "
                         "regression on one)")
    sched = dict(cfg["schedule"])
    name = sched.pop("name")
    if name == "ve" and sched.get("sigma_max") is None:
        raise ValueError("the VE schedule's sigma_max is not set: it is fixed from the data "
                         "when training starts (paths.ve_sigma_max_from_data)")
    return AffinePath(get_schedule(name, **sched), bridge_sigma=cfg.get("bridge_sigma", 0.0),
                      bridge=cfg.get("bridge", "constant"))


def _has_ot_stream(cfg: dict[str, Any]) -> bool:
    return cfg.get("coupling") == "ot" and "ot_batch" in cfg and "energy_matching" not in cfg


def ot_stream_config(cfg: dict[str, Any], batch_size: int) -> OTStreamConfig | None:
    """The minibatch-OT pair stream of an OT-coupled regression recipe with an ``ot_batch`` key
    (None: the recipe couples inside its objective). ``ot_batch`` None means N = batch_size."""
    if not _has_ot_stream(cfg):
        return None
    n = cfg["ot_batch"]
    return OTStreamConfig(batch_size=batch_size, ot_batch=batch_size if n is None else int(n),
                          reuse=int(cfg.get("ot_reuse", 1)),
                          prefetch=bool(cfg.get("ot_prefetch", True)))


def build_objective(cfg: dict[str, Any], *, total_steps: int, stage: int = 0):
    """The training objective of a recipe; ``stage`` > 0 is a reflow stage (pairs coupling), as
    is an OT-CFM recipe with a pair stream (:func:`ot_stream_config`: the batches hold pairs)."""
    if cfg.get("trainer") == "blockwise":
        raise ValueError(f"method {cfg['method']} is trained block by block, not with an "
                         "objective: use engine.train_run")
    if cfg["method"] == "energy-matching":
        em = dict(cfg["energy_matching"])
        warm = int(round(em.pop("warmup_fraction") * total_steps))
        return EnergyMatching(warmup_steps=warm, **em)
    t = cfg["times"]
    times = TimeDistribution(kind=t.get("kind", "uniform"), t_min=t.get("t_min", 0.0),
                             t_max=t.get("t_max", 1.0), levels=t.get("levels", 1000),
                             power=t.get("power", 1.0))
    return PathRegression(
        path=build_path(cfg), prediction=cfg["prediction"],
        coupling=PAIRS if stage > 0 or _has_ot_stream(cfg) else cfg["coupling"],
        times=times,
        weighting=cfg.get("weighting", "none"), coupling_sigma=cfg.get("coupling_sigma"),
        time_input=cfg.get("time_input", "t"),
    )
