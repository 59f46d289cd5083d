"""python -m wasserflow: the command line (Ctrl-C while it loads exits 130 in one line too)."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:
    sys.stderr.write("interrupted\n")
    sys.exit(130)

if __name__ == "__main__":
    main()
