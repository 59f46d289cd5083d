"""wasserflow.experiments: the paper's claims, measured, with a report (``wasserflow reproduce``).

    from wasserflow.experiments import resolve_config, reproduce
    cfg = resolve_config("quick", methods=["icfm", "otcfm"], seed=0)
    results = reproduce("wasserflow-out/reproduce", cfg, experiments=["paths"])
    results["paths"].verdict          # Verdict(holds=True, text="holds: ...", checks=(...))

Experiments (:data:`EXPERIMENTS`, registered by :func:`register_experiment` in the modules
imported below, in run order): ``paths`` (exact fields: geodesic gap of VP, VE, I-CFM and the
OT geodesic, against the grid Benamou-Brenier geodesic), ``learned`` (every method of
``wasserflow train``), ``steps`` (NFE needed), ``free-energy`` (KL descent, de Bruijn, JKO
against Fokker-Planck), ``denoise-jko`` (a denoising step is a JKO step), ``images``
(straightness and steps on 8 x 8 digits), ``guidance`` (classifier-free guidance against the
tilted law on a labelled 2-D mixture), ``one-step`` (the flow maps' one-step error against the
curvature of the path they learn). Each returns an :class:`ExperimentResult`; the runner
writes results/<name>.json, results.json, report.md, report.html and figures into the run folder.
"""

from . import (  # noqa: F401  (they register themselves)
    denoise_jko,
    free_energy_exp,
    guidance_exp,
    images_exp,
    learned,
    one_step,
    paths_exp,
    steps,
)
from .config import ReproduceConfig, resolve_config
from .context import Check, Context, ExperimentResult, Verdict
from .registry import EXPERIMENTS, PROFILES, Profile, Request, register_experiment, select
from .runner import reproduce

__all__ = [
    "EXPERIMENTS",
    "PROFILES",
    "Check",
    "Context",
    "ExperimentResult",
    "Profile",
    "ReproduceConfig",
    "Request",
    "Verdict",
    "register_experiment",
    "reproduce",
    "resolve_config",
    "select",
]
