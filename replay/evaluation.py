"""Backtest metrics on top of :mod:`models.metrics`: pure functions of arrays, no I/O.

What this adds for replays:

* card precision@k per day by the published protocol (:func:`models.metrics.card_precision_at_k`,
  the same function ``train`` reports): a card whose fraud was reported (``label_time``)
  before the day began is blocked or watched already, and a card the review found
  compromised on an earlier test day was handled then, so both are dropped from the day's
  ranking (Le Borgne et al., *Reproducible ML for credit card fraud detection*,
  "card precision top-k");
* the decision policy's own alerts: alerts, precision and recall of review/decline;
* per-day metrics and a precision-recall curve for the report.

Decisions are made with :func:`decide`, which is :meth:`scoring.policy.Policy.decide` over an
array (scores compared as float64, as ``decide(float(score))`` does in the stream).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.metrics import (
    NAN,
    average_precision,
    card_precision_at_k,
    card_precision_daily,
    fraud_metrics,
    roc_auc,
)
from scoring.policy import Policy


def decide(policy: Policy, scores: np.ndarray) -> np.ndarray:
    """Decisions (``approve``/``review``/``decline``) for ``scores``, as the stream makes them.

    >>> decide(Policy(review=0.5, decline=0.9), np.array([0.1, 0.5, 0.95])).tolist()
    ['approve', 'review', 'decline']
    """
    s = np.asarray(scores).astype(np.float64)
    return np.where(s >= policy.decline, "decline",
                    np.where(s >= policy.review, "review", "approve")).astype(object)


def known_compromised(card_id: np.ndarray, is_fraud: np.ndarray, label_time: pd.Series,
                      event_time: pd.Series | None = None,
                      since: pd.Timestamp | None = None) -> dict[Any, pd.Timestamp]:
    """Card -> earliest time a fraud on it was reported (over the history given; with
    ``event_time`` and ``since``, only frauds at or after ``since`` count: see
    :data:`models.metrics.KNOWN_LOOKBACK_DAYS`)."""
    fraud = np.asarray(is_fraud, dtype=bool)
    if event_time is not None and since is not None:
        fraud = fraud & (pd.to_datetime(event_time, utc=True) >= since).to_numpy()  # a copy
    times = pd.Series(pd.to_datetime(label_time, utc=True).to_numpy()[fraud],
                      index=np.asarray(card_id)[fraud])
    return times.groupby(level=0).min().to_dict() if len(times) else {}


def known_ms_of(card_id: np.ndarray, known: dict[Any, pd.Timestamp]) -> np.ndarray:
    """Per row, when its card became known compromised (epoch ms; ``inf`` if never)."""
    since = pd.to_datetime(pd.Series(np.asarray(card_id)).map(known), utc=True)
    ms = (since.to_numpy(dtype="datetime64[ns]").astype(np.int64) // 1_000_000).astype(
        np.float64)
    ms[since.isna().to_numpy()] = np.inf
    return ms


def card_precision_unknown(y: np.ndarray, score: np.ndarray, card_id: np.ndarray,
                           day: pd.Series, known: dict[Any, pd.Timestamp], k: int) -> float:
    """Card precision@k per day, averaged, among cards not known compromised that day.

    >>> import pandas as pd
    >>> day = pd.Series(pd.to_datetime(["2025-01-02"] * 3, utc=True))
    >>> known = {"a": pd.Timestamp("2025-01-01", tz="UTC")}
    >>> card_precision_unknown(np.array([1, 1, 0]), np.array([0.9, 0.8, 0.1]),
    ...                        np.array(["a", "b", "c"]), day, known, k=1)
    1.0
    """
    days = pd.to_datetime(day, utc=True)
    since = pd.Series(np.asarray(card_id)).map(known)
    keep = ~(since.notna() & (since <= days.reset_index(drop=True))).to_numpy(dtype=bool)
    if not keep.any():
        return NAN
    return card_precision_at_k(np.asarray(y)[keep], np.asarray(score)[keep],
                               np.asarray(card_id)[keep], days.to_numpy()[keep], k=k)


def policy_stats(y: np.ndarray, decisions: np.ndarray, amount: np.ndarray,
                 n_days: int) -> dict[str, float]:
    """Alerts raised by the policy itself (review + decline) and what they caught."""
    alert = decisions != "approve"
    fraud = np.asarray(y, dtype=bool)
    n_alerts = int(alert.sum())
    return {
        "alerts": float(n_alerts),
        "alerts_per_day": n_alerts / n_days if n_days else NAN,
        "declines_per_day": float((decisions == "decline").sum()) / n_days if n_days else NAN,
        "alert_precision": float((alert & fraud).sum()) / n_alerts if n_alerts else NAN,
        "alert_recall": float((alert & fraud).sum()) / fraud.sum() if fraud.any() else NAN,
        "alert_amount_recall": (float(amount[alert & fraud].sum()) / amount[fraud].sum()
                                if fraud.any() else NAN),
    }


def metrics_row(y: np.ndarray, score: np.ndarray, decisions: np.ndarray, amount: np.ndarray,
                card_id: np.ndarray, day: pd.Series, known: dict[Any, pd.Timestamp],
                budget: float, k: int) -> dict[str, float]:
    """The metrics table row of one candidate on one test window.

    ``card_precision_at_k`` has known compromised and already-detected cards removed
    (``_all``: none removed), exactly as :func:`models.metrics.fraud_metrics` computes it;
    ``recall_at_budget`` / ``amount_recall_at_budget`` / ``budget_alerts_per_day`` use the
    top ``budget`` share by score; ``alerts_per_day`` and ``alert_*`` are the policy's.
    """
    base = fraud_metrics(y, score, amount, card_id, day.to_numpy(), budget=budget, k=k,
                         known_ms=known_ms_of(card_id, known))
    n_days = int(pd.unique(day.to_numpy()).size)
    return {
        "roc_auc": base["roc_auc"],
        "average_precision": base["average_precision"],
        "average_precision_unknown_cards": base["average_precision_unknown_cards"],
        "card_precision_at_k": base["card_precision_at_k"],
        "card_precision_at_k_all": base["card_precision_at_k_all"],
        "recall_at_budget": base["recall_at_budget"],
        "amount_recall_at_budget": base["amount_recall_at_budget"],
        "budget_alerts_per_day": base["alerts_per_day"],
        **policy_stats(y, decisions, amount, n_days),
        "n": base["n"],
        "n_fraud": base["n_fraud"],
        "days": float(n_days),
    }


def daily_metrics(y: np.ndarray, score: np.ndarray, decisions: np.ndarray, card_id: np.ndarray,
                  day: pd.Series, known: dict[Any, pd.Timestamp], k: int) -> pd.DataFrame:
    """One row per day: transactions, frauds, policy alerts, ROC AUC, AP, card precision@k."""
    rows = []
    days = pd.to_datetime(day, utc=True).reset_index(drop=True)
    precision = card_precision_daily(y, score, card_id, days.to_numpy(), k,
                                     known_ms_of(card_id, known))
    precision.index = pd.to_datetime(precision.index, utc=True)
    for d, index in days.groupby(days).groups.items():
        i = np.asarray(index)
        rows.append({
            "day": pd.Timestamp(d).strftime("%Y-%m-%d"),
            "n": len(i),
            "n_fraud": int(np.asarray(y)[i].sum()),
            "alerts": int((decisions[i] != "approve").sum()),
            "roc_auc": roc_auc(y[i], score[i]),
            "average_precision": average_precision(y[i], score[i]),
            "card_precision_at_k": float(precision.get(pd.Timestamp(d), NAN)),
        })
    return pd.DataFrame(rows)


def pr_curve(y: np.ndarray, score: np.ndarray, points: int = 400) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """``(recall, precision)`` at each distinct score threshold, thinned to ~``points``."""
    labels = np.asarray(y, dtype=np.int64)
    if labels.sum() == 0:
        return np.array([0.0]), np.array([NAN])
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    s, lab = np.asarray(score, dtype=np.float64)[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(lab)[last]
    recall, precision = tp / labels.sum(), tp / (last + 1)
    keep = np.unique(np.linspace(0, recall.size - 1, min(points, recall.size)).astype(int))
    return recall[keep], precision[keep]
