"""Sample quality and path geometry of trained models, built on :mod:`wasserflow.geometry`."""

from .quality import Evaluation, evaluate_run, fresh_data

__all__ = ["Evaluation", "evaluate_run", "fresh_data"]
