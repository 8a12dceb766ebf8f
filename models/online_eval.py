"""Offline, prequential run of the online learner over a labeled history (no Kafka).

Uses the production classes — :class:`~models.online_join.LabelJoin`,
:class:`~models.online.OnlineModel` and :func:`~models.online.combine` — in event-time
order: every transaction is first *scored* with the online model as it was at the last
snapshot (one per ``snapshot_ms`` of event time, like scorers polling the learner's
snapshots), then its decision enters the join; every label is fed when its ``label_time``
has come. So no score ever uses a label from its future.

:func:`daily_recall` then compares score columns by recall at a fixed alert budget per day
(the top ``budget`` share of each day's transactions are alerted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.online import CombineRule, OnlineModel, combine
from models.online_join import LabelJoin

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class StreamConfig:
    snapshot_ms: int = HOUR_MS
    negative_rate: float = 0.05
    learning_rate: float = 0.05
    ttl_ms: int = 168 * HOUR_MS
    capacity: int = 500_000
    rule: CombineRule = CombineRule()
    seed: int = 7


def _ms(values: pd.Series) -> np.ndarray:
    times = pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")
    return np.asarray(times.astype("int64") // 1_000_000)


def stream_online(
    frame: pd.DataFrame,
    feature_names: Sequence[str],
    xgb_scores: np.ndarray,
    config: StreamConfig | None = None,
) -> pd.DataFrame:
    """Online and combined scores of every row (``frame`` order) plus the final model.

    ``frame`` needs ``transaction_id``, ``event_time``, ``is_fraud``, ``label_time`` and the
    feature columns. Returns columns ``online`` (calibrated probability, NaN before the
    first snapshot), ``combined`` and ``weight`` (the combination weight in force).
    """
    config = config or StreamConfig()
    names = list(feature_names)
    model = OnlineModel(names, config.negative_rate, config.learning_rate)
    join = LabelJoin(config.capacity, config.ttl_ms, config.negative_rate, config.seed)
    order = np.argsort(_ms(frame["event_time"]), kind="stable")
    event_ms = _ms(frame["event_time"])[order]
    tids = frame["transaction_id"].astype(str).to_numpy()[order]
    matrix = frame[names].to_numpy(dtype=np.float64)[order]
    vectors = matrix.astype(np.float32)
    label_order = np.argsort(_ms(frame["label_time"]), kind="stable")
    label_ms = _ms(frame["label_time"])[label_order]
    label_tid = frame["transaction_id"].astype(str).to_numpy()[label_order]
    label_fraud = frame["is_fraud"].astype(bool).to_numpy()[label_order]

    online = np.full(len(frame), np.nan)
    combined = np.asarray(xgb_scores, dtype=np.float64)[order].copy()
    weight = np.zeros(len(frame))
    j = 0
    start = 0
    while start < len(order):
        chunk_end_ms = (event_ms[start] // config.snapshot_ms + 1) * config.snapshot_ms
        stop = int(np.searchsorted(event_ms, chunk_end_ms, side="left"))
        rows = slice(start, stop)
        if model.learned:
            probabilities, lift = model.outputs(matrix[rows])
            w = config.rule.weight_for(model.frauds)
            online[rows] = probabilities
            combined[rows] = combine(combined[rows], lift, w)
            weight[rows] = w
        for i in range(start, stop):
            while j < len(label_ms) and label_ms[j] <= event_ms[i]:
                for ex in join.add_label(label_tid[j], bool(label_fraud[j]), int(label_ms[j])):
                    model.learn(ex.vector, ex.fraud)
                j += 1
            for ex in join.add_decision(tids[i], vectors[i], int(event_ms[i])):
                model.learn(ex.vector, ex.fraud)
        start = stop
    out = pd.DataFrame(index=frame.index[order])
    out["online"], out["combined"], out["weight"] = online, combined, weight
    return out.loc[frame.index]


def _recall_at_budget(y: np.ndarray, score: np.ndarray, budget: float) -> tuple[float, float]:
    n_alerts = max(1, int(round(budget * len(y))))
    top = np.argsort(-score, kind="stable")[:n_alerts]
    caught = int(y[top].sum())
    total = int(y.sum())
    return (caught / total if total else float("nan")), caught / n_alerts


def daily_recall(
    frame: pd.DataFrame,
    scores: dict[str, np.ndarray],
    budget: float = 0.01,
    fraud_mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per UTC day and score column: recall and precision of the top ``budget`` alerts.

    ``fraud_mask`` restricts which frauds count for recall (e.g. only the new scenario's),
    the alert budget still being shared with every transaction of the day.
    """
    day = pd.to_datetime(frame["event_time"], utc=True).dt.floor("D").to_numpy()
    y_all = frame["is_fraud"].astype(bool).to_numpy()
    y = y_all if fraud_mask is None else (y_all & fraud_mask)
    rows = []
    for d in np.unique(day):
        sel = day == d
        row: dict[str, object] = {"day": pd.Timestamp(d).date().isoformat(),
                                  "frauds": int(y[sel].sum())}
        for name, score in scores.items():
            recall, _ = _recall_at_budget(y[sel].astype(int), score[sel], budget)
            _, precision = _recall_at_budget(y_all[sel].astype(int), score[sel], budget)
            row[f"recall_{name}"] = recall
            row[f"precision_{name}"] = precision
        rows.append(row)
    return pd.DataFrame(rows)
