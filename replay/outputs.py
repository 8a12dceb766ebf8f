"""What ``replay backtest`` writes into its output folder.

* ``predictions.parquet`` (or ``.csv``): one row per test transaction and candidate —
  candidate (model / policy), model (label), transaction_id, event_time, card_id, amount,
  is_fraud, model_version, score, decision; ``transaction_id`` and ``card_id`` are int64
  where the input file held integers there (``integer_ids``), text otherwise;
* ``metrics.csv`` / ``metrics.json``: one row per candidate (per fold and candidate in
  prequential mode, plus ``summary.csv``: mean and spread over folds);
* ``daily.csv``: per candidate and day: transactions, frauds, alerts, ROC AUC, AP, CP@k;
* ``report.html``: :mod:`replay.report`.

Metric files hold full float precision; JSON writes ``nan`` as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
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
    files: tuple[Path, ...] = ()  # every file written, in the order above

    def line(self) -> str:
        """``wrote a, b and c`` naming every file (what the commands print)."""
        names = [str(f) for f in self.files]
        return "wrote " + (", ".join(names[:-1]) + " and " if len(names) > 1 else "") + names[-1]


def _json_ready(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v)
             for k, v in r.items()} for r in records]


def with_id_types(predictions: pd.DataFrame, integer_ids: Sequence[str]) -> pd.DataFrame:
    """``predictions`` with the id columns ``integer_ids`` back as int64 (the stream
    carries ids as text; the user's file held integers: see docs/replay.md)."""
    present = [c for c in integer_ids if c in predictions.columns]
    return predictions.astype(dict.fromkeys(present, "int64")) if present else predictions


def write_outputs(out_dir: Path, result: BacktestResult | PrequentialResult, *,
                  fmt: str = "parquet", title: str = "fraudstream backtest",
                  notes: tuple[str, ...] = (), integer_ids: Sequence[str] = ()) -> Written:
    """Write every file above into ``out_dir`` (created); returns their paths.

    ``integer_ids``: id columns written as integers (the input file held integers there).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if isinstance(result, PrequentialResult):
        backtest, metrics = result.backtest, result.folds
        result.summary.to_csv(out_dir / "summary.csv", index=False)
        files.append(out_dir / "summary.csv")
        extra: dict[str, object] = {"summary": result.summary, "folds": result.folds}
    else:
        backtest, metrics, extra = result, result.metrics, {}
    predictions = write_predictions(with_id_types(backtest.predictions, integer_ids),
                                    out_dir / f"predictions.{fmt}")
    metrics.to_csv(out_dir / "metrics.csv", index=False)
    payload = {"windows": backtest.windows,
               "metrics": _json_ready(metrics.to_dict("records")),
               **({"summary": _json_ready(result.summary.to_dict("records"))}
                  if isinstance(result, PrequentialResult) else {})}
    (out_dir / "metrics.json").write_text(json.dumps(payload, indent=1, default=str))
    backtest.daily.to_csv(out_dir / "daily.csv", index=False)
    report = write_report(out_dir / "report.html", title, metrics, backtest.daily,
                          backtest.curves, backtest.windows, notes=notes, **extra)
    files = [predictions, out_dir / "metrics.csv", out_dir / "metrics.json",
             out_dir / "daily.csv", *files, report]
    return Written(predictions, out_dir / "metrics.csv", report, tuple(files))


def print_table(metrics: pd.DataFrame) -> str:
    """The headline metrics as fixed-width text for the terminal."""
    cols = [c for c in ("candidate", "fold", "roc_auc", "average_precision",
                        "average_precision_unknown_cards", "card_precision_at_k",
                        "recall_at_budget", "amount_recall_at_budget",
                        "alerts_per_day", "alert_precision", "alert_recall") if c in metrics]
    return metrics[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}")
