"""The model card: intended use, data, metrics overall and by slice, lineage, known limits.

A single overall AUC hides a model that fails one channel or one country. The card
therefore carries the test window's metrics by slice (:func:`slice_table`): channel,
country, amount band, card age (days since the card's first transaction in the data) and
merchant category, each judged at the model's own alert threshold (its score at the alert
budget over the whole test window), so a slice's recall is what the analysts would catch in
it. Small slices are kept but flagged: their numbers are noise below ``min_frauds``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.metrics import average_precision, roc_auc

if TYPE_CHECKING:
    from models.train import TrainResult

AMOUNT_BANDS = (0.0, 20.0, 100.0, 500.0, math.inf)
CARD_AGE_DAYS = (0.0, 7.0, 30.0, 90.0, math.inf)
TOP_CATEGORIES = 8  # countries / merchant categories beyond these fold into "other"
MIN_FRAUDS = 10

INTENDED_USE = (
    "Ranks card transactions by fraud probability in real time so that the riskiest go to "
    "analyst review (alert budget) or are declined. Intended for card-not-present and "
    "card-present payments of the portfolio it was trained on. Not a credit decision, not "
    "for judging a customer, and not to be used without the decision policy's thresholds "
    "re-checked on the current champion."
)


def _band(values: pd.Series, edges: tuple[float, ...], unit: str) -> pd.Series:
    labels = [
        f"{lo:g}+{unit}" if math.isinf(hi) else f"{lo:g}-{hi:g}{unit}"
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    return pd.cut(values.astype(float), list(edges), right=False, labels=labels).astype(str)


def _top(values: pd.Series, n: int = TOP_CATEGORIES) -> pd.Series:
    values = values.astype(str)
    keep = set(values.value_counts().index[:n])
    return values.where(values.isin(keep), "other")


def slice_columns(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The slicing columns a frame supports (absent source columns are left out)."""
    out: dict[str, pd.Series] = {}
    if "channel" in frame:
        out["channel"] = frame["channel"].astype(str)
    if "country" in frame:
        out["country"] = _top(frame["country"])
    if "amount" in frame:
        out["amount_band"] = _band(frame["amount"], AMOUNT_BANDS, "")
    if "card_age_days" in frame:
        age = frame["card_age_days"]
    elif "card_id" in frame and "event_time" in frame:
        times = pd.to_datetime(frame["event_time"], utc=True)
        first = times.groupby(frame["card_id"]).transform("min")
        age = (times - first).dt.total_seconds() / 86_400
    else:
        age = None
    if age is not None:
        out["card_age"] = _band(age, CARD_AGE_DAYS, "d")
    for name in ("merchant_category", "mcc"):
        if name in frame:
            out["merchant_category"] = _top(frame[name])
            break
    return out


def slice_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Size, frauds and quality of one slice at the model's alert ``threshold``."""
    alerts = scores >= threshold
    frauds = int(y.sum())
    caught = int((alerts & (y == 1)).sum())
    return {
        "n": float(y.size),
        "frauds": float(frauds),
        "fraud_rate": frauds / y.size if y.size else math.nan,
        "alert_rate": float(alerts.mean()) if y.size else math.nan,
        "recall": caught / frauds if frauds else math.nan,
        "precision": caught / int(alerts.sum()) if alerts.any() else math.nan,
        "roc_auc": roc_auc(y, scores),
        "average_precision": average_precision(y, scores),
    }


def slice_table(
    frame: pd.DataFrame, scores: np.ndarray, threshold: float, min_frauds: int = MIN_FRAUDS
) -> list[dict[str, Any]]:
    """One row per (slice, value): :func:`slice_metrics` plus ``small`` (too few frauds)."""
    y = frame["is_fraud"].to_numpy().astype(np.int8)
    scores = np.asarray(scores, dtype=np.float64)
    rows = []
    for name, values in slice_columns(frame).items():
        column = values.to_numpy()
        for value in sorted(pd.unique(column)):
            mask = column == value
            metrics = slice_metrics(y[mask], scores[mask], threshold)
            rows.append({"slice": name, "value": str(value), **metrics,
                         "small": metrics["frauds"] < min_frauds})
    return rows


def slices_of_test_window(frame: pd.DataFrame, result: TrainResult) -> list[dict[str, Any]]:
    """:func:`slice_table` of ``result``'s test window of the frame it was trained on."""
    times = pd.to_datetime(frame["event_time"], utc=True)
    start, end = (pd.Timestamp(result.windows[k]) for k in ("test_start", "test_end"))
    test = frame.loc[((times >= start) & (times < end)).to_numpy()]
    matrix = test[list(result.feature_names)].to_numpy(dtype=np.float64)
    scores = np.asarray(result.booster.inplace_predict(matrix), dtype=np.float64)
    threshold = result.metrics.get("budget_threshold", math.nan)
    if threshold is None or math.isnan(threshold):
        threshold = math.inf  # no alert at all: recall 0, precision undefined
    return slice_table(test, scores, float(threshold))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _slice_lines(slices: list[dict[str, Any]] | None) -> list[str]:
    if not slices:
        return ["Not recorded for this version (trained without its data frame at hand).", ""]
    lines = [
        "At the model's alert threshold (its score at the alert budget on the whole test "
        "window). `small`: fewer than "
        f"{MIN_FRAUDS} frauds, numbers are noise.",
        "",
        "| slice | value | n | frauds | alert rate | recall | precision | ROC AUC | AP | |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in slices:
        lines.append(
            f"| {r['slice']} | {r['value']} | {int(r['n'])} | {int(r['frauds'])} | "
            f"{_fmt(r['alert_rate'])} | {_fmt(r['recall'])} | {_fmt(r['precision'])} | "
            f"{_fmt(r['roc_auc'])} | {_fmt(r['average_precision'])} | "
            f"{'small' if r['small'] else ''} |"
        )
    return [*lines, ""]


def model_card(
    name: str, version: str, run_id: str, feature_service: str, result: TrainResult,
    lineage: dict[str, Any] | None = None, slices: list[dict[str, Any]] | None = None,
) -> str:
    """The Markdown card logged as ``model_card.md`` with every version."""
    w = result.windows
    data = (lineage or {}).get("data") or {}
    lines = [
        f"# {name} v{version}",
        "",
        "XGBoost Booster scoring card transactions; output is a fraud probability in [0, 1].",
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        "## Data",
        "",
        f"- Source: {data.get('source') or 'not recorded'}; content hash "
        f"`{data.get('data_hash', 'not recorded')}`",
        f"- Events from {data.get('data_start', '?')} to {data.get('data_end', '?')}: "
        f"{data.get('rows', '?')} transactions, {data.get('frauds', '?')} fraud",
        f"- Train window: {w['train_start']} to {w['train_end']} "
        f"(early stopping on the tail from {w['valid_start']})",
        f"- Delay period, then test window: {w['test_start']} to {w['test_end']}",
        f"- Feature service: `{feature_service}` ({len(result.feature_names)} features, "
        "order is the model signature)",
        *[f"- Rows {k}: {v}" for k, v in result.counts.items()],
        "",
        "## Metrics (test window)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in result.metrics.items()],
        "",
        "## Metrics by slice (test window)",
        "",
        *_slice_lines(slices),
        "## Lineage",
        "",
        f"- MLflow run: `{run_id}`; best iteration {result.best_iteration}",
        f"- Code: git commit `{(lineage or {}).get('git_commit', 'not recorded')}`"
        + (" (uncommitted changes)" if (lineage or {}).get("git_dirty") else ""),
        f"- Packages: {json.dumps((lineage or {}).get('packages', {}), sort_keys=True)}",
        f"- Seed: {result.params.get('seed')}",
        "",
        "## Features",
        "",
        ", ".join(f"`{n}`" for n in result.feature_names),
        "",
        "## Parameters",
        "",
        "```json",
        json.dumps(result.params, indent=1, default=str),
        "```",
        "",
        "## Known limits",
        "",
        "- Trained only on labels known at the label cut-off; fraud reported late is "
        "under-represented, so recent fraud patterns are learned with a delay.",
        "- Scores are not calibrated across versions; thresholds must be re-checked on "
        "promotion (the canary's alert-rate gate does this on live traffic).",
        "- Slices marked `small` hold too few frauds to judge; card age counts from the "
        "card's first transaction in the training data, not its issue date.",
        "- Trained on one portfolio's history (simulated data in the demo); performance on "
        "another issuer's, country's or channel's mix is unknown until evaluated there.",
        "- Drift is judged against `reference_profile.json` (test window).",
        "",
    ]
    return "\n".join(lines)
