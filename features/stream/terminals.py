"""The terminal (cross-card) pass of a micro-batch (pure: states in, vectors out).

Terminal states live in Redis, shared by every worker (:mod:`features.stream.redis_io`
loads them under ``WATCH`` and writes them back in one ``MULTI`` with the batch's feature
rows, so concurrent workers never lose an update). Here the batch's terminal items —
resolved labels and transactions with their card features — are applied in
:func:`~features.terminal.item_order`, through the core's ``terminal_update`` /
``terminal_label``.

Idempotence: a transaction whose feature row is already stored (a batch that wrote Redis
and then failed to commit in Kafka, redone) reuses that row and does not touch its terminal
again. Labels are idempotent in the core.

Lateness: an item behind the terminal's last applied transaction (see
:mod:`features.stream.release` for when that happens) cannot be applied in order. A late
transaction is still folded in — inserted at its time in the windows (so the terminal's
later vectors equal the core's again) — and gets the terminal's features as they stand; a
late label is applied as usual. A transaction in order among the terminal's transactions
but behind a label already applied (``marks``: the latest item order applied, labels
included, kept next to the state as ``"ll"``) has seen a label from its future: its own
vector is late. Either way the vectors of that terminal's transactions
between the item's time and the last applied one (and a late transaction's own) may differ
from the core's: each case is reported as a :class:`Late` (logged, counted, stored for
tests and audits: ``{project}:late``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from features.card import Features, terminal_key
from features.core import LABEL, TRANSACTION, item_order
from features.stream.items import TxnItem
from features.terminal import LabelEvent, TerminalState, terminal_label, terminal_update
from features.terminal import terminal_peek as terminal_features
from features.windows import DAY_MS, Sliding

log = logging.getLogger("fraudstream.features.stream.terminals")
TerminalItem = tuple[tuple[int, int, str], Any]  # (item_order, LabelEvent | (TxnItem, card))


@dataclass(frozen=True)
class Late:
    """An item applied out of its terminal's order: vectors of ``terminal``'s transactions
    with ``from_ms <= event time <= to_ms`` (and ``item_id``'s, for a transaction) may differ
    from the offline core's."""

    item_id: str
    kind: str  # "transaction" | "label" (terminal) | "card_label" (terminal = "card:<id>")
    terminal: str
    from_ms: int
    to_ms: int


@dataclass
class TerminalResult:
    vectors: dict[str, Features]  # transaction id -> full vector (card + terminal)
    changed: set[str]  # terminal keys whose state changed
    late: list[Late]


def txn_item(txn: TxnItem, card: Features) -> TerminalItem:
    e = txn.event
    return (item_order(e.event_ms, TRANSACTION, e.transaction_id), (txn, card))


def label_item(label: LabelEvent) -> TerminalItem:
    return (item_order(label.label_ms, LABEL, label.transaction_id), label)


def terminal_of(txn: TxnItem) -> str:
    return terminal_key(txn.event.terminal_id, txn.event.merchant_id)


def _insert(window: Sliding, t: int, value: float) -> None:
    """Put ``(t, value)`` in its time place in a keyless window (dropped when it already
    left the window, whose end is its latest item)."""
    items = window.items
    if items and t <= items[-1][0] - window.span:
        return
    pos = len(items)
    while pos > 0 and items[pos - 1][0] > t:
        pos -= 1
    items.insert(pos, [t, value])
    window.total += value


def insert_late(state: TerminalState, event_ms: int, amount: float) -> None:
    """Fold a transaction behind the terminal's order into its windows at its time."""
    _insert(state.w1h, event_ms, amount)
    _insert(state.w24h, event_ms, amount)
    state.days.add(event_ms // DAY_MS, 0, 1.0)


def apply_items(
    states: dict[str, TerminalState | None],
    items: list[TerminalItem],
    stored_rows: Mapping[str, Features],
    marks: dict[str, list[Any] | None] | None = None,
    applied: frozenset[str] = frozenset(),
) -> TerminalResult:
    """Apply ``items`` (any order; sorted here) to ``states`` (mutated; keys must cover every
    item's terminal). ``stored_rows``: feature rows already in the online store; ``marks``:
    each terminal's latest applied item order (mutated); ``applied``: redelivered
    transactions already in their terminal's state but without a stored row (their vector
    was not finite): they get the terminal's current features and change nothing."""
    out = TerminalResult({}, set(), [])
    marks = {} if marks is None else marks
    for order, item in sorted(items, key=lambda it: it[0]):
        if isinstance(item, LabelEvent):
            key = item.terminal
            _label(states, item, out, marks.get(key))
        elif item[0].event.transaction_id in applied and \
                item[0].event.transaction_id not in stored_rows:
            key = terminal_of(item[0])
            out.vectors[item[0].event.transaction_id] = item[1] + terminal_features(
                states.get(key))
            continue
        else:
            key = terminal_of(item[0])
            _transaction(states, item[0], item[1], stored_rows, out, marks.get(key))
        mark = marks.get(key)
        if mark is None or list(order) > mark:
            marks[key] = list(order)
    return out


def _label(states: dict[str, TerminalState | None], label: LabelEvent,
           out: TerminalResult, mark: list[Any] | None) -> None:
    """Apply a label; it is late when a later item (transaction or label) was applied
    already and it matters (a new fraud verdict, or a withdrawn one) — even when it can no
    longer change the state (its day left the terminal's windows, moved on by a later
    label), since the transactions applied before it missed it."""
    state = states.get(label.terminal)
    before = state is not None and label.transaction_id in state.frauds
    order = list(item_order(label.label_ms, LABEL, label.transaction_id))
    behind = (mark is not None and order < mark) or \
        (state is not None and state.last is not None and order < state.last)
    state = states[label.terminal] = terminal_label(state, label)
    changed = (label.transaction_id in state.frauds) != before
    if changed:
        out.changed.add(label.terminal)
    if behind and (changed or label.fraud != before):
        last_ms = int(state.last[0]) if state.last is not None else label.label_ms
        out.late.append(Late(label.transaction_id, "label", label.terminal, label.label_ms,
                             max(last_ms, label.label_ms)))


def _transaction(states: dict[str, TerminalState | None], txn: TxnItem, card: Features,
                 stored_rows: Mapping[str, Features], out: TerminalResult,
                 mark: list[Any] | None) -> None:
    e = txn.event
    stored = stored_rows.get(e.transaction_id)
    if stored is not None:
        out.vectors[e.transaction_id] = stored
        return
    key = terminal_of(txn)
    state, feats = terminal_update(states.get(key), e.transaction_id, e.event_ms, e.amount)
    states[key] = state
    out.changed.add(key)
    if feats is None:  # behind the terminal's order
        last_ms = int(state.last[0]) if state.last is not None else e.event_ms
        insert_late(state, e.event_ms, e.amount)
        feats = terminal_features(state)
        out.late.append(Late(e.transaction_id, "transaction", key, e.event_ms, last_ms))
    elif mark is not None and list(item_order(e.event_ms, TRANSACTION, e.transaction_id)) < mark:
        out.late.append(Late(e.transaction_id, "transaction", key, e.event_ms, e.event_ms))
    out.vectors[e.transaction_id] = card + feats
