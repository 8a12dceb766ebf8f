"""Replay a history into topic ``transactions``: event-time order, keyed by ``card_id``.

Pacing: with ``speed=None`` rows go out as fast as the producer takes them; with a speed
factor, row ``i`` is not sent before ``(event_time_i - event_time_0) / speed`` seconds after
the start (``speed=60``: an hour of traffic per minute); ``max_rate`` caps messages per
second on top of either. Time comes from an injected :class:`Clock`, so tests pace with a
fake one. Only the :class:`~streams.schema.Transaction` fields are sent: the live stream
carries no labels. The Kafka message timestamp is left to the producer (now), so broker
retention does not delete old event times on arrival.

Resuming: ``start_row`` skips rows already published and ``on_checkpoint(rows_done)`` is
called about once per ``progress_interval`` and at the end (also on Ctrl-C, after a flush)
with the count of leading rows *acknowledged* by the broker, so a checkpoint never covers
a row that might be lost (see :mod:`replay.checkpoint`).

Delivery failures are never silent: each is counted, messages still queued when the final
flush times out count as failed, and :class:`PublishError` (carrying the result) is raised
at the end if any failed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from infra.errors import ConfigurationError, InvalidInput, ServiceError
from infra.settings import Settings
from replay.history import iter_transactions, read_history
from streams.clients import make_producer, produce_when_room


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock (the default outside tests)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` used here."""

    def produce(self, topic: str, value: str | bytes | None = None,
                key: str | bytes | None = None, *,
                on_delivery: Callable[[Any, Any], None] | None = None) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...


@dataclass(frozen=True)
class PublishProgress:
    produced: int  # handed to the producer
    sent: int  # acknowledged by the broker
    failed: int
    elapsed: float  # seconds since the start
    event_time: str | None  # event time of the last row produced (ISO-8601 UTC)
    done: bool = False
    total: int | None = None  # rows this run will produce

    @property
    def rate(self) -> float:
        return self.produced / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class PublishResult:
    sent: int
    failed: int
    seconds: float
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class PublishError(ServiceError):
    """Some messages were not delivered; ``result`` says how many of each."""

    def __init__(self, result: PublishResult) -> None:
        super().__init__(f"{result.failed} message(s) not delivered "
                         f"({result.sent} delivered); first error: {result.first_error}")
        self.result = result


def stderr_progress(p: PublishProgress) -> None:
    """Default progress reporter: one line on stderr per report, and a summary at the end."""
    if p.done:
        print(f"published {p.sent} in {p.elapsed:.1f}s ({p.sent / max(p.elapsed, 1e-9):,.0f}/s)"
              f", failed {p.failed}", file=sys.stderr)
    else:
        print(f"sent {p.produced} ({p.rate:,.0f}/s), acked {p.sent}, failed {p.failed}, "
              f"event time {p.event_time}", file=sys.stderr)


class _Deliveries:
    def __init__(self, rows: int = 0) -> None:
        self.ok = 0
        self.failed = 0
        self.first_error: str | None = None
        self.acked = bytearray(rows)  # 1 where row i (of this run) was acknowledged
        self.watermark = 0  # rows [0, watermark) all acknowledged
        self.produced = 0  # handed to the producer
        self.last_event: str | None = None  # event time of the last row produced

    def row(self, i: int, err: Any, msg: Any) -> None:
        if err is None:
            self.acked[i] = 1
        self(err, msg)

    def advance(self) -> int:
        """Leading acknowledged rows (a failed row stops it for good)."""
        acked, w = self.acked, self.watermark
        while w < len(acked) and acked[w]:
            w += 1
        self.watermark = w
        return w

    def __call__(self, err: Any, msg: Any) -> None:
        if err is None:
            self.ok += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = str(err)


def publish_history(
    source: str | Path | pd.DataFrame,
    settings: Settings,
    *,
    speed: float | None = None,
    max_rate: float | None = None,
    limit: int | None = None,
    progress: Callable[[PublishProgress], None] | None = stderr_progress,
    producer: ProducerLike | None = None,
    clock: Clock | None = None,
    topic: str | None = None,
    progress_interval: float = 1.0,
    flush_timeout: float = 60.0,
    start_row: int = 0,
    on_checkpoint: Callable[[int], None] | None = None,
) -> PublishResult:
    """Publish the first ``limit`` rows (all if None) of a history file or frame.

    The producer is built with :func:`~streams.clients.make_producer` unless injected;
    ``topic`` defaults to ``settings.topic_transactions``. ``progress`` (None: silent) is
    called about every ``progress_interval`` seconds and once at the end with ``done=True``.
    """
    if (speed is not None and speed <= 0) or (max_rate is not None and max_rate <= 0):
        raise ConfigurationError("speed and max_rate must be positive (or None)")
    df = source if isinstance(source, pd.DataFrame) else read_history(source,
                                                                      require_labels=False)
    if not df["event_time"].is_monotonic_increasing:
        df = df.sort_values("event_time", kind="stable", ignore_index=True)
    if limit is not None:
        df = df.iloc[:limit]
    if start_row:
        df = df.iloc[start_row:]
    kafka: ProducerLike = make_producer(settings) if producer is None else producer
    topic = topic or settings.topic_transactions
    clock = clock or SystemClock()
    deliveries = _Deliveries(len(df))
    times = df["event_time"]
    if getattr(times.dtype, "tz", None) is None:
        raise InvalidInput("event_time has no time zone; store UTC timestamps")
    event_s = times.astype("datetime64[ns, UTC]").astype("int64").to_numpy() / 1e9

    def report(done: bool = False) -> None:
        if progress is not None:
            progress(PublishProgress(deliveries.produced, deliveries.ok, deliveries.failed,
                                     clock.monotonic() - start, deliveries.last_event, done,
                                     len(df)))
        if on_checkpoint is not None:
            on_checkpoint(start_row + deliveries.advance())

    start = clock.monotonic()
    try:
        _produce_all(df, kafka, topic, clock, deliveries, event_s,
                                            speed, max_rate, start, progress_interval, report)
    except KeyboardInterrupt:
        kafka.flush(min(flush_timeout, 10.0))
        report(done=True)
        raise
    stuck = kafka.flush(flush_timeout)
    if stuck:
        deliveries.failed += stuck
        deliveries.first_error = deliveries.first_error or (
            f"{stuck} message(s) still queued after a {flush_timeout}s flush")
    report(done=True)
    result = PublishResult(deliveries.ok, deliveries.failed, clock.monotonic() - start,
                           deliveries.first_error)
    if result.failed:
        raise PublishError(result)
    return result


def _produce_all(df: pd.DataFrame, kafka: ProducerLike, topic: str, clock: Clock,
                 deliveries: _Deliveries, event_s: Any, speed: float | None,
                 max_rate: float | None, start: float, progress_interval: float,
                 report: Callable[..., None]) -> None:
    """The pacing and produce loop (counts go to ``deliveries``)."""
    next_report = start + progress_interval
    for i, record in enumerate(iter_transactions(df)):
        due = 0.0 if speed is None else (event_s[i] - event_s[0]) / speed
        due = due if max_rate is None else max(due, i / max_rate)
        while True:
            now = clock.monotonic()
            if now >= next_report:
                report()
                next_report = now + progress_interval
            wait = start + due - now
            if wait <= 0:
                break
            kafka.poll(0)
            clock.sleep(min(wait, progress_interval))
        value = json.dumps(record, separators=(",", ":")).encode()
        produce_when_room(kafka, topic, value, record["card_id"].encode(),
                          on_delivery=partial(deliveries.row, i))
        deliveries.produced += 1
        deliveries.last_event = record["event_time"]
        if deliveries.produced % 1000 == 0:
            kafka.poll(0)
