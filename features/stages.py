"""The two stages of the feature worker as I/O-free adapters around the core.

Card stage (on the partitions of ``transactions`` and ``labels``, both keyed by card):
folds each transaction into its card's state and emits a repartition message keyed by the
transaction's terminal, carrying the card features; resolves each label to its
transaction's terminal through the card state once the card partition has caught up with the
label's time, and emits it too. It announces per-partition watermarks for both streams
(see :mod:`features.merge`).

Terminal stage (on the partitions of the repartition topic): merges the items of all
sources in ``(time, kind, id)`` order, folds them into terminal states and returns T's full
vector (card + terminal features). Stage objects see tables as plain mappings and return
messages; :mod:`features.worker` does the Kafka and Feast I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from features.core import (
    LABEL,
    TRANSACTION,
    CardState,
    Event,
    Features,
    Label,
    TerminalState,
    card_update,
    item_order,
    terminal_key,
    terminal_label,
    terminal_update,
)
from features.merge import Merger
from features.terminal import LabelEvent, terminal_peek

Message = tuple[bytes | None, bytes]  # key (terminal) and value; markers have no key


class StateStore(Protocol):
    """A table seen by a stage: reads and writes happen on behalf of a message (``handle``)
    of the partition the key belongs to (Faust keeps table partitions with their source's)."""

    def get(self, key: str, handle: Any) -> Any: ...

    def put(self, key: str, value: Any, handle: Any) -> None: ...


class DictStore(dict[str, Any]):
    """An in-memory :class:`StateStore` (tests, backfill-like runs)."""

    def get(self, key: str, handle: Any = None) -> Any:
        return dict.get(self, key)

    def put(self, key: str, value: Any, handle: Any) -> None:
        self[key] = value


def dumps(value: Any) -> bytes:
    """Compact JSON (orjson: floats as their shortest repr, so values round-trip exactly)."""
    return orjson.dumps(value)


def txn_source(partition: int) -> str:
    return f"t{partition}"


def label_source(partition: int) -> str:
    return f"l{partition}"


def all_sources(partitions: int) -> list[str]:
    return [f(p) for p in range(partitions) for f in (txn_source, label_source)]


@dataclass
class CardStage:
    """Card state, pending labels and watermarks of the card partitions this worker owns."""

    table: StateStore
    txn_wm: dict[int, int] = field(default_factory=dict)
    label_wm: dict[int, int] = field(default_factory=dict)
    pending: dict[int, deque[tuple[Label, Any]]] = field(default_factory=dict)
    _cache: dict[str, tuple[CardState, Any]] = field(default_factory=dict)

    def _state(self, card_id: str, handle: Any) -> CardState | None:
        hit = self._cache.get(card_id)
        if hit is not None:
            return hit[0]
        raw = self.table.get(card_id, handle)
        return CardState.from_dict(raw) if raw else None

    def snapshots(self) -> list[tuple[str, dict[str, Any]]]:
        """``(card_id, state dict)`` of the states changed since the last flush: what
        :meth:`flush` persists (and the worker publishes for the REST API)."""
        return [(card_id, state.to_dict()) for card_id, (state, _) in self._cache.items()]

    def flush(self, snapshots: list[tuple[str, dict[str, Any]]] | None = None) -> None:
        """Write the states changed since the last flush back to the table (one per card);
        ``snapshots``: what :meth:`snapshots` returned since (saves encoding them again)."""
        _flush(self.table, self._cache, snapshots)

    def transaction(self, partition: int, event: Event, record: dict[str, Any],
                    handle: Any = None, offset: int | None = None) -> Message | None:
        """Fold a transaction (``handle``: its message, at ``offset`` in ``partition``) in;
        its repartition message, or None when it was folded in already.

        A card's transactions arrive in its partition's offset order and the card state
        keeps the position of the last one folded in, so a message at or before that
        position is a redelivery (after a crash, messages since the last commit come again;
        their results were sent before the card state was persisted). A repeated
        transaction id at a new offset is the core's business (it ignores recent repeats).
        """
        self.txn_wm[partition] = max(event.event_ms, self.txn_wm.get(partition, event.event_ms))
        state = self._state(event.card_id, handle)
        if (offset is not None and state is not None and state.source is not None
                and state.source[0] == partition and offset <= state.source[1]):
            return None
        state, feats = card_update(state, event)
        if offset is not None:
            state.source = [partition, offset]
        self._cache[event.card_id] = (state, handle)
        if feats is None:
            return None
        term = terminal_key(event.terminal_id, event.merchant_id)
        value = {"k": TRANSACTION, "s": txn_source(partition), "t": event.event_ms,
                 "id": event.transaction_id, "term": term, "cf": feats, "rec": record}
        return term.encode(), dumps(value)

    def label(self, partition: int, label: Label, handle: Any) -> None:
        """Queue a label (FIFO per partition: labels leave in their topic's order)."""
        self.pending.setdefault(partition, deque()).append((label, handle))

    def release_labels(self, partition: int, txn_idle: bool) -> list[tuple[Message | None, Any]]:
        """Labels whose card partition caught up with their time (or is idle), resolved.

        Returns ``(message or None when the transaction is unknown, handle)`` in order.
        """
        queue = self.pending.get(partition)
        out: list[tuple[Message | None, Any]] = []
        wm = self.txn_wm.get(partition)
        while queue and (txn_idle or (wm is not None and wm >= queue[0][0].label_ms)):
            label, handle = queue.popleft()
            self.label_wm[partition] = max(label.label_ms, self.label_wm.get(partition, 0))
            state = self._state(label.card_id, handle)
            hit = state.transaction_terminal(label.transaction_id) if state else None
            if hit is None:
                out.append((None, handle))
                continue
            value = {"k": LABEL, "s": label_source(partition), "t": label.label_ms,
                     "id": label.transaction_id, "term": hit[0], "e": hit[1],
                     "f": label.fraud}
            out.append(((hit[0].encode(), dumps(value)), handle))
        return out

    def markers(self, partition: int, txn_idle: bool, labels_idle: bool) -> list[bytes]:
        """Watermark announcements of this partition's two sources."""
        queue = self.pending.get(partition)
        label_w = queue[0][0].label_ms if queue else self.label_wm.get(partition, -1)
        return [
            dumps({"k": -1, "s": txn_source(partition), "w": self.txn_wm.get(partition, -1),
                   "i": txn_idle}),
            dumps({"k": -1, "s": label_source(partition), "w": label_w,
                   "i": labels_idle and not queue}),
        ]

    def revoke(self, partition: int) -> list[Any]:
        """Forget a revoked partition; returns the handles of its pending labels."""
        self.txn_wm.pop(partition, None)
        self.label_wm.pop(partition, None)
        return [handle for _, handle in self.pending.pop(partition, deque())]


@dataclass
class Released:
    """A transaction whose full vector is known."""

    transaction_id: str
    card_id: str
    terminal: str
    event_ms: int
    features: Features
    record: dict[str, Any]
    late: bool = False  # not after the terminal's last item: written only if missing


@dataclass
class TerminalStage:
    """Merge buffers (one per repartition partition) and the terminal states."""

    table: StateStore
    partitions: int
    mergers: dict[int, Merger] = field(default_factory=dict)
    _cache: dict[str, tuple[TerminalState, Any]] = field(default_factory=dict)

    def receive(self, partition: int, value: dict[str, Any], handle: Any) -> bool:
        """Take one repartition message; True when ``handle`` is now held in the buffer."""
        merger = self.mergers.get(partition)
        if merger is None:
            merger = self.mergers[partition] = Merger(all_sources(self.partitions))
        if value["k"] == -1:
            merger.mark(value["s"], int(value["w"]), bool(value["i"]))
            return False
        key = item_order(int(value["t"]), int(value["k"]), str(value["id"]))
        return merger.add(key, (value, handle))

    def release(self, partition: int) -> list[tuple[Released | None, Any]]:
        """Apply the releasable items of ``partition`` in order; transactions come back."""
        merger = self.mergers.get(partition)
        return [self._apply(v, h) for v, h in merger.release()] if merger else []

    def _apply(self, value: dict[str, Any], handle: Any) -> tuple[Released | None, Any]:
        term = str(value["term"])
        hit = self._cache.get(term)
        if hit is not None:
            state: TerminalState | None = hit[0]
        else:
            raw = self.table.get(term, handle)
            state = TerminalState.from_dict(raw) if raw else None
        if value["k"] == LABEL:
            label = LabelEvent(str(value["id"]), term, int(value["e"]), int(value["t"]),
                               bool(value["f"]))
            self._cache[term] = (terminal_label(state, label), handle)
            return None, handle
        record = value["rec"]
        state, feats = terminal_update(state, str(value["id"]), int(value["t"]),
                                       float(record["amount"]))
        self._cache[term] = (state, handle)
        late = feats is None
        full = tuple(value["cf"]) + (terminal_peek(state) if feats is None else feats)
        return Released(str(value["id"]), str(record["card_id"]), term, int(value["t"]),
                        full, record, late), handle

    def snapshots(self) -> list[tuple[str, dict[str, Any]]]:
        """``(terminal key, state dict)`` of the states changed since the last flush."""
        return [(term, state.to_dict()) for term, (state, _) in self._cache.items()]

    def flush(self, snapshots: list[tuple[str, dict[str, Any]]] | None = None) -> None:
        """As :meth:`CardStage.flush`, for terminal states."""
        _flush(self.table, self._cache, snapshots)

    def revoke(self, partition: int) -> list[Any]:
        merger = self.mergers.pop(partition, None)
        return [handle for _, handle in merger.drain()] if merger else []


def _flush(table: StateStore, cache: dict[str, tuple[Any, Any]],
           snapshots: list[tuple[str, dict[str, Any]]] | None) -> None:
    encoded = dict(snapshots) if snapshots is not None else {}
    for key, (state, handle) in cache.items():
        value = encoded.get(key)
        table.put(key, value if value is not None else state.to_dict(), handle)
    cache.clear()
