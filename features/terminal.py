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
stage, which releases records across partitions in event-time order
(:mod:`features.stream.release`) and counts each one that arrives behind it as late; that
is what makes them equal.

Label delay: a fraud label typically becomes known :data:`LABEL_DELAY_DAYS` days after its
transaction, so windows that end at T hold mostly unlabeled transactions (the 7-day fraud
count is ~0 under a 7-day delay). The *delayed* features count transactions and known frauds
over the days ``(day(T) - d - w, day(T) - d]`` for ``w`` in 1 / 7 / 30 and ``d`` =
:data:`LABEL_DELAY_DAYS`: windows whose labels have matured by T (still only labels known by
T; denominators over the same days).

Memory is bounded (1 h / 24 h sliding windows, ``d + 30`` daily buckets, fraud-labeled ids of
the last ``d + 31`` days); work per item is amortised O(1). Redelivery: items are applied in
:func:`item_order`, so an item at or before the last one applied was applied already
(:func:`terminal_update` returns None for it; labels are idempotent anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from features.card import HOUR_MS, Features
from features.windows import DAY_MS, DayBuckets, Sliding

LABEL, TRANSACTION = 0, 1
# The typical label delay d (days) of the delayed-window features: a module constant, not a
# settings read, so the math stays pure; the stream and the backfill use the same value.
LABEL_DELAY_DAYS = 7
DELAYED_WINDOWS = (1, 7, 30)  # w: days of each delayed window


def day_spans(delay: int = LABEL_DELAY_DAYS) -> tuple[int, ...]:
    """The day spans a terminal keeps running totals for: 7 and 30 (windows ending at T)
    and ``d``, ``d + w`` (delayed windows are differences of two spans).

    >>> day_spans(7)
    (7, 8, 14, 30, 37)
    """
    if delay < 1:
        raise ValueError(f"label delay must be >= 1 day, got {delay}")
    return tuple(sorted({7, 30, delay, *(delay + w for w in DELAYED_WINDOWS)}))


SPANS = day_spans()
KNOWN_DAYS = SPANS[-1] + 1  # fraud-labeled ids older than this are forgotten
TERMINAL_FEATURE_NAMES: tuple[str, ...] = (
    "term_txn_count_1h", "term_txn_count_24h", "term_txn_count_7d", "term_txn_count_30d",
    "term_amount_mean_24h", "term_fraud_count_7d", "term_fraud_count_30d",
    "term_fraud_rate_7d", "term_fraud_rate_30d",
    *(f"term_txn_count_{w}d_delayed" for w in DELAYED_WINDOWS),
    *(f"term_fraud_count_{w}d_delayed" for w in DELAYED_WINDOWS),
    *(f"term_fraud_rate_{w}d_delayed" for w in DELAYED_WINDOWS),
    "term_fraud_count_known_long",
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
    return DayBuckets(SPANS, 2)  # transactions, fraud labels known so far


def _migrate(days: DayBuckets) -> DayBuckets:
    """A stored state with other spans (an older version) re-bucketed onto :data:`SPANS`
    (the days it kept are exact; delayed windows reaching past them start empty)."""
    if days.spans == SPANS:
        return days
    new = _days()
    new.advance(days.day)
    for bucket in days.buckets:
        new.add_all(int(bucket[0]), tuple(bucket[1:]))
    return new


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
                   days=_migrate(DayBuckets.from_list(data["d"])), frauds=dict(data["f"]),
                   last=data["l"])


def _advance(state: TerminalState, now: int) -> None:
    day = now // DAY_MS
    if day > state.days.day:
        state.days.advance(day)
        oldest = day - KNOWN_DAYS
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


_AT = {span: i for i, span in enumerate(SPANS)}


def _features(state: TerminalState) -> Features:
    totals = state.days.totals
    n7, f7 = totals[_AT[7]]
    n30, f30 = totals[_AT[30]]
    n24 = state.w24h.count
    return (
        float(state.w1h.count), float(n24), n7, n30,
        state.w24h.total / n24 if n24 else 0.0,
        f7, f30, f7 / n7 if n7 > 0 else 0.0, f30 / n30 if n30 > 0 else 0.0,
        *_delayed(totals),
    )


def _delayed(totals: list[list[float]]) -> Features:
    """Transactions, known frauds and fraud rate over ``(day - d - w, day - d]`` for each
    ``w``, then the known frauds over all ``d + 30`` days (counts are whole numbers, so the
    differences of running totals are exact)."""
    n_end, f_end = totals[_AT[LABEL_DELAY_DAYS]]
    counts, frauds = [], []
    for w in DELAYED_WINDOWS:
        n_span, f_span = totals[_AT[LABEL_DELAY_DAYS + w]]
        counts.append(n_span - n_end)
        frauds.append(f_span - f_end)
    rates = [f / n if n > 0 else 0.0 for n, f in zip(counts, frauds, strict=True)]
    return (*counts, *frauds, *rates, totals[-1][1])


def terminal_peek(state: TerminalState | None) -> Features:
    """The terminal's current features without folding anything in: the best available
    vector for a late transaction (one behind the terminal's order) that has none yet."""
    return _features(state or TerminalState())
