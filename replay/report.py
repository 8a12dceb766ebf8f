"""The backtest report: one self-contained HTML file with tables and plots.

Plots are drawn with matplotlib's object API (``Figure``, Agg canvas: no pyplot, no global
backend switch) and embedded as base64 PNG ``<img>`` elements with ids ``plot-pr``,
``plot-alerts`` and ``plot-over-time``. Tables carry the exact numbers for machines:
every metric cell of ``<table id="metrics">`` (and ``summary`` / ``folds`` for prequential
runs) has ``data-candidate``, ``data-metric`` and ``data-value`` (``repr`` of the float) next
to the rounded text a person reads, so a test can check the report against the table files.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

METRIC_COLUMNS = ("roc_auc", "average_precision", "average_precision_unknown_cards",
                  "card_precision_at_k",
                  "card_precision_at_k_all", "recall_at_budget", "amount_recall_at_budget",
                  "budget_alerts_per_day", "alerts_per_day", "declines_per_day",
                  "alert_precision", "alert_recall", "alert_amount_recall", "review",
                  "decline", "n", "n_fraud", "days")
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f5f5f5}"""


def fmt(value: object) -> str:
    """Human text of a table value: 4 decimals for floats, integers plain, nan as '–'."""
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "–"
        return f"{int(v):,}" if v.is_integer() and abs(v) >= 2 else f"{v:.4f}"
    return html.escape(str(value))


def _table(frame: pd.DataFrame, table_id: str, key: str, metrics: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (key, *metrics))
    body = []
    for _, row in frame.iterrows():
        cand = html.escape(str(row[key]))
        cells = [f"<td>{cand}</td>"]
        for m in metrics:
            v = row[m]
            data = (f' data-candidate="{cand}" data-metric="{html.escape(m)}" '
                    f'data-value="{float(v)!r}"' if isinstance(v, float | int | np.number)
                    else "")
            cells.append(f"<td{data}>{fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table>")


def _png(fig: object) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    return base64.b64encode(buffer.getvalue()).decode()


def _img(plot_id: str, alt: str, png: str) -> str:
    return f'<img id="{plot_id}" alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def _plots(daily: pd.DataFrame, curves: dict[str, tuple[np.ndarray, np.ndarray]],
           folds: pd.DataFrame | None) -> list[str]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall on the test window",
           xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = [_img("plot-pr", "precision-recall curves", _png(fig))]

    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    for name, g in daily.groupby("candidate", sort=False):
        ax.plot(pd.to_datetime(g["day"]), g["alerts"], marker=".", label=str(name))
    ax.set(ylabel="alerts (review + decline)", title="Policy alerts per day")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    out.append(_img("plot-alerts", "alerts per day", _png(fig)))

    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    if folds is not None:
        for name, g in folds.groupby("candidate", sort=False):
            x = pd.to_datetime(g["test_start"])
            ax.plot(x, g["average_precision"], marker="o", label=f"{name} AP")
            ax.plot(x, g["roc_auc"], marker="s", ls="--", label=f"{name} ROC AUC")
        ax.set(title="Metrics per fold (by test start)", ylim=(0, 1.02))
    else:
        for name, g in daily.groupby("candidate", sort=False):
            x = pd.to_datetime(g["day"])
            ax.plot(x, g["average_precision"], marker=".", label=f"{name} AP")
            ax.plot(x, g["card_precision_at_k"], marker="x", ls="--", label=f"{name} CP@k")
        ax.set(title="Daily average precision and card precision@k", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    out.append(_img("plot-over-time", "metrics over time", _png(fig)))
    return out


def render_report(title: str, metrics: pd.DataFrame, daily: pd.DataFrame,
                  curves: dict[str, tuple[np.ndarray, np.ndarray]], windows: dict[str, str],
                  *, summary: pd.DataFrame | None = None, folds: pd.DataFrame | None = None,
                  notes: Sequence[str] = ()) -> str:
    """The report's HTML text (see the module docstring for its structure)."""
    cols = [c for c in METRIC_COLUMNS if c in metrics.columns]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<p>" + " · ".join(f"{html.escape(k)}: <code>{html.escape(v)}</code>"
                                for k, v in windows.items()) + "</p>",
             *(f"<p>{html.escape(n)}</p>" for n in notes)]
    if summary is not None:
        wide = summary.assign(label=summary["candidate"] + " · " + summary["metric"])
        parts += ["<h2>Mean and spread over folds</h2>",
                  _table(wide, "summary", "label", ["mean", "std", "min", "max", "folds"])]
    parts += ["<h2>Metrics" + (" (all folds pooled rows, per fold below)" if folds is not None
                               else "") + "</h2>",
              _table(metrics, "metrics", "candidate", cols) if folds is None else "",
              "<p>card_precision_at_k: cards already known compromised before the day are "
              "removed; _all: not removed. *_at_budget: top budget share by score; "
              "alerts_per_day / alert_*: the decision policy (review + decline).</p>",
              "<h2>Plots</h2>", *_plots(daily, curves, folds)]
    if folds is not None:
        fold_cols = ["fold", "test_start", *[c for c in cols if c in folds.columns]]
        parts += ["<h2>Folds</h2>", _table(folds, "folds", "candidate", fold_cols)]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_report(path: Path, title: str, metrics: pd.DataFrame, daily: pd.DataFrame,
                 curves: dict[str, tuple[np.ndarray, np.ndarray]], windows: dict[str, str],
                 **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(title, metrics, daily, curves, windows, **kwargs),  # type: ignore[arg-type]
                    encoding="utf-8")
    return path
