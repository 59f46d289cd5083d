"""Profiles and the resolved configuration of ``wasserflow reproduce``.

A profile fixes every size (training steps, widths, sample counts, grids); the resolved config
(profile values plus --methods, --data, --seed) is stored as ``config.json`` in the run folder
and a rerun into the same folder must resolve to the same config, so finished experiments can
be reused without mixing numbers from different settings.

| profile | training steps | width x depth | JKO flow blocks x units | samples (W2) | meant for |
|---|---|---|---|---|---|
| test | 300 | 48 x 3 | 4 x 8 | 300 | the test suite (< 60 s) |
| quick | 400 | 64 x 2 | 12 x 32 | 500 | a first look (< 3 min on 2 CPU cores) |
| default | 3000 | 128 x 3 | 24 x 64 | 1000 | the report (< 15 min on 2 CPU cores) |
| full | 20000 | 256 x 4 | 32 x 128 | 4000 | a GPU |

``images`` (8 x 8 digits, the network methods of ``--methods``): test 60 steps of an MLP 64 x 2
on icfm, otcfm, ddpm (200 samples); quick 300 steps, MLP 128 x 2, four methods (500); default
800 steps, MLP 256 x 3, every network method (1,000 samples, NFE up to 32); full 20,000 steps
of the digits UNet with dopri5 (all 1,797 digits, NFE up to 100).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..engine.methods import METHODS, recipe
from ..objectives import objective_spec

EXPERIMENTS = ("paths", "learned", "steps", "free-energy", "denoise-jko", "images")
"""Experiment names in run order (``steps`` reads ``learned``'s numbers)."""

NFES = (1, 2, 4, 8, 16, 32, 100)

_PROFILES: dict[str, dict[str, Any]] = {
    "test": {
        "paths": {
            "n": 300,
            "n_steps": 40,
            "n_times": 6,
            "grid": {"n": 24, "n_times": 8, "max_iter": 200, "n_w2": 300},
            # trained on gmm2d, their ODE marginals against the grid geodesic
            "learned": {
                "methods": ["icfm", "otcfm", "ddpm"],
                "steps": 200,
                "warmup": 20,
                "width": 48,
                "depth": 3,
                "batch_size": 256,
                "lr": 2e-3,
                "nfe": 20,
                "reflow_pairs": 1024,
                "reflow_nfe": 20,
            },
        },
        "learned": {
            "data": ["moons"],
            "steps": 300,
            "warmup": 20,
            "width": 48,
            "depth": 3,
            "batch_size": 128,
            "lr": 2e-3,
            "n_eval": 300,
            "nfes": [1, 4, 16, 100],
            "adaptive": False,
            "reflow_pairs": 1024,
            "reflow_nfe": 20,
            "n_traj": 16,
            "em_negative_steps": 10,
            "jko": {"blocks": 4, "units": 8, "particles": 500, "max_iter": 30},
        },
        "free-energy": {
            "mixture": "gmm2d",
            "n": 1000,
            "tau_max": 2.0,
            "n_tau": 21,
            "h": [0.4, 0.2, 0.1],
            "jko_t_max": 2.0,
            "grid_jko": None,
        },
        "denoise-jko": {"h": [0.4, 0.2, 0.1, 0.05, 0.025], "tau": 0.1},
        "images": {
            "data": "digits_images",
            "methods": ["icfm", "otcfm", "ddpm"],
            "model": "mlp",
            "model_options": {"width": 64, "depth": 2},
            "steps": 60,
            "warmup": 6,
            "batch_size": 128,
            "lr": 2e-3,
            "n_eval": 200,
            "nfes": [1, 4],
            "adaptive": False,
            "features": "digits8",
            "n_tile": 16,
            "reflow_pairs": 256,
            "reflow_nfe": 8,
            "em_negative_steps": 5,
            # TorchCFM's SB-CFM sigma: reg = 2 sigma^2 = 0.5 (the 2-D recipe) needs > 10^4
            # Sinkhorn iterations per batch of 64-d digits, reg = 2 about 50
            "method_overrides": {"sbcfm": {"coupling.sigma": 1.0, "path.bridge_sigma": 1.0}},
        },
    },
    "quick": {
        "paths": {
            "n": 600,
            "n_steps": 50,
            "n_times": 11,
            "grid": {"n": 24, "n_times": 8, "max_iter": 300, "n_w2": 400},
            # trained on gmm2d, their ODE marginals against the grid geodesic
            "learned": {
                "methods": ["icfm", "otcfm", "ddpm"],
                "steps": 800,
                "warmup": 50,
                "width": 64,
                "depth": 3,
                "batch_size": 256,
                "lr": 2e-3,
                "nfe": 50,
                "reflow_pairs": 2048,
                "reflow_nfe": 50,
            },
        },
        "learned": {
            "data": ["moons"],
            "steps": 400,
            "warmup": 40,
            "width": 64,
            "depth": 2,
            "batch_size": 128,
            "lr": 2e-3,
            "n_eval": 500,
            "nfes": list(NFES),
            "adaptive": True,
            "reflow_pairs": 2048,
            "reflow_nfe": 40,
            "n_traj": 32,
            "em_negative_steps": 20,
            "jko": {"blocks": 12, "units": 32, "particles": 1500, "max_iter": 60},
        },
        "free-energy": {
            "mixture": "gmm2d",
            "n": 2000,
            "tau_max": 3.0,
            "n_tau": 31,
            "h": [0.4, 0.2, 0.1, 0.05],
            "jko_t_max": 2.0,
            "grid_jko": None,
        },
        "denoise-jko": {"h": [0.4, 0.2, 0.1, 0.05, 0.025, 0.0125], "tau": 0.1},
        "images": {
            "data": "digits_images",
            "methods": ["icfm", "otcfm", "ddpm", "sde-vp"],
            "model": "mlp",
            "model_options": {"width": 128, "depth": 2},
            "steps": 300,
            "warmup": 30,
            "batch_size": 128,
            "lr": 2e-3,
            "n_eval": 500,
            "nfes": [1, 2, 4, 16],
            "adaptive": False,
            "features": "digits8",
            "n_tile": 16,
            "reflow_pairs": 1024,
            "reflow_nfe": 16,
            "em_negative_steps": 10,
            # TorchCFM's SB-CFM sigma: reg = 2 sigma^2 = 0.5 (the 2-D recipe) needs > 10^4
            # Sinkhorn iterations per batch of 64-d digits, reg = 2 about 50
            "method_overrides": {"sbcfm": {"coupling.sigma": 1.0, "path.bridge_sigma": 1.0}},
        },
    },
    "default": {
        "paths": {
            "n": 1000,
            "n_steps": 100,
            "n_times": 21,
            "grid": {"n": 32, "n_times": 16, "max_iter": 500, "n_w2": 500},
            # trained on gmm2d, their ODE marginals against the grid geodesic
            "learned": {
                "methods": ["icfm", "otcfm", "rectified-flow", "ddpm"],
                "steps": 1000,
                "warmup": 100,
                "width": 128,
                "depth": 3,
                "batch_size": 256,
                "lr": 2e-3,
                "nfe": 100,
                "reflow_pairs": 4096,
                "reflow_nfe": 100,
            },
        },
        "learned": {
            "data": ["moons"],
            "steps": 3000,
            "warmup": 100,
            "width": 128,
            "depth": 3,
            "batch_size": 256,
            "lr": 2e-3,
            "n_eval": 1000,
            "nfes": list(NFES),
            "adaptive": True,
            "reflow_pairs": 8192,
            "reflow_nfe": 100,
            "n_traj": 48,
            "em_negative_steps": 50,
            "jko": {"blocks": 24, "units": 64, "particles": 4000, "max_iter": 100},
        },
        "free-energy": {
            "mixture": "gmm2d",
            "n": 8000,
            "tau_max": 3.0,
            "n_tau": 61,
            "h": [0.4, 0.2, 0.1, 0.05, 0.025],
            "jko_t_max": 2.0,
            "grid_jko": None,
        },
        "denoise-jko": {"h": [0.4, 0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625], "tau": 0.1},
        "images": {
            "data": "digits_images",
            "methods": None,  # every network-trained method
            "model": "mlp",
            "model_options": {"width": 256, "depth": 3},
            "steps": 800,
            "warmup": 100,
            "batch_size": 128,
            "lr": 2e-3,
            "n_eval": 1000,
            "nfes": [1, 2, 4, 8, 16, 32],
            "adaptive": False,
            "features": "digits8",
            "n_tile": 16,
            "reflow_pairs": 4096,
            "reflow_nfe": 32,
            "em_negative_steps": 20,
            # TorchCFM's SB-CFM sigma: reg = 2 sigma^2 = 0.5 (the 2-D recipe) needs > 10^4
            # Sinkhorn iterations per batch of 64-d digits, reg = 2 about 50
            "method_overrides": {"sbcfm": {"coupling.sigma": 1.0, "path.bridge_sigma": 1.0}},
        },
    },
    "full": {
        "paths": {
            "n": 4000,
            "n_steps": 400,
            "n_times": 41,
            "grid": {"n": 64, "n_times": 32, "max_iter": 2000, "n_w2": 1000},
            # trained on gmm2d, their ODE marginals against the grid geodesic
            "learned": {
                "methods": ["icfm", "otcfm", "sbcfm", "rectified-flow", "ddpm", "sde-vp"],
                "steps": 10000,
                "warmup": 500,
                "width": 256,
                "depth": 4,
                "batch_size": 512,
                "lr": 2e-3,
                "nfe": 200,
                "reflow_pairs": 16384,
                "reflow_nfe": 100,
            },
        },
        "learned": {
            "data": ["moons", "8gaussians", "checkerboard"],
            "steps": 20000,
            "warmup": 500,
            "width": 256,
            "depth": 4,
            "batch_size": 512,
            "lr": 1e-3,
            "n_eval": 4000,
            "nfes": list(NFES),
            "adaptive": True,
            "reflow_pairs": 32768,
            "reflow_nfe": 100,
            "n_traj": 64,
            "em_negative_steps": 100,
            "jko": {"blocks": 32, "units": 128, "particles": 8000, "max_iter": 150},
        },
        "free-energy": {
            "mixture": "gmm2d",
            "n": 20000,
            "tau_max": 3.0,
            "n_tau": 121,
            "h": [0.4, 0.2, 0.1, 0.05, 0.025, 0.0125],
            "jko_t_max": 2.0,
            "grid_jko": {"n": 64, "half_width": 6.0, "h": [0.4, 0.2, 0.1]},
        },
        "denoise-jko": {"h": [0.4, 0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125], "tau": 0.1},
        "images": {
            "data": "digits_images",
            "methods": None,  # every network-trained method
            "model": "unet",
            "model_options": {"size": "digits"},
            "steps": 20000,
            "warmup": 100,
            "batch_size": 128,
            "lr": 2e-3,
            "n_eval": 1797,
            "nfes": [1, 2, 4, 8, 16, 32, 100],
            "adaptive": True,
            "features": "digits8",
            "n_tile": 16,
            "reflow_pairs": 16384,
            "reflow_nfe": 100,
            "em_negative_steps": 50,
            # TorchCFM's SB-CFM sigma: reg = 2 sigma^2 = 0.5 (the 2-D recipe) needs > 10^4
            # Sinkhorn iterations per batch of 64-d digits, reg = 2 about 50
            "method_overrides": {"sbcfm": {"coupling.sigma": 1.0, "path.bridge_sigma": 1.0}},
        },
    },
}

PROFILES = tuple(_PROFILES)


def resolve_config(
    profile: str = "quick",
    *,
    methods: list[str] | None = None,
    data: list[str] | None = None,
    image_data: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The full JSON configuration of a reproduce run (everything that changes a number).

    ``methods`` narrows ``learned`` and ``images`` (which trains the network methods only);
    ``data`` sets ``learned``'s point-cloud sets and ``image_data`` ``images``' data spec
    (MNIST, Fashion-MNIST, CIFAR-10, an image folder: see ``wasserflow.data``), whose FD
    features are then the default of its image shape."""
    if profile not in _PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    cfg = copy.deepcopy(_PROFILES[profile])
    if methods:
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise ValueError(
                f"unknown method(s) {', '.join(bad)}: choose from {', '.join(METHODS)}"
            )
        cfg["learned"]["methods"] = list(dict.fromkeys(methods))
    else:
        cfg["learned"]["methods"] = list(METHODS)
    network = [m for m in METHODS if objective_spec(recipe(m).objective).has_network]
    im = cfg["images"]
    im["methods"] = [m for m in (im["methods"] or network) if m in network]
    if methods:
        im["methods"] = [m for m in methods if m in network]
    if image_data:
        from ..data import make_source

        src = make_source(image_data)  # raises ValueError naming the problem
        if len(src.shape) != 3:
            raise ValueError(
                f"--image-data {image_data!r} holds points of shape {src.shape}, not images: "
                "give an image spec (mnist:FILE, cifar10:FILE, images:FOLDER, array:FILE)"
            )
        im["data"] = image_data
        im["features"] = "auto"
    if data:
        from ..data import make_source

        for d in data:
            make_source(d)  # raises ValueError naming the data set and the choices
        cfg["learned"]["data"] = list(dict.fromkeys(data))
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return {"version": 1, "profile": profile, "seed": seed, **cfg}


def config_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    """The first key path where two configs differ ("learned.steps: 400 != 1500"), or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if k not in old or k not in new:
                return f"{prefix}{k}: present in only one of the two configurations"
            diff = config_difference(old[k], new[k], f"{prefix}{k}.")
            if diff:
                return diff
        return None
    if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
        return f"{prefix.rstrip('.')}: {old!r} (folder) != {new!r} (now)"
    return None
