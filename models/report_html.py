"""The A/B and shadow report as one self-contained HTML file (``models report --html``).

Sections: the per-arm table of :func:`models.reports.ab_report` (each rate with its 95 %
Wilson interval) and, when the decisions carry a shadow's scores, the shadow comparison of
:func:`models.reports.shadow_report` (agreement, correlations, the alerts each model raised,
frauds each caught). Every number cell carries ``data-arm`` (or ``data-shadow``),
``data-metric`` and ``data-value`` (``repr`` of the float; ``data-low`` / ``data-high`` for
intervals) beside the rounded text, so a test or a script can read the exact values back.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

from replay.report import _STYLE

RATES = ("alert_rate", "error_rate", "precision", "recall")
COUNTS = ("decisions", "matured_labels", "matured_frauds")


def _num(value: float | int, attrs: str) -> str:
    v = float(value)
    text = "–" if math.isnan(v) else (f"{int(v):,}" if isinstance(value, int) else f"{v:.4f}")
    return f'<td {attrs} data-value="{v!r}">{text}</td>'


def _rate(rate: dict[str, Any], attrs: str) -> str:
    v, low, high = (float(rate[k]) for k in ("value", "low", "high"))
    text = "–" if math.isnan(v) else f"{v:.4f} [{low:.4f}, {high:.4f}]"
    return (f'<td {attrs} data-value="{v!r}" data-low="{low!r}" data-high="{high!r}" '
            f'data-n="{int(rate["n"])}">{text}</td>')


def ab_table(ab: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in
                   ("arm", *COUNTS, *(f"{r} [95% CI]" for r in RATES), "average_precision"))
    rows = []
    for arm, r in ab.items():
        a = html.escape(arm)
        cells = [f"<td>{a}</td>"]
        cells += [_num(int(r[k]), f'data-arm="{a}" data-metric="{k}"') for k in COUNTS]
        cells += [_rate(r[k], f'data-arm="{a}" data-metric="{k}"') for k in RATES]
        cells.append(_num(float(r["average_precision"]),
                          f'data-arm="{a}" data-metric="average_precision"'))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="ab"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            "</tbody></table>")


def shadow_table(shadow: dict[str, Any]) -> str:
    def row(name: str, cell: str) -> str:
        return f"<tr><td>{html.escape(name)}</td>{cell}</tr>"

    attrs = 'data-shadow="1" data-metric="{}"'.format
    rows = [row("transactions scored by both", _num(int(shadow["transactions"]),
                                                   attrs("transactions"))),
            row("alert agreement [95% CI]", _rate(shadow["agreement"], attrs("agreement"))),
            row("Pearson correlation", _num(float(shadow["pearson"]), attrs("pearson"))),
            row("Spearman correlation", _num(float(shadow["spearman"]), attrs("spearman")))]
    rows += [row(f"alerts: {k.replace('_', ' ')}", _num(int(v), attrs(f"alerts.{k}")))
             for k, v in shadow["alerts"].items()]
    rows.append(row("matured frauds", _num(int(shadow["matured_frauds"]),
                                           attrs("matured_frauds"))))
    rows += [row(f"frauds caught: {k}", _num(int(v), attrs(f"frauds_caught.{k}")))
             for k, v in shadow["frauds_caught"].items()]
    return ('<table id="shadow"><thead><tr><th>shadow vs live</th><th>value</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


def report_html(ab: dict[str, Any], shadow: dict[str, Any] | None, *,
                title: str = "A/B and shadow report", notes: dict[str, str] | None = None
                ) -> str:
    """The report's HTML text (see the module doc)."""
    meta = {"generated": datetime.now(UTC).isoformat(timespec="seconds"), **(notes or {})}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<p>" + " · ".join(f"{html.escape(k)}: <code>{html.escape(v)}</code>"
                                for k, v in meta.items()) + "</p>",
             "<h2>A/B by arm</h2><p>Rates with 95 % Wilson intervals. Precision, recall and "
             "average precision on matured labels only (a fraud label whenever it came; "
             "genuine once past the maturity delay).</p>", ab_table(ab)]
    if shadow is not None:
        parts += ["<h2>Shadow</h2><p>The shadow scores every transaction the live model "
                  "decides; it never decides. Its alerts are the ones it would have raised "
                  "with the live policy.</p>", shadow_table(shadow)]
    else:
        parts.append("<h2>Shadow</h2><p>No shadow scores in these decisions.</p>")
    parts.append("</body></html>")
    return "".join(parts)
