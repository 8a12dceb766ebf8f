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

Label delay: a fraud label typically becomes known ``d`` days after its transaction, so
windows that end at T hold mostly unlabeled transactions (the 7-day fraud count is ~0 under a
7-day delay). The *delayed* features count transactions and known frauds over the days
``(day(T) - d - w, day(T) - d]`` for ``w`` in 1 / 7 / 30: windows whose labels have matured
by T (still only labels known by T; denominators over the same days).

``d`` is one process-wide value, :func:`label_delay` (default :data:`LABEL_DELAY_DAYS`), set
once at start-up from the ``label_delay_days`` setting by :func:`configure_label_delay`; the
core, its numpy twin, the stream stage, the backfill and the API all read it, so online and
offline agree for any ``d``. The math itself is pure in the state: a state's ``days.spans``
(:func:`day_spans`) fix the ``d`` its features use (``d = spans[-1] - 30``), and a stored
state built with another ``d`` is re-bucketed onto the current spans when loaded, with a
warning (:meth:`TerminalState.from_dict`).

Memory is bounded (1 h / 24 h sliding windows, ``d + 30`` daily buckets, fraud-labeled ids of
the last ``d + 31`` days); work per item is amortised O(1). Redelivery: items are applied in
:func:`item_order`, so an item at or before the last one applied was applied already
(:func:`terminal_update` returns None for it; labels are idempotent anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from features.card import HOUR_MS, Features
from features.windows import DAY_MS, DayBuckets, Sliding

log = logging.getLogger(__name__)

LABEL, TRANSACTION = 0, 1
LABEL_DELAY_DAYS = 7  # the default label delay d (days) of the delayed-window features
MIN_LABEL_DELAY_DAYS, MAX_LABEL_DELAY_DAYS = 1, 90
DELAYED_WINDOWS = (1, 7, 30)  # w: days of each delayed window
_LONGEST = max(30, *DELAYED_WINDOWS)


def check_delay(delay: int) -> int:
    """``delay`` if it is a whole number of days in the supported range, else ValueError."""
    if isinstance(delay, bool) or not isinstance(delay, int) or not (
            MIN_LABEL_DELAY_DAYS <= delay <= MAX_LABEL_DELAY_DAYS):
        raise ValueError(f"label delay must be a whole number of days in "
                         f"[{MIN_LABEL_DELAY_DAYS}, {MAX_LABEL_DELAY_DAYS}], got {delay!r}")
    return delay


def day_spans(delay: int | None = None) -> tuple[int, ...]:
    """The day spans a terminal keeps running totals for: 7 and 30 (windows ending at T)
    and ``d``, ``d + w`` (delayed windows are differences of two spans); ``d`` defaults to
    :func:`label_delay`. The longest span is always ``d + 30``.

    >>> day_spans(7)
    (7, 8, 14, 30, 37)
    >>> day_spans(3)
    (3, 4, 7, 10, 30, 33)
    """
    d = label_delay() if delay is None else check_delay(delay)
    return tuple(sorted({7, 30, d, *(d + w for w in DELAYED_WINDOWS)}))


def delay_of(spans: tuple[int, ...]) -> int:
    """The ``d`` a state's spans were built for (:func:`day_spans` ends with ``d + 30``)."""
    return spans[-1] - _LONGEST


_delay = LABEL_DELAY_DAYS


def label_delay() -> int:
    """The process's label delay ``d`` (days): :func:`configure_label_delay`'s value."""
    return _delay


def configure_label_delay(delay: int) -> None:
    """Fix the process's label delay, once at start-up (from ``Settings.label_delay_days``)."""
    global _delay
    _delay = check_delay(delay)


@contextmanager
def label_delay_days(delay: int) -> Iterator[None]:
    """:func:`configure_label_delay` for a block, then the previous value (tests, tools)."""
    before = label_delay()
    configure_label_delay(delay)
    try:
        yield
    finally:
        configure_label_delay(before)


def known_days(spans: tuple[int, ...]) -> int:
    """Fraud-labeled ids older than this many days are forgotten."""
    return spans[-1] + 1


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
    return DayBuckets(day_spans(), 2)  # transactions, fraud labels known so far


_WARNED: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()


def _migrate(days: DayBuckets) -> DayBuckets:
    """A stored state with other spans (an older version, or another label delay) re-bucketed
    onto the current :func:`day_spans`: the days it kept are exact, days it never kept count
    nothing (so delayed windows reaching past them undercount until they have passed)."""
    spans = day_spans()
    if days.spans == spans:
        return days
    level = logging.DEBUG if (days.spans, spans) in _WARNED else logging.WARNING
    _WARNED.add((days.spans, spans))  # once per process and pair of spans, not per terminal
    log.log(level, "terminal state with day spans %s (label delay %d d) re-bucketed onto %s "
            "(label delay %d d); windows reaching past its %d kept days start empty",
            list(days.spans), delay_of(days.spans), list(spans), delay_of(spans),
            days.spans[-1])
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
        oldest = day - known_days(state.days.spans)
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
    totals, at = state.days.totals, state.days.spans.index
    n7, f7 = totals[at(7)]
    n30, f30 = totals[at(30)]
    n24 = state.w24h.count
    return (
        float(state.w1h.count), float(n24), n7, n30,
        state.w24h.total / n24 if n24 else 0.0,
        f7, f30, f7 / n7 if n7 > 0 else 0.0, f30 / n30 if n30 > 0 else 0.0,
        *_delayed(totals, state.days.spans),
    )


def _delayed(totals: list[list[float]], spans: tuple[int, ...]) -> Features:
    """Transactions, known frauds and fraud rate over ``(day - d - w, day - d]`` for each
    ``w`` (``d``: :func:`delay_of` the spans), then the known frauds over all ``d + 30`` days
    (counts are whole numbers, so the differences of running totals are exact)."""
    d = delay_of(spans)
    n_end, f_end = totals[spans.index(d)]
    counts, frauds = [], []
    for w in DELAYED_WINDOWS:
        n_span, f_span = totals[spans.index(d + w)]
        counts.append(n_span - n_end)
        frauds.append(f_span - f_end)
    rates = [f / n if n > 0 else 0.0 for n, f in zip(counts, frauds, strict=True)]
    return (*counts, *frauds, *rates, totals[-1][1])


def terminal_peek(state: TerminalState | None) -> Features:
    """The terminal's current features without folding anything in: the best available
    vector for a late transaction (one behind the terminal's order) that has none yet."""
    return _features(state or TerminalState())
