"""Live detection quality from matured labels: the pure core behind the quality gauges.

A decision is *matured* when its verdict is known: a fraud or genuine label arrived for it,
or ``maturity_ms`` of event time passed without one (then it counts as genuine, the same
assumption the retrainer makes with ``retrain_maturity_days``). The last ``window`` matured
decisions form a rolling window; :meth:`QualityTracker.snapshot` reports on it the
precision and recall at the alert budget (the top ``budget`` share by score, as
``models.metrics`` defines recall at budget offline), the precision and recall of the
decisions actually alerted (review/decline), and the alert rate. So decay shows on a
dashboard weeks before a backtest would show it.

Decisions are tracked for a deterministic ``sample_rate`` share of transaction ids (every
ratio stays unbiased) and at most ``capacity`` wait for their labels: past that the oldest
is dropped and counted. Event time only: the watermark is the latest decision's event time.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class _Pending(NamedTuple):
    score: float
    alerted: bool
    event_ms: int


@dataclass(frozen=True)
class Quality:
    """One snapshot of the rolling window; ratios are NaN where undefined (no alerts...)."""

    decisions: int
    frauds: int
    precision_at_budget: float
    recall_at_budget: float
    alert_precision: float
    alert_recall: float
    alert_rate: float


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def sampled(transaction_id: str, rate: float) -> bool:
    """Whether ``transaction_id`` is in the tracked share (stable across processes).

    >>> sampled("t-1", 1.0)
    True
    >>> sum(sampled(f"t-{i}", 0.25) for i in range(4000)) in range(900, 1100)
    True
    """
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(transaction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


class QualityTracker:
    """Decisions wait here for their labels, then enter the rolling window (module doc)."""

    def __init__(self, window: int, capacity: int, maturity_ms: int, budget: float,
                 sample_rate: float = 1.0) -> None:
        self.budget = budget
        self.sample_rate = sample_rate
        self.capacity = capacity
        self.maturity_ms = maturity_ms
        self.watermark_ms = 0
        self.pending: OrderedDict[str, _Pending] = OrderedDict()
        self.window: deque[tuple[float, bool, bool]] = deque(maxlen=window)
        self.matured_ids: deque[str] = deque(maxlen=window)
        self.counts: Counter[str] = Counter()

    def add_decision(self, transaction_id: str, score: float, alerted: bool,
                     event_ms: int) -> None:
        """A decision from ``scores``; a repeat of a tracked id is ignored."""
        if not sampled(transaction_id, self.sample_rate) or transaction_id in self.pending:
            return
        self.pending[transaction_id] = _Pending(float(score), bool(alerted), int(event_ms))
        self.counts["decisions"] += 1
        self.watermark_ms = max(self.watermark_ms, int(event_ms))
        self._mature()
        if len(self.pending) > self.capacity:
            self.pending.popitem(last=False)
            self.counts["evicted"] += 1

    def add_label(self, transaction_id: str, fraud: bool) -> None:
        """A verdict: it matures its decision now (a label is final)."""
        if not sampled(transaction_id, self.sample_rate):
            return
        pending = self.pending.pop(transaction_id, None)
        if pending is None:
            late = fraud and transaction_id in self.matured_ids
            self.counts["late_labels" if late else "unmatched_labels"] += 1
            return
        self.counts["labels"] += 1
        self._enter(transaction_id, pending, fraud)

    def _mature(self) -> None:
        horizon = self.watermark_ms - self.maturity_ms
        while self.pending:
            tid, oldest = next(iter(self.pending.items()))
            if oldest.event_ms > horizon:
                break
            self.pending.popitem(last=False)
            self.counts["matured_unlabeled"] += 1
            self._enter(tid, oldest, False)

    def _enter(self, tid: str, pending: _Pending, fraud: bool) -> None:
        self.window.append((pending.score, pending.alerted, fraud))
        self.matured_ids.append(tid)

    def snapshot(self) -> Quality:
        """Quality of the current window (O(window); call it per scrape or every few s)."""
        n = len(self.window)
        if n == 0:
            return Quality(0, 0, *(math.nan,) * 5)
        data = np.array(self.window, dtype=np.float64)
        scores, alerted, fraud = data[:, 0], data[:, 1] > 0, data[:, 2] > 0
        frauds = int(fraud.sum())
        k = max(1, math.ceil(self.budget * n))
        top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
        caught = int(fraud[top].sum())
        hits = int((fraud & alerted).sum())
        return Quality(
            decisions=n,
            frauds=frauds,
            precision_at_budget=caught / k,
            recall_at_budget=_ratio(caught, frauds),
            alert_precision=_ratio(hits, int(alerted.sum())),
            alert_recall=_ratio(hits, frauds),
            alert_rate=float(alerted.mean()),
        )
