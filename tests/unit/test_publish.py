"""Replay publish: event-time order, card keys, pacing on a fake clock, loud failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from infra.errors import ConfigurationError, InvalidInput
from infra.settings import Settings
from replay.publish import PublishError, PublishProgress, publish_history, stderr_progress
from replay.simulator import SimulationConfig, simulate, write_history
from streams.schema import Transaction, parse_transaction

SETTINGS = Settings(topic_transactions="tx-test")
Delivery = Callable[[Any, Any], None]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


class FakeProducer:
    """Records messages with the fake time they were produced; delivers on poll/flush."""

    def __init__(
        self, clock: FakeClock, fail_every: int = 0, stuck: int = 0, full_once: bool = False
    ) -> None:
        self.clock, self.fail_every, self.stuck = clock, fail_every, stuck
        self.full_once = full_once
        self.messages: list[tuple[str, bytes, bytes, float]] = []
        self.pending: list[Delivery] = []
        self.delivered = 0

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        *,
        on_delivery: Delivery | None = None,
    ) -> None:
        if self.full_once:
            self.full_once = False
            raise BufferError("queue full")
        assert isinstance(key, bytes) and isinstance(value, bytes) and on_delivery is not None
        self.messages.append((topic, key, value, self.clock.now))
        self.pending.append(on_delivery)

    def poll(self, timeout: float = 0) -> int:
        served, self.pending = self.pending, []
        for callback in served:
            self.delivered += 1
            failing = self.fail_every and self.delivered % self.fail_every == 0
            callback("broker said no" if failing else None, None)
        return len(served)

    def flush(self, timeout: float = 0) -> int:
        if self.stuck:
            self.pending = self.pending[: -self.stuck]
        self.poll()
        return self.stuck


def frame(offsets_s: list[float], cards: list[str] | None = None) -> pd.DataFrame:
    n = len(offsets_s)
    start = pd.Timestamp("2025-01-06", tz="UTC")
    return pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "event_time": [start + pd.Timedelta(seconds=s) for s in offsets_s],
            "card_id": cards or [f"c{i % 3}" for i in range(n)],
            "merchant_id": "m1",
            "terminal_id": None,
            "amount": 10.0,
            "currency": "EUR",
            "channel": "ecom",
            "country": "FR",
            "mcc": "5999",
            "device_id": "d1",
            "schema_version": 1,
            "is_fraud": False,
        }
    )


def run(df: pd.DataFrame | Path, **kwargs: Any) -> tuple[FakeProducer, FakeClock, Any]:
    clock = FakeClock()
    producer = kwargs.pop("producer", None) or FakeProducer(clock)
    producer.clock = clock
    result = publish_history(
        df,
        SETTINGS,
        producer=producer,
        clock=clock,
        progress=kwargs.pop("progress", None),
        **kwargs,
    )
    return producer, clock, result


def test_event_time_order_card_keys_no_labels() -> None:
    df = frame([5, 0, 3, 1])  # out of order on purpose
    producer, clock, result = run(df)
    assert result.sent == 4 and result.failed == 0
    assert clock.sleeps == []  # speed None: as fast as possible
    topics = {m[0] for m in producer.messages}
    assert topics == {"tx-test"}
    records = [json.loads(m[2]) for m in producer.messages]
    assert [r["transaction_id"] for r in records] == ["t1", "t3", "t2", "t0"]
    assert [m[1].decode() for m in producer.messages] == [r["card_id"] for r in records]
    assert set(records[0]) == set(Transaction.model_fields)  # is_fraud stripped
    for message in producer.messages:
        parse_transaction(message[2])


def test_speed_factor_divides_event_gaps() -> None:
    producer, _, result = run(frame([0, 10, 70, 70]), speed=10)
    sent_at = [m[3] - 100.0 for m in producer.messages]
    assert sent_at == pytest.approx([0.0, 1.0, 7.0, 7.0])
    assert result.seconds == pytest.approx(7.0)


def test_max_rate_caps_throughput() -> None:
    producer, _, _ = run(frame([0, 0, 0, 0, 0]), max_rate=2)
    assert [m[3] - 100.0 for m in producer.messages] == pytest.approx([0, 0.5, 1, 1.5, 2])


def test_progress_reports_and_final_summary() -> None:
    seen: list[PublishProgress] = []
    run(frame([0, 30, 60]), speed=10, progress=seen.append)
    assert seen[-1].done and seen[-1].sent == 3 and seen[-1].produced == 3
    interim = seen[:-1]
    assert len(interim) >= 5 and not any(p.done for p in interim)
    assert [p.produced for p in interim] == sorted(p.produced for p in interim)
    assert interim[-1].event_time == "2025-01-06T00:00:30.000Z"


def test_stderr_progress_prints_summary(capsys: pytest.CaptureFixture[str]) -> None:
    stderr_progress(PublishProgress(10, 10, 0, 2.0, "2025-01-06T00:00:00.000Z"))
    stderr_progress(PublishProgress(10, 10, 0, 2.0, None, done=True))
    err = capsys.readouterr().err
    assert "sent 10 (5/s)" in err and "published 10 in 2.0s" in err


def test_delivery_failures_raise_with_counts() -> None:
    clock = FakeClock()
    with pytest.raises(PublishError, match="broker said no") as info:
        run(frame([0, 1, 2, 3, 4, 5]), producer=FakeProducer(clock, fail_every=3))
    assert (info.value.result.sent, info.value.result.failed) == (4, 2)


def test_undelivered_after_flush_count_as_failed() -> None:
    clock = FakeClock()
    with pytest.raises(PublishError, match="still queued") as info:
        run(frame([0, 1, 2]), producer=FakeProducer(clock, stuck=2))
    assert (info.value.result.sent, info.value.result.failed) == (1, 2)


def test_full_queue_is_retried_not_dropped() -> None:
    clock = FakeClock()
    producer, _, result = run(frame([0, 1]), producer=FakeProducer(clock, full_once=True))
    assert result.sent == 2 and len(producer.messages) == 2


def test_limit_and_path_source(tmp_path: Path) -> None:
    df = simulate(SimulationConfig(n_customers=20, n_terminals=10, n_ecom_merchants=5, days=2))
    path = write_history(df, tmp_path / "history.parquet")
    producer, _, result = run(path, limit=7)
    assert result.sent == 7
    ids = [json.loads(m[2])["transaction_id"] for m in producer.messages]
    assert ids == list(df["transaction_id"][:7])


def test_millisecond_timestamps_pace_like_nanoseconds() -> None:
    df = frame([0, 10])
    df["event_time"] = df["event_time"].astype("datetime64[ms, UTC]")
    producer, _, _ = run(df, speed=5)
    assert [m[3] - 100.0 for m in producer.messages] == pytest.approx([0.0, 2.0])


def test_naive_event_times_are_refused() -> None:
    df = frame([0])
    df["event_time"] = df["event_time"].dt.tz_localize(None)
    with pytest.raises(InvalidInput, match="time zone"):
        run(df)


@pytest.mark.parametrize("kwargs", [{"speed": 0}, {"max_rate": -1.0}])
def test_bad_pacing_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        run(frame([0]), **kwargs)
