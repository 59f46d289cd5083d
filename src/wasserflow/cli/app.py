"""Root of the command line: sub-commands register here; :func:`main` applies the error policy.

Exit codes:

* 0: done.
* 2: an anticipated failure, printed as ONE line on stderr naming the thing and the fix: bad
  input (:class:`~wasserflow.errors.InputError`, any ``ValueError``, a missing file), a bad
  environment (:class:`~wasserflow.errors.EnvironmentProblem`, an ``OSError`` about a path:
  the path is named), a diverged training run (where its last good checkpoint is and how to
  resume it with a lower learning rate), and click's usage errors (its own message).
* 130: Ctrl-C, after one line saying where the partial result is.
* 1: a bug: the traceback, then a line saying so and asking for a report.

Warnings are printed as one ``warning: ...`` line each.
"""

from __future__ import annotations

import sys
import traceback
import warnings

import typer
from rich.markup import escape

from .._interrupt import exit_on_ctrl_c
from ..errors import ENVIRONMENT_ERRNOS, InputError, WasserflowError, describe_os_error
from .output import WideConsole

_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


class _CommandInterrupted(Exception):
    """Ctrl-C inside a command, carried past typer (which would swallow a KeyboardInterrupt
    into a bare exit code) to :func:`main` with its message."""


def reflow(text: str) -> str:
    """A docstring's paragraphs as single lines (typer's rich help keeps the hard wraps of a
    docstring, which then break mid-sentence): lines join with a space unless indented or a
    list item ("* ", "- "), which keep their line; blank lines still part paragraphs."""
    paragraphs = []
    for para in text.split("\n\n"):
        lines: list[str] = []
        for line in para.splitlines():
            keep = line[:1].isspace() or line.lstrip().startswith(("* ", "- ", "\b"))
            if lines and not keep and not lines[-1].startswith("\b"):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.rstrip())
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


class Group(typer.core.TyperGroup):
    """The command groups: a command's help is reflowed (:func:`reflow`) when it is looked
    up, and Ctrl-C is carried to :func:`main`."""

    def get_command(self, ctx, cmd_name):
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and cmd.help:
            cmd.help = reflow(cmd.help)
        return cmd

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:
            raise _CommandInterrupted(str(e) or "interrupted") from e


app = typer.Typer(
    name="wasserflow",
    help="Diffusion and OT flow matching as gradient flows and geodesics in Wasserstein space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)
console = WideConsole()
err_console = WideConsole(stderr=True)


class UsageError(InputError):
    """Bad input from the user: reported in one line with exit code 2."""


def _register() -> None:
    from . import demo, flow, ot, reproduce, train  # noqa: F401  (commands register themselves on import)


def _line(text: str, prefix: str = "[bold red]error:[/] ") -> None:
    one = " ".join(str(text).split())
    err_console.print(prefix + escape(one), highlight=False, soft_wrap=True)


def _warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI with the exit-code policy of this module (it exits unless all went well)."""
    formatwarning = warnings.formatwarning
    warnings.formatwarning = _warning
    try:
        with exit_on_ctrl_c():  # the commands' modules load (torch, POT): seconds
            _register()
        code = app(args=argv, standalone_mode=False)
    except _CommandInterrupted as e:
        _line(str(e), "")
        sys.exit(130)
    except KeyboardInterrupt:
        _line("interrupted", "")
        sys.exit(130)
    except (WasserflowError, ValueError) as e:
        _line(str(e))
        sys.exit(2)
    except OSError as e:
        if e.filename is not None or e.errno in ENVIRONMENT_ERRNOS:
            _line(describe_os_error(e))
        elif isinstance(e, _PATH_ERRORS):
            _line(str(e))
        else:
            _bug()
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except SystemExit:
        raise
    except Exception as e:
        _usage_error(e)
        _bug()
    finally:
        warnings.formatwarning = formatwarning
    if isinstance(code, int) and code:
        if code == 130:
            _line("interrupted", "")
        sys.exit(code)


def _usage_error(e: Exception) -> None:
    """A usage error of typer's (vendored) click parser (bad option, bad value, missing
    argument) as one line naming the command's help; no arguments at all: the help itself.
    Returns when ``e`` is not one."""
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    if isinstance(e, NoArgsIsHelpError):
        e.show()
        sys.exit(e.exit_code)
    if isinstance(e, UsageError):
        ctx = e.ctx
        see = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
        _line(e.format_message().rstrip(".") + see)
        sys.exit(e.exit_code)
    if callable(getattr(e, "show", None)) and hasattr(e, "exit_code"):
        e.show()
        sys.exit(e.exit_code)


def _bug() -> None:
    traceback.print_exc()
    _line(
        "this is a bug in wasserflow, not a problem with your input: please report it with "
        "the command line and the traceback above"
    )
    sys.exit(1)
