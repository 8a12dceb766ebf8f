"""Which consumed records a micro-batch may process, and in which order (pure).

Terminal features are exact only when each terminal sees its items in event-time order, but
one worker reads many partitions, each at its own pace. So consumed records wait in
:class:`Buffers` until every input partition the worker owns (``transactions`` and
``labels`` alike) has been read past their time: the release watermark is the smallest
*frontier* (the latest time read) over the owned partitions, where a partition read to its
end (Kafka's end-of-partition event) does not hold anything back; nor, as a last resort
against a partition that never reports, one silent for ``idle_ms`` (30 s). This is the
stage's grace: an item that still reaches a terminal behind a later one (another worker's
partitions, data published out of order, a partition that was idle) is *late* and counted
(:mod:`features.stream.terminals`).

Per partition, records are released as a prefix in offset order (a record waits behind an
earlier held one), so the offset committed for a partition — the one after its last
released record — never passes a record that was not processed. Rejected records carry no
time and go with the prefix they are in.

:func:`card_order` interleaves a partition's released transactions and labels the way
:meth:`features.core.FeatureCore.run` does: a label is applied to its card once the card
partition's transactions passed its time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Union

from features.stream.items import LabelItem, Rejected, TxnItem

Item = Union[TxnItem, LabelItem, Rejected]  # noqa: UP007 - a runtime alias
TP = tuple[str, int]
INF = float("inf")


def releasable(item: Item, watermark: float) -> bool:
    """Transactions at the watermark go; a label waits until a later time was read (in
    the core, a label is resolved by the first transaction *after* its time)."""
    if isinstance(item, TxnItem):
        return item.time_ms <= watermark
    if isinstance(item, LabelItem):
        return item.time_ms < watermark
    return True


@dataclass
class Buffers:
    """Consumed, unprocessed records of the owned partitions, released by event time."""

    idle_ms: int = 30_000
    items: dict[TP, deque[Item]] = field(default_factory=dict)
    frontier: dict[TP, float] = field(default_factory=dict)
    at_end: dict[TP, bool] = field(default_factory=dict)
    last_seen: dict[TP, int] = field(default_factory=dict)  # wall ms of the last record

    def assign(self, tps: Iterable[TP], now_ms: int) -> None:
        for tp in tps:
            self.items.setdefault(tp, deque())
            self.frontier.setdefault(tp, -INF)
            self.at_end.setdefault(tp, False)
            self.last_seen.setdefault(tp, now_ms)

    def revoke(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            for table in (self.items, self.frontier, self.at_end, self.last_seen):
                table.pop(tp, None)

    def clear(self, now_ms: int) -> None:
        """Forget every buffered record (after a rewind to the committed offsets)."""
        owned = list(self.items)
        self.revoke(owned)
        self.assign(owned, now_ms)

    def add(self, tp: TP, item: Item, now_ms: int) -> None:
        if tp not in self.items:
            self.assign([tp], now_ms)
        self.items[tp].append(item)
        self.at_end[tp] = False
        self.last_seen[tp] = now_ms
        if not isinstance(item, Rejected) and item.time_ms > self.frontier[tp]:
            self.frontier[tp] = item.time_ms

    def end(self, tp: TP) -> None:
        """``tp`` was read to its end: it holds nothing back until it has data again."""
        if tp in self.at_end:
            self.at_end[tp] = True

    def watermark(self, now_ms: int) -> float:
        """The release watermark: the smallest frontier of a partition that may still
        bring earlier data (one at its end, or idle for ``idle_ms``, may not)."""
        marks = [
            self.frontier[tp] for tp in self.items
            if not self.at_end[tp] and now_ms - self.last_seen[tp] < self.idle_ms
        ]
        return min(marks, default=INF)

    def buffered(self, tp: TP) -> int:
        return len(self.items.get(tp, ()))

    def release(self, now_ms: int, limit: int | None = None) -> dict[TP, list[Item]]:
        """Pop releasable prefixes, at most ``limit`` records, earliest time first across
        partitions (so a capped batch still leaves the terminals in order); partitions
        with nothing are left out. The rest stays for the next batch."""
        mark = self.watermark(now_ms)
        out: dict[TP, list[Item]] = {}
        left = INF if limit is None else limit
        while left > 0:
            best: tuple[float, TP] | None = None
            for tp, queue in self.items.items():
                if queue and releasable(queue[0], mark):
                    head = queue[0]
                    t = -INF if isinstance(head, Rejected) else head.time_ms
                    if best is None or t < best[0]:
                        best = (t, tp)
            if best is None:
                break
            out.setdefault(best[1], []).append(self.items[best[1]].popleft())
            left -= 1
        return out


def card_order(txns: list[TxnItem], labels: list[LabelItem]) -> list[TxnItem | LabelItem]:
    """One card partition's released items in the order its card states apply them.

    Transactions keep their offset order; each label goes before the first transaction
    later than its time (ties: after), labels among themselves by ``(time, transaction)``.

    >>> from features.card import Event
    >>> from features.core import Label
    >>> def t(i, ms): return TxnItem(Event(i, ms, "c", "m", 1.0, "pos", "FR", None), {}, "",
    ...                              ("tx", 0, ms), 0)
    >>> def lb(i, ms): return LabelItem(Label(i, "c", ms, True), ("lb", 0, ms))
    >>> [type(x).__name__[0] + str(x.time_ms) for x in card_order(
    ...     [t("a", 10), t("b", 20), t("c", 30)], [lb("a", 20), lb("a", 15), lb("b", 40)])]
    ['T10', 'L15', 'T20', 'L20', 'T30', 'L40']
    """
    pending = sorted(labels, key=lambda lb: (lb.label.label_ms, lb.label.transaction_id))
    out: list[TxnItem | LabelItem] = []
    i = 0
    for txn in txns:
        while i < len(pending) and pending[i].label.label_ms < txn.event.event_ms:
            out.append(pending[i])
            i += 1
        out.append(txn)
    out.extend(pending[i:])
    return out
