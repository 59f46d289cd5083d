"""Root of the command line: sub-commands register here; errors become one line and exit 2."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="wasserflow",
    help="Diffusion and OT flow matching as gradient flows and geodesics in Wasserstein space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


class UsageError(ValueError):
    """Bad input from the user: reported in one line with exit code 2."""


def _register() -> None:
    from . import demo, flow, ot, reproduce, train  # noqa: F401  (commands register themselves on import)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a ValueError (bad file, bad option) prints one line and exits with 2."""
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except (ValueError, FileNotFoundError) as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except SystemExit:
        raise
    except Exception as e:
        # usage errors of the (vendored) click parser: bad option, bad choice, missing argument
        if callable(getattr(e, "show", None)) and hasattr(e, "exit_code"):
            e.show()
            sys.exit(2)
        raise
