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

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

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


WARM_STATES = 5_000  # decoded states a stage keeps between micro-batches (per stage)


class StateStore(Protocol):
    """A table seen by a stage: reads and writes happen on behalf of a message (``handle``)
    of the partition the key belongs to (Faust keeps table partitions with their source's).
    Values are the JSON bytes of a state's ``to_dict()`` (a decoded dict is accepted too)."""

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


def decode(raw: Any) -> dict[str, Any]:
    """A stored state as its dict (tables hold JSON bytes; a dict passes through)."""
    return raw if isinstance(raw, dict) else cast(dict[str, Any], orjson.loads(raw))


def encode_card(state: CardState) -> tuple[bytes, bytes]:
    """``(stored, served)`` JSON of a card state, encoded once: ``served`` (the REST API's
    snapshot) leaves out the transaction -> terminal map, which only resolves labels and is
    most of the bytes; ``stored`` (the table's value) is ``served`` with the map.

    >>> stored, served = encode_card(CardState())
    >>> CardState.from_dict(decode(stored)).to_dict() == CardState().to_dict()
    True
    >>> b'"x"' in stored, b'"x"' in served
    (True, False)
    """
    data = state.to_dict()
    txns = data.pop("x")
    served = dumps(data)
    return served[:-1] + b',"x":' + dumps(txns) + b"}", served


class WarmStates:
    """Decoded states kept between micro-batches (least recently used out first), so a
    busy entity is not decoded from its table on every batch; each remembers its table
    partition, and a revoked partition's states are dropped (the table is the truth)."""

    def __init__(self, capacity: int = WARM_STATES) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    def get(self, key: str) -> Any:
        hit = self._states.get(key)
        if hit is None:
            return None
        self._states.move_to_end(key)
        return hit[0]

    def keep(self, key: str, state: Any, partition: int) -> None:
        if self.capacity <= 0:
            return
        self._states[key] = (state, partition)
        self._states.move_to_end(key)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def forget(self, partition: int) -> None:
        for key in [k for k, (_, p) in self._states.items() if p == partition]:
            del self._states[key]

    def __len__(self) -> int:
        return len(self._states)


def encode_terminal(state: TerminalState) -> tuple[bytes, bytes]:
    """``(stored, served)`` JSON of a terminal state: the same bytes for both."""
    encoded = dumps(state.to_dict())
    return encoded, encoded


class ChangedStates:
    """A stage's entity states: the ones changed in the current micro-batch, over its warm
    states, over its table. :meth:`snapshots` encodes the changed ones once (the served
    bytes go to the REST API); :meth:`flush` writes the stored bytes to the table and keeps
    the states warm."""

    def __init__(self, table: StateStore, warm: WarmStates,
                 load: Callable[[dict[str, Any]], Any],
                 encode: Callable[[Any], tuple[bytes, bytes]]) -> None:
        self.table, self.warm, self.load, self.encode = table, warm, load, encode
        self._changed: dict[str, tuple[Any, Any, int]] = {}  # key -> (state, handle, partition)
        self._stored: dict[str, bytes] = {}  # encoded by :meth:`snapshots`

    def get(self, key: str, handle: Any) -> Any:
        """The latest state of ``key``, or None for an entity never seen."""
        hit = self._changed.get(key)
        if hit is not None:
            return hit[0]
        state = self.warm.get(key)
        if state is not None:
            return state
        raw = self.table.get(key, handle)
        return self.load(decode(raw)) if raw else None

    def changed(self, key: str, state: Any, handle: Any, partition: int) -> None:
        """``state`` is now ``key``'s, on behalf of ``handle`` (a message of ``partition``)."""
        self._changed[key] = (state, handle, partition)

    def snapshots(self) -> list[tuple[str, bytes]]:
        """``(key, served JSON)`` of the states changed since the last flush."""
        out = []
        for key, (state, _, _) in self._changed.items():
            self._stored[key], served = self.encode(state)
            out.append((key, served))
        return out

    def flush(self) -> None:
        """Write the changed states to the table (one per entity) and keep them warm."""
        for key, (state, handle, partition) in self._changed.items():
            stored = self._stored.get(key) or self.encode(state)[0]
            self.table.put(key, stored, handle)
            self.warm.keep(key, state, partition)
        self._changed.clear()
        self._stored.clear()


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
    warm: WarmStates = field(default_factory=WarmStates)

    def __post_init__(self) -> None:
        self.states = ChangedStates(self.table, self.warm, CardState.from_dict, encode_card)

    def _state(self, card_id: str, handle: Any) -> CardState | None:
        return cast(CardState | None, self.states.get(card_id, handle))

    def snapshots(self) -> list[tuple[str, bytes]]:
        """``(card_id, JSON)`` of the states changed since the last flush, as the REST API
        reads them (:func:`encode_card`); :meth:`flush` then persists them without encoding
        them again."""
        return self.states.snapshots()

    def flush(self) -> None:
        """Write the states changed since the last flush back to the table (one per card)."""
        self.states.flush()

    def forget(self, partition: int) -> None:
        """Drop the decoded states of a card partition this worker no longer owns."""
        self.warm.forget(partition)

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
        self.states.changed(event.card_id, state, handle, partition)
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
    warm: WarmStates = field(default_factory=WarmStates)

    def __post_init__(self) -> None:
        self.states = ChangedStates(self.table, self.warm, TerminalState.from_dict,
                                    encode_terminal)

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
        return [self._apply(v, h, partition) for v, h in merger.release()] if merger else []

    def _apply(self, value: dict[str, Any], handle: Any,
               partition: int) -> tuple[Released | None, Any]:
        term = str(value["term"])
        state = cast(TerminalState | None, self.states.get(term, handle))
        if value["k"] == LABEL:
            label = LabelEvent(str(value["id"]), term, int(value["e"]), int(value["t"]),
                               bool(value["f"]))
            self.states.changed(term, terminal_label(state, label), handle, partition)
            return None, handle
        record = value["rec"]
        state, feats = terminal_update(state, str(value["id"]), int(value["t"]),
                                       float(record["amount"]))
        self.states.changed(term, state, handle, partition)
        late = feats is None
        full = tuple(value["cf"]) + (terminal_peek(state) if feats is None else feats)
        return Released(str(value["id"]), str(record["card_id"]), term, int(value["t"]),
                        full, record, late), handle

    def snapshots(self) -> list[tuple[str, bytes]]:
        """``(terminal key, JSON)`` of the states changed since the last flush (the same
        bytes go to the REST API's snapshot and, on :meth:`flush`, to the table)."""
        return self.states.snapshots()

    def flush(self) -> None:
        """As :meth:`CardStage.flush`, for terminal states."""
        self.states.flush()

    def revoke(self, partition: int) -> list[Any]:
        self.warm.forget(partition)
        merger = self.mergers.pop(partition, None)
        return [handle for _, handle in merger.drain()] if merger else []
