"""The pure feature core: the one implementation of every feature (no I/O, no clock).

The stream worker, the backfill and the backtest all call these functions, in the same
per-entity order, so online and offline feature values of a transaction are equal by
construction. Time is always the event's own time.

- Card entity (:mod:`features.card`): ``card_update(state, Event) -> (state, features)``.
- Terminal entity (:mod:`features.terminal`; the merchant when there is no terminal):
  ``terminal_update`` for transactions and ``terminal_label`` for label events, applied in
  :func:`~features.terminal.item_order`.
- :class:`FeatureCore` runs both over an in-memory, time-ordered stream of transactions and
  labels (the backfill; unit tests): the reference the stream worker must reproduce.

The full vector of T, in :data:`FEATURE_NAMES` order, is its card features followed by its
terminal features.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import cast

from features.card import (
    CARD_FEATURE_NAMES,
    DAY_MS,
    HOUR_MS,
    NO_PREVIOUS_SECONDS,
    CardState,
    Event,
    Features,
    card_label,
    card_update,
    terminal_key,
)
from features.terminal import (
    LABEL,
    TERMINAL_FEATURE_NAMES,
    TRANSACTION,
    LabelEvent,
    TerminalState,
    item_order,
    terminal_label,
    terminal_update,
)

FEATURE_NAMES: tuple[str, ...] = CARD_FEATURE_NAMES + TERMINAL_FEATURE_NAMES
N_CARD = len(CARD_FEATURE_NAMES)
INF = float("inf")

__all__ = [
    "CARD_FEATURE_NAMES", "DAY_MS", "FEATURE_NAMES", "HOUR_MS", "LABEL", "N_CARD",
    "NO_PREVIOUS_SECONDS", "TERMINAL_FEATURE_NAMES", "TRANSACTION", "CardState", "Event",
    "FeatureCore", "Features", "Label", "LabelEvent", "TerminalState", "card_label", "card_update",
    "item_order", "terminal_key", "terminal_label", "terminal_update",
]


@dataclass(frozen=True)
class Label:
    """A label event as published to ``labels`` (before resolution to a terminal)."""

    transaction_id: str
    card_id: str
    label_ms: int
    fraud: bool


@dataclass
class FeatureCore:
    """Card and terminal states for an in-memory replay (the offline reference).

    Feed :meth:`run` card-ordered transactions and labels; labels are resolved to their
    transaction's terminal through the card state, exactly as the stream worker does.
    """

    cards: dict[str, CardState] = field(default_factory=dict)
    terminals: dict[str, TerminalState] = field(default_factory=dict)

    def card_features(self, events: Iterable[Event]) -> Iterator[tuple[Event, Features]]:
        """Card features of each transaction, in the given (per-card event-time) order."""
        for event in events:
            state, feats = card_update(self.cards.get(event.card_id), event)
            self.cards[event.card_id] = state
            if feats is not None:  # None: a repeated transaction id, already applied
                yield event, feats

    def resolve(self, label: Label) -> LabelEvent | None:
        """Apply a label to its card (:func:`~features.card.card_label`) and return its
        terminal item, or None when its transaction is unknown to the card."""
        state = self.cards.get(label.card_id)
        hit = state.transaction_terminal(label.transaction_id) if state else None
        if state is None or hit is None:
            return None
        card_label(state, label.transaction_id, label.label_ms, label.fraud)
        return LabelEvent(label.transaction_id, hit[0], hit[1], label.label_ms, label.fraud)

    def run(self, events: Iterable[Event], labels: Iterable[Label]) -> dict[str, Features]:
        """Full feature vectors by transaction id.

        ``events`` must be in per-card event-time order (the order of the card's partition);
        labels in any order. A label is resolved through its card's state once every
        transaction before its ``label_ms`` was folded in (as the worker does); then every
        terminal's items are applied in :func:`item_order`.
        """
        pending = sorted(labels, key=lambda lb: (lb.label_ms, lb.transaction_id))
        items: list[tuple[tuple[int, int, str], object]] = []
        i = 0

        def resolve_until(ms: float) -> None:
            nonlocal i
            while i < len(pending) and pending[i].label_ms < ms:
                resolved = self.resolve(pending[i])
                if resolved is not None:
                    order = item_order(resolved.label_ms, LABEL, resolved.transaction_id)
                    items.append((order, resolved))
                i += 1

        cards = self.cards
        next_label = pending[0].label_ms if pending else INF
        for event in events:
            if event.event_ms > next_label:  # as online: labels resolve once the card caught up
                resolve_until(event.event_ms)
                next_label = pending[i].label_ms if i < len(pending) else INF
            state, feats = card_update(cards.get(event.card_id), event)
            cards[event.card_id] = state
            if feats is not None:  # None: a repeated transaction id, already applied
                order = (event.event_ms, TRANSACTION, event.transaction_id)  # item_order
                items.append((order, (event, feats)))
        resolve_until(INF)
        items.sort(key=itemgetter(0))
        out: dict[str, Features] = {}
        terminals = self.terminals
        for _, item in items:
            if isinstance(item, LabelEvent):
                terminals[item.terminal] = terminal_label(terminals.get(item.terminal), item)
                continue
            event, card_feats = cast(tuple[Event, Features], item)
            key = terminal_key(event.terminal_id, event.merchant_id)
            state_t, term_feats = terminal_update(
                terminals.get(key), event.transaction_id, event.event_ms, event.amount)
            terminals[key] = state_t
            if term_feats is not None:
                out[event.transaction_id] = card_feats + term_feats
        return out
