"""Tumbling windows over a stream, by record count or by event time, with explicit state.

A windower is fed one record at a time through ``add(record) -> closed windows`` and never
reads a clock: event time comes from the record (``time_of``). ``flush()`` closes whatever
is open (end of a replay, shutdown). ``open_items()`` lists the records of windows still
open, so an adapter can commit offsets only up to the oldest of them.

- :class:`CountWindower`: every ``size`` records make a window; bounds are the first and
  last event times seen (``end_ms`` exclusive, i.e. last + 1).
- :class:`EventTimeWindower`: windows ``[origin + k * size, origin + (k + 1) * size)``; a
  window closes when the watermark passes its end. The watermark is the largest event time
  seen minus ``lateness_ms``; with ``partition_of`` it is the *smallest* of the per-partition
  largest event times (minus ``lateness_ms``), as Kafka Streams and Flink do, so a partition
  read ahead of another does not close windows the other still feeds. Partitions announced
  by :meth:`~EventTimeWindower.expect` hold the watermark until they deliver a record; a
  partition marked :meth:`~EventTimeWindower.idle` (read to its end) stops holding it until
  its next record. :meth:`~EventTimeWindower.advance` moves the watermark from outside (a
  replay that knows event time has reached midnight, an upstream heartbeat) when no later
  record is coming to push it. A record whose window has closed (or would close at once)
  is *late*: it is dropped and counted in ``late``, never reopens a window. Empty windows
  are not emitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Window(Generic[T]):
    """A closed window: ``[start_ms, end_ms)`` in event time and its records, in arrival order."""

    start_ms: int
    end_ms: int
    items: list[T] = field(repr=False)

    def __len__(self) -> int:
        return len(self.items)


class CountWindower(Generic[T]):
    """Windows of exactly ``size`` records (the last one, from :meth:`flush`, may be shorter)."""

    def __init__(self, size: int, time_of: Callable[[T], int]) -> None:
        if size < 1:
            raise ValueError("window size must be >= 1")
        self.size = size
        self.time_of = time_of
        self.late = 0  # never: a count window takes every record
        self.items: list[T] = []
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def add(self, item: T) -> list[Window[T]]:
        t = self.time_of(item)
        self.first_ms = t if self.first_ms is None else min(self.first_ms, t)
        self.last_ms = t if self.last_ms is None else max(self.last_ms, t)
        self.items.append(item)
        return self.flush() if len(self.items) >= self.size else []

    def flush(self) -> list[Window[T]]:
        if not self.items or self.first_ms is None or self.last_ms is None:
            return []
        window = Window(self.first_ms, self.last_ms + 1, self.items)
        self.items, self.first_ms, self.last_ms = [], None, None
        return [window]

    def open_items(self) -> list[T]:
        return list(self.items)


class EventTimeWindower(Generic[T]):
    """Tumbling event-time windows of ``size_ms`` aligned to ``origin_ms`` (epoch = UTC days)."""

    def __init__(
        self,
        size_ms: int,
        time_of: Callable[[T], int],
        lateness_ms: int = 0,
        origin_ms: int = 0,
        partition_of: Callable[[T], int] | None = None,
    ) -> None:
        if size_ms < 1 or lateness_ms < 0:
            raise ValueError("need size_ms >= 1 and lateness_ms >= 0")
        self.size_ms = size_ms
        self.time_of = time_of
        self.lateness_ms = lateness_ms
        self.origin_ms = origin_ms
        self.partition_of = partition_of
        self.open: dict[int, list[T]] = {}
        self.max_seen_ms: dict[int, int | None] = {}  # per partition (key 0 if unpartitioned)
        self.idle_partitions: set[int] = set()
        self.advanced_ms: int | None = None  # watermark set by advance()
        self.late = 0

    @property
    def watermark_ms(self) -> int | None:
        return max((w for w in (self._seen_watermark(), self.advanced_ms) if w is not None),
                   default=None)

    def _seen_watermark(self) -> int | None:
        active = [v for p, v in self.max_seen_ms.items() if p not in self.idle_partitions]
        if any(v is None for v in active):
            return None  # an expected partition has not delivered yet
        seen = [v for v in (active or self.max_seen_ms.values()) if v is not None]
        if not seen:
            return None
        low = min(seen) if active else max(seen)  # all idle: everything has been read
        return low - self.lateness_ms

    def advance(self, watermark_ms: int) -> list[Window[T]]:
        """Event time has reached ``watermark_ms``: close the windows ending by then.

        The caller vouches that every record before ``watermark_ms`` has been added (no
        lateness is subtracted); a record for a window closed here is late.
        """
        if self.advanced_ms is None or watermark_ms > self.advanced_ms:
            self.advanced_ms = watermark_ms
        watermark = self.watermark_ms
        return [] if watermark is None else self._close_until(watermark)

    def expect(self, partitions: list[int]) -> None:
        """Partitions that must deliver before the watermark may advance (new assignment)."""
        for p in partitions:
            self.max_seen_ms.setdefault(p, None)

    def forget(self, partitions: list[int]) -> None:
        """Partitions no longer read (revoked): they stop holding the watermark."""
        for p in partitions:
            self.max_seen_ms.pop(p, None)
            self.idle_partitions.discard(p)

    def idle(self, partition: int) -> list[Window[T]]:
        """``partition`` was read to its end: ignore it until its next record."""
        self.idle_partitions.add(partition)
        watermark = self.watermark_ms
        return [] if watermark is None else self._close_until(watermark)

    def window_start(self, t: int) -> int:
        return self.origin_ms + ((t - self.origin_ms) // self.size_ms) * self.size_ms

    def add(self, item: T) -> list[Window[T]]:
        t = self.time_of(item)
        start = self.window_start(t)
        watermark = self.watermark_ms
        if watermark is not None and start + self.size_ms <= watermark:
            self.late += 1
            return []
        self.open.setdefault(start, []).append(item)
        part = 0 if self.partition_of is None else self.partition_of(item)
        previous = self.max_seen_ms.get(part)
        self.max_seen_ms[part] = t if previous is None else max(previous, t)
        self.idle_partitions.discard(part)
        watermark = self.watermark_ms
        return [] if watermark is None else self._close_until(watermark)

    def _close_until(self, watermark: int) -> list[Window[T]]:
        done = sorted(s for s in self.open if s + self.size_ms <= watermark)
        return [Window(s, s + self.size_ms, self.open.pop(s)) for s in done]

    def flush(self) -> list[Window[T]]:
        """Close every open window (their ends may lie beyond the watermark)."""
        done = sorted(self.open)
        return [Window(s, s + self.size_ms, self.open.pop(s)) for s in done]

    def open_items(self) -> list[T]:
        return [item for items in self.open.values() for item in items]
