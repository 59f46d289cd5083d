"""Shared helper of the CLI tests: run ``wasserflow`` in-process."""

import pytest

from wasserflow.cli import main


def run(argv, capsys):
    """(exit code, stdout, stderr) of ``wasserflow argv``."""
    with pytest.raises(SystemExit) as e:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err
