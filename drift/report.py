"""Human-readable window reports: Markdown with hand-drawn SVG bar charts.

No plotting library: the charts are a few SVG rectangles (deterministic text, diffable,
rendered by browsers and by GitHub/GitLab Markdown). :func:`render` is pure; only
:func:`write_report` touches the file system, writing into ``directory``::

    window-<start>_<end>.md     the report (drifting columns first, then the full table)
    window-<start>_<end>-psi.svg   PSI of every column with the warn/alert lines
    window-<start>_<end>-<column>.svg  reference vs window bin shares, per drifting column
    latest.md                   a copy of the newest report (links stay valid)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from drift.detect import ColumnDrift, DriftThresholds, WindowReport
from drift.reference import Reference

BAR_W, CHART_H, LABEL_H = 26, 140, 90


def iso(ms: int) -> str:
    """Epoch ms as ISO-8601 UTC with ``Z`` (the project's wire format)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def stem(report: WindowReport) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    start = datetime.fromtimestamp(report.start_ms / 1000, tz=UTC).strftime(fmt)
    end = datetime.fromtimestamp(report.end_ms / 1000, tz=UTC).strftime(fmt)
    return f"window-{start}_{end}"


def svg_bars(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    lines: Sequence[tuple[float, str]] = (),
) -> str:
    """A grouped bar chart: ``series`` = (name, colour, values aligned with ``labels``).

    ``lines`` are horizontal reference lines (value, colour), e.g. PSI thresholds.
    """
    groups, per = len(labels), max(len(series), 1)
    width = max(groups * (per * BAR_W + 8) + 60, 240)
    top = max([max(v, default=0.0) for _, _, v in series] + [v for v, _ in lines] + [1e-9])
    scale = (CHART_H - 10) / top
    y0 = 30 + CHART_H
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y0 + LABEL_H}" '
        'font-family="sans-serif" font-size="10">',
        f'<text x="4" y="14" font-size="12">{escape(title)}</text>',
        f'<line x1="40" y1="{y0}" x2="{width}" y2="{y0}" stroke="#333"/>',
        f'<text x="2" y="{y0 - CHART_H + 14}">{top:.3g}</text><text x="2" y="{y0}">0</text>',
    ]
    for k, (name, colour, _) in enumerate(series):
        out.append(
            f'<rect x="{width - 150}" y="{4 + 12 * k}" width="8" height="8" fill="{colour}"/>'
            f'<text x="{width - 138}" y="{12 + 12 * k}">{escape(name)}</text>'
        )
    for g, label in enumerate(labels):
        x = 44 + g * (per * BAR_W + 8)
        for k, (_, colour, values) in enumerate(series):
            h = max(values[g], 0.0) * scale
            out.append(
                f'<rect x="{x + k * BAR_W}" y="{y0 - h:.1f}" width="{BAR_W - 2}" '
                f'height="{h:.1f}" fill="{colour}"><title>{values[g]:.4f}</title></rect>'
            )
        cx = x + per * BAR_W / 2
        out.append(
            f'<text x="{cx:.0f}" y="{y0 + 10}" transform="rotate(45 {cx:.0f} {y0 + 10})">'
            f"{escape(label)}</text>"
        )
    for value, colour in lines:
        y = y0 - value * scale
        out.append(
            f'<line x1="40" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="{colour}" '
            'stroke-dasharray="4 3"/>'
        )
    out.append("</svg>")
    return "\n".join(out)


def bin_labels(cuts: Sequence[float] | None, n: int) -> list[str]:
    """``<=c0``, ``c0..c1``, ..., ``>c_last`` (bin ``i`` holds ``cuts[i-1] < x <= cuts[i]``)."""
    if cuts is None or len(cuts) + 1 != n:
        return [f"bin {i}" for i in range(n)]
    c = [f"{v:.3g}" for v in cuts]
    return [f"<={c[0]}", *(f"{a}..{b}" for a, b in zip(c, c[1:], strict=False)), f">{c[-1]}"]


def render(
    report: WindowReport,
    thresholds: DriftThresholds,
    name: str,
    reference: Reference | None = None,
) -> tuple[str, dict[str, str]]:
    """The Markdown text and the SVG files (file name -> content) of one window report.

    ``reference`` only labels the bins of the per-column charts with their value ranges.
    """
    t = thresholds
    psi_chart = svg_bars(
        "PSI per column",
        [c.column for c in report.columns],
        [("PSI", "#4a7ebb", [c.psi for c in report.columns])],
        [(t.psi_warn, "#e0a000"), (t.psi_alert, "#c03030")],
    )
    files = {f"{name}-psi.svg": psi_chart}
    drifting = [report.column(c) for c in report.drifting]
    cuts = {} if reference is None else {k: list(v.cuts) for k, v in reference.columns.items()}
    lines = [
        f"# Drift report {iso(report.start_ms)} - {iso(report.end_ms)}",
        "",
        f"- window rows: {report.rows}; reference: model version {report.reference_version}",
        f"- scored by: {dict(report.scored_by) or 'n/a'}",
        f"- **severity: {report.severity}**; drifting: "
        + (", ".join(f"**{c.column}** ({c.severity})" for c in drifting) or "none"),
        f"- thresholds: PSI warn {t.psi_warn} / alert {t.psi_alert}; KS alpha {t.ks_alpha} "
        f"({t.correction}), D >= {t.ks_min_statistic}; min rows {t.min_rows}",
        "",
        f"![PSI per column]({name}-psi.svg)",
        "",
    ]
    for c in drifting:
        chart = f"{name}-{c.column}.svg"
        files[chart] = svg_bars(
            f"{c.column}: share per reference bin",
            bin_labels(cuts.get(c.column), len(c.expected)),
            [("reference", "#999999", c.expected), ("window", "#c03030", c.actual)],
        )
        lines += [f"## {c.column}: {c.severity}", "", f"{c.reason}.", "", f"![{c.column}]({chart})"]
        lines.append("")
    lines += ["## All columns", "", _table(report.columns)]
    return "\n".join(lines) + "\n", files


def _table(columns: Sequence[ColumnDrift]) -> str:
    rows = [
        "| column | severity | PSI | KS D | KS p (adj.) | rows | missing | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in sorted(columns, key=lambda c: (-["none", "warn", "alert"].index(c.severity), -c.psi)):
        rows.append(
            f"| {c.column} | {c.severity} | {c.psi:.4f} | {c.ks_statistic:.4f} | "
            f"{c.ks_pvalue_adjusted:.3g} | {c.rows} | {c.missing_rate:.2%} | {c.reason} |"
        )
    return "\n".join(rows)


def write_report(
    report: WindowReport,
    thresholds: DriftThresholds,
    directory: Path,
    reference: Reference | None = None,
) -> Path:
    """Write the report and its charts into ``directory`` (created); return the ``.md`` path."""
    directory.mkdir(parents=True, exist_ok=True)
    name = stem(report)
    text, files = render(report, thresholds, name, reference)
    for file_name, content in files.items():
        (directory / file_name).write_text(content, encoding="utf-8")
    path = directory / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    (directory / "latest.md").write_text(text, encoding="utf-8")
    return path
