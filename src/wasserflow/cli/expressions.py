"""A bounded sandbox for potentials written as expressions: ``compile_expression(text)`` -> V(x).

The expression is Python in ``x`` of shape (n, d), e.g. ``"0.5*sum(x**2) + sin(3*x[:, 0])"``.
It is checked node by node (numbers, + - * / ** %, subscripts of x, the functions of
:data:`FUNCTIONS` and the constants of :data:`CONSTANTS`) before evaluation: no attribute
access, no other names.

Bounded cost: at most ``MAX_EXPRESSION_CHARS`` characters and ``MAX_NODES`` syntax nodes; every
number outside an index is made a float (float arithmetic cannot run long: ``9**9**9``
overflows at once); integers stay integers only inside an index (``x[:, i]``), where every
constant sub-expression is computed at parse time with each intermediate integer bounded by
``MAX_INDEX_INT`` (a power with a base of 2 or more and an exponent above 20 is refused before
it is computed), so ``x[:, 9**9**9]`` is refused instead of hanging. Tuples appear only as the
index itself (no ``(0,) * n`` repetition) and booleans, None and ``...`` are refused, so a
tensor never has more than two dimensions and an intermediate at most n^2 entries for n points.
What is left is elementwise tensor work; :func:`probe_expression` evaluates it once on 5 points
under a wall-clock limit (``PROBE_SECONDS``; SIGALRM, main thread on POSIX) as a backstop.

Every refusal is a :class:`~wasserflow.cli.app.UsageError` (a ``ValueError``) of one line naming
the part of the expression and the limit.
"""

from __future__ import annotations

import ast
import contextlib
import math
import operator
import signal
import sys
import threading
import time
from collections.abc import Callable

import torch

from .app import UsageError

FUNCTIONS = {
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "cosh": torch.cosh,
    "sinh": torch.sinh,
    "log1p": torch.log1p,
    "sigmoid": torch.sigmoid,
    "softplus": torch.nn.functional.softplus,
    "sum": lambda t: t.sum(-1),
    "norm": lambda t: torch.linalg.vector_norm(t, dim=-1),
    "minimum": torch.minimum,
    "maximum": torch.maximum,
}
"""The functions an expression may call, by name (``sum`` and ``norm`` reduce the last axis)."""
CONSTANTS = {"pi": math.pi, "e": math.e}
"""The named constants an expression may use."""
_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Subscript,
    ast.Slice,
    ast.Tuple,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.USub,
    ast.UAdd,
    ast.Mod,
)
MAX_EXPRESSION_CHARS = 10_000
MAX_NODES = 1_000
MAX_INDEX_INT = 10**6
PROBE_SECONDS = 5.0
_NOT_CONST = object()


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_INDEX_LIMIT = f"integers in an index such as x[:, i] are limited to {MAX_INDEX_INT:,} in magnitude"


def _show(text: str, width: int = 80) -> str:
    """repr of an expression or a part of one, cut to ``width`` characters."""
    text = text.strip()
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _part(node: ast.AST) -> str:
    return _show(ast.unparse(node), 60)


def _fold(node: ast.AST, text: str, in_index: bool = False):
    """Check every constant sub-expression by computing it, as evaluation will; return the value
    of ``node`` if it is constant, else ``_NOT_CONST``.

    Outside an index numbers are floats (an overflow or a division by zero is refused here);
    inside one they keep Python's types and every integer is bounded by MAX_INDEX_INT.
    """
    if isinstance(node, ast.Constant):
        if in_index:
            if isinstance(node.value, int) and abs(node.value) > MAX_INDEX_INT:
                raise UsageError(
                    f"potential {_show(text)}: the index constant {_part(node)} is too large: "
                    + _INDEX_LIMIT
                )
            return node.value
        try:
            return float(node.value)
        except OverflowError:
            raise UsageError(
                f"potential {_show(text)}: a constant of {len(str(node.value))} digits is beyond "
                f"the float range (magnitudes up to {sys.float_info.max:.3g})"
            ) from None
    if isinstance(node, ast.UnaryOp):
        v = _fold(node.operand, text, in_index)
        return _NOT_CONST if v is _NOT_CONST else (-v if isinstance(node.op, ast.USub) else +v)
    if isinstance(node, ast.BinOp):
        a, b = _fold(node.left, text, in_index), _fold(node.right, text, in_index)
        if a is _NOT_CONST or b is _NOT_CONST:
            return _NOT_CONST
        where = f"potential {_show(text)}: {_part(node)}" + (" in an index" if in_index else "")
        too_big = UsageError(f"{where} is too large: {_INDEX_LIMIT}")
        if isinstance(node.op, ast.Pow) and isinstance(a, int) and isinstance(b, int):
            if abs(a) >= 2 and b > 20:  # 2**20 > MAX_INDEX_INT already: refuse before computing
                raise too_big
        try:
            v = _BINOPS[type(node.op)](a, b)
        except ZeroDivisionError:
            raise UsageError(f"{where} divides by zero") from None
        except OverflowError:
            raise UsageError(
                f"{where} overflows the float range (magnitudes up to {sys.float_info.max:.3g})"
            ) from None
        if isinstance(v, complex):
            raise UsageError(f"{where} is not a real number")
        if isinstance(v, int) and abs(v) > MAX_INDEX_INT:
            raise too_big
        return v
    if isinstance(node, ast.Subscript):
        _fold(node.value, text, in_index)
        _fold(node.slice, text, True)
        return _NOT_CONST
    for child in ast.iter_child_nodes(node):
        _fold(child, text, in_index)
    return _NOT_CONST


def _check_nodes(nodes: list[ast.AST], text: str) -> None:
    """Refuse every node outside the whitelist: node types, names, calls, constants, tuples."""
    index_tuples = {
        id(n.slice)
        for n in nodes
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Tuple)
    }
    for node in nodes:
        if not isinstance(node, _NODES):
            raise UsageError(
                f"potential {_show(text)}: {type(node).__name__} is not allowed; use numbers, "
                "+ - * / **, x[:, i] and the functions " + ", ".join(FUNCTIONS)
            )
        if isinstance(node, ast.Name) and node.id not in {"x", *FUNCTIONS, *CONSTANTS}:
            raise UsageError(
                f"potential {_show(text)}: unknown name {node.id!r}; the variable is x and the "
                "functions are " + ", ".join(FUNCTIONS)
            )
        if isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords
        ):
            raise UsageError(
                f"potential {_show(text)}: only calls f(...) of {', '.join(FUNCTIONS)}"
            )
        if isinstance(node, ast.Constant) and (
            isinstance(node.value, bool) or not isinstance(node.value, (int, float))
        ):
            raise UsageError(f"potential {_show(text)}: only numeric constants are allowed")
        if isinstance(node, ast.Tuple) and id(node) not in index_tuples:
            raise UsageError(
                f"potential {_show(text)}: the tuple {_part(node)} is not allowed; tuples are only "
                "for indices such as x[:, 0]"
            )


def compile_expression(text: str):
    """V(x) from a restricted expression in x; a ValueError names the offending construct.

    The checks bound the work of one evaluation (see the module docstring); each refusal is a
    :class:`UsageError` (a ``ValueError``) naming the part of the expression and the limit.
    """
    if len(text) > MAX_EXPRESSION_CHARS:
        raise UsageError(
            f"potential {_show(text, 40)} has {len(text)} characters, above the limit "
            f"{MAX_EXPRESSION_CHARS}: simplify it"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise UsageError(f"potential {_show(text)} is not a valid expression: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise UsageError(f"potential {_show(text, 40)} is nested too deeply: simplify it") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise UsageError(
            f"potential {_show(text, 40)} has {len(nodes)} syntax nodes, above the limit "
            f"{MAX_NODES}: simplify it"
        )
    _check_nodes(nodes, text)
    try:
        _fold(tree, text)
    except RecursionError:
        raise UsageError(f"potential {_show(text, 40)} is nested too deeply: simplify it") from None
    index = {id(n) for s in nodes if isinstance(s, ast.Subscript) for n in ast.walk(s.slice)}
    for node in nodes:  # float constants: 9**9**9 overflows at once instead of hanging
        if isinstance(node, ast.Constant) and id(node) not in index:
            node.value = float(node.value)  # in range: _fold checked it
    try:
        code = compile(tree, "<potential>", "eval")
    except (RecursionError, MemoryError):
        raise UsageError(f"potential {_show(text, 40)} is nested too deeply: simplify it") from None

    def energy(x: torch.Tensor) -> torch.Tensor:
        v = eval(code, {"__builtins__": {}}, {"x": x, **FUNCTIONS, **CONSTANTS})  # noqa: S307
        v = torch.as_tensor(v, dtype=x.dtype)
        if v.dim() == 2 and v.shape[1] == 1:
            v = v[:, 0]
        if v.dim() == 0:
            v = v.expand(x.shape[0])
        if v.shape != (x.shape[0],):
            raise UsageError(
                f"potential {_show(text)} gives shape {tuple(v.shape)} for x of shape "
                f"{tuple(x.shape)}: it must give one value per point (use sum(...) over coordinates)"
            )
        return v

    return energy


class _ProbeTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise _ProbeTimeout in the body after ``seconds`` (SIGALRM: main thread, POSIX only;
    elsewhere no limit). A timer armed before is re-armed with what was left of it."""
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def on_alarm(signum, frame):
        raise _ProbeTimeout

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            left = old_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), old_interval)


def probe_expression(
    energy: Callable[[torch.Tensor], torch.Tensor], text: str, dim: int, *, seconds: float
) -> None:
    """Evaluate ``energy`` (compiled from ``text``) once on 5 points of [-1, 1]^dim.

    Refused (:class:`UsageError`) when it fails there, takes more than ``seconds`` (see
    :func:`_time_limit`) or gives a value that is not finite.
    """
    probe = torch.linspace(-1, 1, 5 * dim, dtype=torch.float64).reshape(5, dim)
    try:
        with _time_limit(seconds):
            v = energy(probe)
    except UsageError:
        raise
    except _ProbeTimeout:
        raise UsageError(
            f"potential {_show(text)} took more than {seconds:g} s on 5 points "
            "(the limit): simplify it"
        ) from None
    except Exception as e:  # shape errors, bad indices: reported as bad input
        raise UsageError(f"potential {_show(text)} fails on x of shape (5, {dim}): {e}") from None
    if not torch.isfinite(v).all():
        raise UsageError(f"potential {_show(text)} is not finite on [-1, 1]^{dim}")
