"""What ``replay backtest`` writes into its output folder.

* ``predictions.parquet`` (or ``.csv``): one row per test transaction and candidate —
  candidate (model / policy), model (label), transaction_id, event_time, card_id, amount,
  is_fraud, model_version, score, decision;
* ``metrics.csv`` / ``metrics.json``: one row per candidate (per fold and candidate in
  prequential mode, plus ``summary.csv``: mean and spread over folds);
* ``daily.csv``: per candidate and day: transactions, frauds, alerts, ROC AUC, AP, CP@k;
* ``report.html``: :mod:`replay.report`.

Metric files hold full float precision; JSON writes ``nan`` as null.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from replay.backtest import BacktestResult, write_predictions
from replay.prequential import PrequentialResult
from replay.report import write_report


@dataclass(frozen=True)
class Written:
    predictions: Path
    metrics: Path
    report: Path


def _json_ready(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v)
             for k, v in r.items()} for r in records]


def write_outputs(out_dir: Path, result: BacktestResult | PrequentialResult, *,
                  fmt: str = "parquet", title: str = "fraudstream backtest",
                  notes: tuple[str, ...] = ()) -> Written:
    """Write every file above into ``out_dir`` (created); returns the main paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(result, PrequentialResult):
        backtest, metrics = result.backtest, result.folds
        result.summary.to_csv(out_dir / "summary.csv", index=False)
        extra: dict[str, object] = {"summary": result.summary, "folds": result.folds}
    else:
        backtest, metrics, extra = result, result.metrics, {}
    predictions = write_predictions(backtest.predictions, out_dir / f"predictions.{fmt}")
    metrics.to_csv(out_dir / "metrics.csv", index=False)
    payload = {"windows": backtest.windows,
               "metrics": _json_ready(metrics.to_dict("records")),
               **({"summary": _json_ready(result.summary.to_dict("records"))}
                  if isinstance(result, PrequentialResult) else {})}
    (out_dir / "metrics.json").write_text(json.dumps(payload, indent=1, default=str))
    backtest.daily.to_csv(out_dir / "daily.csv", index=False)
    report = write_report(out_dir / "report.html", title, metrics, backtest.daily,
                          backtest.curves, backtest.windows, notes=notes, **extra)
    return Written(predictions, out_dir / "metrics.csv", report)


def print_table(metrics: pd.DataFrame) -> str:
    """The headline metrics as fixed-width text for the terminal."""
    cols = [c for c in ("candidate", "fold", "roc_auc", "average_precision",
                        "average_precision_unknown_cards", "card_precision_at_k",
                        "recall_at_budget", "amount_recall_at_budget",
                        "alerts_per_day", "alert_precision", "alert_recall") if c in metrics]
    return metrics[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}")
