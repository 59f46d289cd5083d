"""python -m wasserflow: the command line (Ctrl-C while it loads exits 130 in one line too:
:mod:`wasserflow._interrupt`)."""

from ._interrupt import exit_on_ctrl_c

with exit_on_ctrl_c():
    from .cli import main

if __name__ == "__main__":
    main()
