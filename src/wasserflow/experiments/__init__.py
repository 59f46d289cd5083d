"""wasserflow.experiments: the paper's claims, measured, with a report (``wasserflow reproduce``).

    from wasserflow.experiments import resolve_config, reproduce
    cfg = resolve_config("quick", methods=["icfm", "otcfm"], seed=0)
    results = reproduce("wasserflow-out/reproduce", cfg, experiments=["paths"])
    results["paths"].verdict          # Verdict(holds=True, text="holds: ...")

Experiments (:data:`EXPERIMENTS`): ``paths`` (exact fields: geodesic gap of VP, VE, I-CFM and
the OT geodesic), ``learned`` (every method of ``wasserflow train``), ``steps`` (NFE needed),
``free-energy`` (KL descent, de Bruijn, JKO against Fokker-Planck), ``denoise-jko`` (a
denoising step is a JKO step). Each returns an :class:`ExperimentResult`; the runner writes
results/<name>.json, results.json, report.md, report.html and figures into the run folder.
"""

from .config import EXPERIMENTS, PROFILES, resolve_config
from .context import Context, ExperimentResult, Verdict
from .runner import RUNNERS, reproduce, select

__all__ = [
    "EXPERIMENTS",
    "PROFILES",
    "RUNNERS",
    "Context",
    "ExperimentResult",
    "Verdict",
    "reproduce",
    "resolve_config",
    "select",
]
