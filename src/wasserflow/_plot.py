"""The one matplotlib entry of the package: ``pyplot()`` returns matplotlib.pyplot on the Agg
backend (files only, no display).

matplotlib (an optional extra, ``pip install wasserflow[plot]``) is imported on the first call,
never by ``import wasserflow``, and the backend is set on that first call only, not on every
figure. Used by the CLI pictures (``cli.plots``, ``cli.flow``) and the report figures
(``experiments.figures``).
"""

from __future__ import annotations

import functools


@functools.cache
def pyplot():
    """matplotlib.pyplot with the Agg backend; ValueError naming the extra if it is missing."""
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ValueError("plotting needs matplotlib: pip install 'wasserflow[plot]'") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt
