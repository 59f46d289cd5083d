"""MkDocs hooks of the docs site (mkdocs.yml ``hooks:``).

* The command-line reference: the marker ``<!-- cli-reference -->`` in docs/reference/cli.md is
  replaced at build time by every command of the typer app, walked through the click it is built
  on (usage, help, arguments and options with type and default), so the page cannot go stale.
* Sphinx-style roles in docstrings (``:func:`w2```) are shown as plain code (``w2``), and
  angle brackets of mathematics or placeholders in docstrings (``<P, C>``, ``results/<name>``),
  which Markdown passes through as HTML tags, as text.
* benchmarks/README.md and CHANGELOG.md, which live outside docs/, become the pages
  benchmarks.md and changelog.md.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

import typer
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = {"benchmarks.md": "benchmarks/README.md", "changelog.md": "CHANGELOG.md"}
LINKS = {"](benchmarks/README.md": "](benchmarks.md", "](docs/": "]("}  # repository -> site

MARKER = "<!-- cli-reference -->"
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):(?=<code>)")
_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)(,?)([^<>]*)>")
_HTML = set(
    "a abbr address area article aside audio b bdi bdo blockquote body br button canvas caption"
    " cite code col colgroup data datalist dd del details dfn dialog div dl dt em embed fieldset"
    " figcaption figure footer form h1 h2 h3 h4 h5 h6 head header hr html i iframe img input ins"
    " kbd label legend li link main map mark math meta meter nav noscript object ol optgroup"
    " option output p param picture pre progress q rp rt ruby s samp script section select slot"
    " small source span strong style sub summary sup svg table tbody td template textarea tfoot"
    " th thead time title tr track u ul var video wbr path g use circle rect line polyline"
    " polygon defs symbol mi mo mn mrow msup msub mfrac autoref".split()  # autorefs: its marker
)
_CODE = re.compile(r"(`+[^`]*`+)")
_SPECIAL = re.compile(r"([\\*_\[\]>|])")


def _md(text: str) -> str:
    """Plain help text as Markdown: code spans kept, every other Markdown character escaped."""
    parts = _CODE.split(" ".join(text.split()))
    plain = (_SPECIAL.sub(r"\\\1", p).replace("<", "&lt;") for p in parts[::2])
    parts[::2] = list(plain)
    return "".join(parts)


def _cell(text: object) -> str:
    return _md(str(text))


def _help_text(text: str | None) -> str:
    """Click's help: paragraphs separated by blank lines; ``\\b`` marks a verbatim block."""
    blocks = []
    for block in (text or "").strip().split("\n\n"):
        if block.startswith("\b\n"):
            blocks.append("```text\n" + block[2:] + "\n```")
        else:
            blocks.append(_md(block))
    return "\n\n".join(blocks)


def _type(param) -> str:
    if param.param_type_name == "argument":
        return "argument"
    if getattr(param, "is_flag", False):
        return "flag"
    kind = getattr(param, "type", None)  # click's ParamType; newer typer keeps the annotation
    if kind is not None:
        return kind.name
    kind = param.type_descriptor.annotation
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return " | ".join(str(m.value) for m in kind)
    return kind.__name__ if isinstance(kind, type) else str(kind)


def _default(param) -> str:
    if param.required:
        return "required"
    value = param.default
    if value is None or value in ((), []) or getattr(param, "is_flag", False) and value is False:
        return ""
    if callable(value):
        return "(computed)"
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{value}`"


def _params_table(cmd, ctx: typer.Context) -> list[str]:
    rows = []
    for p in cmd.get_params(ctx):
        if getattr(p, "hidden", False) or p.name == "help":
            continue
        names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
        rows.append(
            f"| {names} | {_cell(_type(p))} | {_default(p)} | {_cell(getattr(p, 'help', '') or '')} |"
        )
    if not rows:
        return []
    return ["| name | type | default | help |", "|---|---|---|---|", *rows, ""]


def _command(cmd, ctx: typer.Context, level: int) -> list[str]:
    usage = " ".join([ctx.command_path, *cmd.collect_usage_pieces(ctx)])
    out = [f"{'#' * level} `{ctx.command_path}`", "", f"```text\n{usage}\n```", ""]
    out += [_help_text(cmd.help), "", *_params_table(cmd, ctx)]
    if hasattr(cmd, "list_commands"):  # a group (typer vendors its own click)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                sub_ctx = typer.Context(sub, info_name=name, parent=ctx)
                out += _command(sub, sub_ctx, min(level + 1, 4))
    return out


def cli_reference() -> str:
    """The Markdown of every command of ``wasserflow``, from the typer app itself."""
    from wasserflow.cli import app
    from wasserflow.cli.app import _register

    _register()  # the sub-commands register themselves on import
    root = typer.main.get_command(app)
    return "\n".join(_command(root, typer.Context(root, info_name="wasserflow"), 2))


def on_files(files, config):
    for uri, path in OUTSIDE.items():
        text = (ROOT / path).read_text()
        for link, page in LINKS.items():
            text = text.replace(link, page)
        files.append(File.generated(config, uri, content=text))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return markdown


def _text_if_not_html(m: re.Match) -> str:
    if m[3] or m[2].lower() not in _HTML:  # "<P, C>" or "<name>": text, not a tag
        return "&lt;" + m[0][1:-1] + "&gt;"
    return m[0]


def on_page_content(html: str, page, config, files) -> str:
    return _TAG.sub(_text_if_not_html, _ROLE.sub("", html))
