"""Incremental window aggregates for the feature core (pure, JSON-serialisable).

Two shapes, both amortised O(1) per event and bounded in memory:

- :class:`Sliding`: exact count/sum (and optional distinct-value counters) over the events
  with ``event_ms > now - span``. Each event is appended once and expired once.
- :class:`DayBuckets`: per-UTC-day ``[day, a, b, c]`` buckets with running totals over the
  last ``spans`` days (``span`` days = the current UTC day and the ``span - 1`` before).
  Old buckets may still be amended (a label for an earlier transaction) and the running
  totals follow.

Running sums are updated by adding and subtracting, so their floating-point value depends on
the order of operations only: the same event sequence gives bit-identical results in the
stream worker and in the backfill, which is what online/offline parity needs.

>>> w = Sliding(span=10)
>>> w.push(0, 1.0); w.push(5, 2.0); w.push(12, 4.0)
>>> (w.count, w.total)
(2, 6.0)
"""

from __future__ import annotations

from collections import deque
from typing import Any

DAY_MS = 86_400_000


class Sliding:
    """Count and sum of values with ``t > now - span``; ``keys`` adds distinct counters.

    ``push(t, value, *attrs)`` first expires, then appends; ``attrs[i]`` (a string or None)
    is counted in ``distinct[i]`` (None is not counted).
    """

    __slots__ = ("span", "n_keys", "items", "total", "distinct")

    def __init__(self, span: int, n_keys: int = 0) -> None:
        self.span = span
        self.n_keys = n_keys
        self.items: deque[list[Any]] = deque()
        self.total = 0.0
        self.distinct: list[dict[str, int]] = [{} for _ in range(n_keys)]

    @property
    def count(self) -> int:
        return len(self.items)

    def expire(self, now: int) -> None:
        items = self.items
        if not items:
            self.total = 0.0  # no drift carried across an empty window
            return
        horizon = now - self.span
        if items[0][0] > horizon:
            return  # the common case: nothing left the window
        popleft = items.popleft
        if not self.n_keys:
            total = self.total
            while items and items[0][0] <= horizon:
                total -= popleft()[1]
            self.total = total
        else:
            distinct = self.distinct
            while items and items[0][0] <= horizon:
                old = popleft()
                self.total -= old[1]
                for i in range(len(old) - 2):
                    key = old[i + 2]
                    if key is not None:
                        counter = distinct[i]
                        left = counter[key] - 1
                        if left:
                            counter[key] = left
                        else:
                            del counter[key]
        if not items:
            self.total = 0.0

    def push(self, t: int, value: float, *keys: str | None) -> None:
        items = self.items
        if not items:
            self.total = 0.0
        elif items[0][0] <= t - self.span:
            self.expire(t)
        if keys:
            self.items.append([t, value, *keys])
            distinct = self.distinct
            for i, key in enumerate(keys):
                if key is not None:
                    counter = distinct[i]
                    counter[key] = counter.get(key, 0) + 1
        else:
            self.items.append([t, value])
        self.total += value

    def n_distinct(self, i: int) -> int:
        return len(self.distinct[i])

    def to_list(self) -> list[Any]:
        return [self.span, self.n_keys, list(self.items), self.total]

    @classmethod
    def from_list(cls, data: list[Any]) -> Sliding:
        window = cls(int(data[0]), int(data[1]))
        window.items = deque(list(item) for item in data[2])
        window.total = float(data[3])
        for item in window.items:
            for i, key in enumerate(item[2:]):
                if key is not None:
                    counter = window.distinct[i]
                    counter[key] = counter.get(key, 0) + 1
        return window


class DayBuckets:
    """Per-day buckets of ``width`` floats and running totals over each span in ``spans``.

    ``spans`` must be increasing; buckets older than the longest span are dropped.
    ``totals[j]`` sums the buckets with ``day > current_day - spans[j]``.
    """

    __slots__ = ("spans", "width", "buckets", "totals", "starts", "day")

    def __init__(self, spans: tuple[int, ...], width: int) -> None:
        self.spans = spans
        self.width = width
        self.buckets: deque[list[float]] = deque()  # [day, v0, v1, ...]
        self.totals = [[0.0] * width for _ in spans]
        self.starts = [0] * len(spans)  # index of the first bucket inside each span
        self.day = -1

    def advance(self, day: int) -> None:
        """Move the window end to ``day`` (never backwards) and expire what left it."""
        if day <= self.day:
            return
        self.day = day
        buckets = self.buckets
        for j, span in enumerate(self.spans):
            total, start = self.totals[j], self.starts[j]
            while start < len(buckets) and buckets[start][0] <= day - span:
                for k in range(self.width):
                    total[k] -= buckets[start][k + 1]
                start += 1
            self.starts[j] = start
        drop = self.starts[-1]
        for _ in range(drop):
            buckets.popleft()
        self.starts = [s - drop for s in self.starts]
        for j in range(len(self.spans)):
            if self.starts[j] >= len(buckets):
                self.totals[j] = [0.0] * self.width

    def add(self, day: int, index: int, value: float, create: bool = True) -> bool:
        """Add ``value`` to field ``index`` of ``day``'s bucket; False if outside every span.

        ``create=False`` only amends an existing bucket (returns False when there is none).
        """
        bucket = self._bucket(day, create)
        if bucket is None:
            return False
        bucket[index + 1] += value
        current = self.day
        for span, total in zip(self.spans, self.totals, strict=True):
            if day > current - span:
                total[index] += value
        return True

    def add_all(self, day: int, values: tuple[float, ...]) -> bool:
        """``add(day, k, values[k])`` for every field ``k`` (creating the bucket), at once."""
        bucket = self._bucket(day, True)
        if bucket is None:
            return False
        k = 1
        for value in values:
            bucket[k] += value
            k += 1
        current = self.day
        for span, total in zip(self.spans, self.totals, strict=True):
            if day > current - span:
                k = 0
                for value in values:
                    total[k] += value
                    k += 1
        return True

    def _bucket(self, day: int, create: bool) -> list[float] | None:
        """``day``'s bucket (inserted when missing and ``create``), None when outside."""
        if day <= self.day - self.spans[-1]:
            return None
        buckets = self.buckets
        if buckets and buckets[-1][0] == day:
            return buckets[-1]  # the common case: today's bucket
        pos = len(buckets) - 1
        while pos >= 0 and buckets[pos][0] > day:
            pos -= 1
        if pos < 0 or buckets[pos][0] != day:
            if not create:
                return None
            buckets.insert(pos + 1, [day] + [0.0] * self.width)
            pos += 1
            for j in range(len(self.spans)):
                if self.starts[j] > pos or (
                    self.starts[j] == pos and day <= self.day - self.spans[j]
                ):
                    self.starts[j] += 1
        return buckets[pos]

    def total(self, span_index: int, index: int) -> float:
        return self.totals[span_index][index]

    def to_list(self) -> list[Any]:
        return [list(self.spans), self.width, list(self.buckets), self.totals, self.starts,
                self.day]

    @classmethod
    def from_list(cls, data: list[Any]) -> DayBuckets:
        obj = cls(tuple(int(s) for s in data[0]), int(data[1]))
        obj.buckets = deque(list(b) for b in data[2])
        obj.totals = [list(t) for t in data[3]]
        obj.starts = [int(s) for s in data[4]]
        obj.day = int(data[5])
        return obj
