"""Watermark merge of ordered sources into one deterministic order (pure).

The terminal stage receives, on each partition of the repartition topic, items from several
*sources* (the transaction and label streams of each card partition), each source in
non-decreasing time order, interleaved arbitrarily. To apply them in the global order
``(time, kind, id)`` — the order the backfill uses — it buffers items and releases one only
when no source can still send an item before it: each source announces a *watermark* ``w``
("every item I send from now on has time >= w") or that it is *idle* (caught up with its
input). An item with time ``t`` is released once ``t < w`` for every non-idle source, and
every expected source has announced itself at least once.

An item arriving with time below what was already released (data later than its watermark,
or a source that was idle) is released at the next call, where it falls: late data is
applied, never dropped.

>>> m = Merger(["a", "b"])
>>> m.add((5, 1, "x"), "x"); m.add((3, 1, "y"), "y")
True
True
>>> m.mark("a", 10, idle=False); m.release()
[]
>>> m.mark("b", 4, idle=False); m.release()
['y']
>>> m.mark("b", 0, idle=True); m.release()
['x']
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

Key = tuple[int, int, str]
INF = float("inf")


class Merger:
    """Buffer of items keyed by :data:`Key`; release in key order behind the watermarks."""

    def __init__(self, sources: Iterable[str]) -> None:
        self.expected = frozenset(sources)
        self.watermarks: dict[str, int] = {}
        self.idle: dict[str, bool] = {}
        self._heap: list[tuple[Key, Any]] = []
        self._keys: set[Key] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, key: Key, item: Any) -> bool:
        """Buffer ``item``; False (and not buffered) when an item with ``key`` is waiting."""
        if key in self._keys:
            return False
        self._keys.add(key)
        heapq.heappush(self._heap, (key, item))
        return True

    def mark(self, source: str, watermark: int, idle: bool) -> None:
        """A source's announcement; watermarks never go back (a restarted source may)."""
        self.watermarks[source] = max(watermark, self.watermarks.get(source, watermark))
        self.idle[source] = idle

    def frontier(self) -> float:
        """Items with a time strictly below this can be released."""
        if not self.expected <= self.watermarks.keys():
            return -INF
        return min(
            (INF if self.idle[s] else float(self.watermarks[s]) for s in self.expected),
            default=INF,
        )

    def release(self) -> list[Any]:
        """The releasable items, in key order."""
        limit = self.frontier()
        out = []
        heap = self._heap
        while heap and heap[0][0][0] < limit:
            key, item = heapq.heappop(heap)
            self._keys.discard(key)
            out.append(item)
        return out

    def holding(self) -> tuple[int, list[str]] | None:
        """The time of the oldest buffered item and what it waits for (sources not heard
        from yet, or not idle with a watermark at or below it); None when empty.

        >>> m = Merger(["a", "b"]); m.add((5, 1, "x"), "x"); m.mark("a", 9, idle=False)
        True
        >>> m.holding()
        (5, ['b?'])
        >>> m.mark("b", 5, idle=False); m.holding()
        (5, ['b@5'])
        """
        if not self._heap:
            return None
        head = self._heap[0][0][0]
        missing = [f"{s}?" for s in sorted(self.expected - self.watermarks.keys())]
        behind = [f"{s}@{w}" for s, w in sorted(self.watermarks.items())
                  if s in self.expected and not self.idle[s] and w <= head]
        return head, missing + behind

    def drain(self) -> list[Any]:
        """Everything buffered, in key order (when partitions are revoked)."""
        out = [item for _, item in sorted(self._heap, key=lambda pair: pair[0])]
        self._heap.clear()
        self._keys.clear()
        return out
