"""Per-terminal (or merchant) features and label events, pure.

A terminal's state sees two kinds of items, which must be applied in the order of
:func:`item_order` — ``(time, kind, transaction_id)`` with labels (``LABEL``) before
transactions at the same millisecond:

- a transaction T at ``event_ms``: :func:`terminal_update` returns T's terminal features,
  T included;
- a label known at ``label_ms`` for an earlier transaction of the terminal:
  :func:`terminal_label` records it in the daily bucket of that transaction's event day.

So the fraud counts and rates of T use exactly the labels with ``label_time <= event_time``
of T (no label from T's future can be in the state when T is applied) and only for
transactions inside T's window. The same order is used by the backfill and by the stream
worker's merge (:mod:`features.merge`), which is what makes them equal.

Memory is bounded (1 h / 24 h sliding windows, 30 daily buckets, fraud-labeled ids of the
last 31 days); work per item is amortised O(1). Redelivery: items are applied in
:func:`item_order`, so an item at or before the last one applied was applied already
(:func:`terminal_update` returns None for it; labels are idempotent anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from features.card import HOUR_MS, Features
from features.windows import DAY_MS, DayBuckets, Sliding

LABEL, TRANSACTION = 0, 1
TERMINAL_FEATURE_NAMES: tuple[str, ...] = (
    "term_txn_count_1h", "term_txn_count_24h", "term_txn_count_7d", "term_txn_count_30d",
    "term_amount_mean_24h", "term_fraud_count_7d", "term_fraud_count_30d",
    "term_fraud_rate_7d", "term_fraud_rate_30d",
)


class LabelEvent(NamedTuple):
    """A label resolved to its transaction's terminal and event time."""

    transaction_id: str
    terminal: str
    event_ms: int  # of the labeled transaction
    label_ms: int  # when the label became known
    fraud: bool


def item_order(time_ms: int, kind: int, transaction_id: str) -> tuple[int, int, str]:
    """The total order in which a terminal's items are applied (online and offline)."""
    return (time_ms, kind, transaction_id)


def _days() -> DayBuckets:
    return DayBuckets((7, 30), 2)  # transactions, fraud labels known so far


@dataclass
class TerminalState:
    """Per-terminal state; JSON-serialisable through :meth:`to_dict` / :meth:`from_dict`."""

    w1h: Sliding = field(default_factory=lambda: Sliding(HOUR_MS))
    w24h: Sliding = field(default_factory=lambda: Sliding(DAY_MS))
    days: DayBuckets = field(default_factory=_days)
    frauds: dict[str, int] = field(default_factory=dict)  # fraud-labeled tid -> event day
    last: list[Any] | None = None  # item_order of the last transaction applied

    def to_dict(self) -> dict[str, Any]:
        return {"h": self.w1h.to_list(), "d24": self.w24h.to_list(),
                "d": self.days.to_list(), "f": self.frauds, "l": self.last}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TerminalState:
        return cls(w1h=Sliding.from_list(data["h"]), w24h=Sliding.from_list(data["d24"]),
                   days=DayBuckets.from_list(data["d"]), frauds=dict(data["f"]),
                   last=data["l"])


def _advance(state: TerminalState, now: int) -> None:
    day = now // DAY_MS
    if day > state.days.day:
        state.days.advance(day)
        oldest = day - 31
        for tid in [t for t, d in state.frauds.items() if d < oldest]:
            del state.frauds[tid]


def terminal_label(state: TerminalState | None, label: LabelEvent) -> TerminalState:
    """Apply a label known at ``label.label_ms``; idempotent per (transaction, verdict).

    A later ``genuine`` verdict for a transaction labeled fraud withdraws the fraud count.
    """
    if state is None:
        state = TerminalState()
    _advance(state, label.label_ms)
    day = label.event_ms // DAY_MS
    known = label.transaction_id in state.frauds
    if label.fraud and not known:
        if state.days.add(day, 1, 1.0, create=False):
            state.frauds[label.transaction_id] = day
    elif not label.fraud and known:
        state.days.add(state.frauds.pop(label.transaction_id), 1, -1.0, create=False)
    return state


def terminal_update(
    state: TerminalState | None, transaction_id: str, event_ms: int, amount: float
) -> tuple[TerminalState, Features | None]:
    """Fold transaction T into its terminal's state; return T's terminal features.

    Returns None (state unchanged) when T is not after the last transaction applied:
    a redelivery (or data later than the worker's watermarks; see :func:`terminal_peek`).
    """
    if state is None:
        state = TerminalState()
    order = list(item_order(event_ms, TRANSACTION, transaction_id))
    if state.last is not None and order <= state.last:
        return state, None
    state.last = order
    _advance(state, event_ms)
    state.w1h.push(event_ms, amount)
    state.w24h.push(event_ms, amount)
    state.days.add(event_ms // DAY_MS, 0, 1.0)
    return state, _features(state)


def _features(state: TerminalState) -> Features:
    n7, f7 = state.days.totals[0]
    n30, f30 = state.days.totals[1]
    n24 = state.w24h.count
    return (
        float(state.w1h.count), float(n24), n7, n30,
        state.w24h.total / n24 if n24 else 0.0,
        f7, f30, f7 / n7 if n7 > 0 else 0.0, f30 / n30 if n30 > 0 else 0.0,
    )


def terminal_peek(state: TerminalState | None) -> Features:
    """The terminal's current features without folding anything in: the best available
    vector for a late transaction (one behind the terminal's order) that has none yet."""
    return _features(state or TerminalState())
