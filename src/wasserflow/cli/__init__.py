"""The ``wasserflow`` command line (typer + rich). Entry point: :func:`main`."""

from .app import app, main

__all__ = ["app", "main"]
