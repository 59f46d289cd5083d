"""report.md and a self-contained report.html (PNG figures embedded as base64, no network).

Both are rendered from the experiments' results alone: claim, tables, figures, notes and the
computed verdict of each finished experiment; experiments not finished yet are listed as such.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from .._atomic import write_text
from .config import ReproduceConfig
from .context import ExperimentResult, Table
from .records import to_json
from .registry import EXPERIMENTS


@dataclass(frozen=True)
class Environment:
    """environment.json: versions, platform, device, seed, profile, wall seconds by
    experiment, the run's status (complete, partial or interrupted) and how many worker processes
    trained the models at once (:mod:`.workers`: each with cores // workers torch threads)."""

    wasserflow: str
    python: str
    platform: str
    torch: str
    numpy: str
    scipy: str
    pot: str
    matplotlib: str
    device: str
    network_device: str
    torch_threads: int
    seed: int
    profile: str
    wall_seconds: dict[str, float]
    status: str
    workers: int = 1

    def lines(self) -> list[str]:
        return [f"{k}: {v}" for k, v in to_json(self).items()]


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == 0:
            return "0"
        return f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def _seeds(config: ReproduceConfig) -> str:
    """ "seed 0" or "seeds 0, 1, 2 (each verdict holds only where it holds on every seed)"."""
    if config.seeds == 1:
        return f"seed {config.seed}"
    seeds = ", ".join(map(str, config.seed_list))
    return f"seeds {seeds} (each verdict holds only where it holds on every seed)"


def _label(holds) -> str:
    return {True: "HOLDS", False: "DOES NOT HOLD", None: "PENDING"}[holds]


def _summary(results: dict[str, ExperimentResult]) -> list[tuple[str, str, str]]:
    rows = []
    for name in EXPERIMENTS:
        r = results.get(name)
        rows.append(
            (
                name,
                _label(r.verdict.holds) if r else "NOT RUN",
                r.verdict.text if r else "not run yet (interrupted or not selected)",
            )
        )
    return rows


def markdown(
    config: ReproduceConfig, results: dict[str, ExperimentResult], env: Environment
) -> str:
    lines = [
        "# wasserflow reproduce: the paper's claims, measured",
        "",
        f"Profile `{config.profile}`, {_seeds(config)}, device {env.device}, "
        f"status **{env.status}**.",
        "",
        "| experiment | verdict | by how much |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {v} | {t} |" for n, v, t in _summary(results)]
    for name, experiment in EXPERIMENTS.items():
        lines += ["", f"## {experiment.title} (`{name}`)", ""]
        r = results.get(name)
        if r is None:
            lines.append(
                "_Not run yet: interrupted or not selected. Rerun the same command to resume._"
            )
            continue
        lines += [f"**Claim.** {r.claim}", ""]
        for t in r.tables:
            lines += [
                f"**{t.title}**",
                "",
                "| " + " | ".join(t.columns) + " |",
                "|" + "---|" * len(t.columns),
            ]
            lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in t.rows]
            lines.append("")
        for f in r.figures:
            lines += [f"![{f.caption}]({f.file})", "", f"_{f.caption}_", ""]
        lines += [f"- {n}" for n in r.notes]
        lines += [
            "",
            f"**Verdict ({_label(r.verdict.holds)}).** {r.verdict.text} ({r.seconds:.1f} s)",
        ]
    lines += ["", "## Environment", "", "```", *env.lines(), "```", ""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}"
    "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f3f3f3}"
    "td:first-child{text-align:left}.v{padding:.5em;border-left:4px solid #888;"
    "background:#f7f7f7}.HOLDS{border-color:#2a2}.DOES{border-color:#c22}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}"
)


def _img(out: Path, rel: str) -> str:
    p = out / rel
    if not p.exists():
        return "<p><em>figure missing</em></p>"
    data = base64.b64encode(p.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(rel)}" src="data:image/png;base64,{data}">'


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in t.rows
    )
    return f"<p><strong>{html.escape(t.title)}</strong></p><table><tr>{head}</tr>{body}</table>"


def html_report(
    out: Path, config: ReproduceConfig, results: dict[str, ExperimentResult], env: Environment
) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>wasserflow reproduce</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>wasserflow reproduce: the paper's claims, measured</h1>",
        f"<p>Profile <code>{e(config.profile)}</code>, {_seeds(config)}, device "
        f"{e(str(env.device))}, status <strong>{e(env.status)}</strong>.</p>",
        "<table><tr><th>experiment</th><th>verdict</th><th>by how much</th></tr>",
    ]
    parts += [
        f"<tr><td>{e(n)}</td><td>{e(v)}</td><td style='text-align:left'>{e(t)}</td></tr>"
        for n, v, t in _summary(results)
    ]
    parts.append("</table>")
    for name, experiment in EXPERIMENTS.items():
        parts.append(f"<h2>{e(experiment.title)} (<code>{e(name)}</code>)</h2>")
        r = results.get(name)
        if r is None:
            parts.append(
                "<p><em>Not run yet: interrupted or not selected. Rerun the same "
                "command to resume.</em></p>"
            )
            continue
        parts.append(f"<p><strong>Claim.</strong> {e(r.claim)}</p>")
        parts += [_table(t) for t in r.tables]
        parts += [
            f"<figure>{_img(out, f.file)}<figcaption>{e(f.caption)}</figcaption></figure>"
            for f in r.figures
        ]
        if r.notes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in r.notes) + "</ul>")
        cls = _label(r.verdict.holds).split()[0]
        parts.append(
            f"<p class='v {cls}'><strong>Verdict ({_label(r.verdict.holds)}).</strong> "
            f"{e(r.verdict.text)} ({r.seconds:.1f} s)</p>"
        )
    parts.append("<h2>Environment</h2><pre>" + e("\n".join(env.lines())) + "</pre></body></html>")
    return "\n".join(parts)


def write_report(
    out: Path, config: ReproduceConfig, results: dict[str, ExperimentResult], env: Environment
) -> None:
    """Write report.md and report.html into ``out`` (atomically)."""
    write_text(out / "report.md", markdown(config, results, env))
    write_text(out / "report.html", html_report(out, config, results, env))
