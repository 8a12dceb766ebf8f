"""Dead-letter records: built purely, decoded back exactly, routed through any producer."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from infra.errors import InvalidInput
from streams.dlq import (
    FORMAT,
    MAX_REASON_CHARS,
    DeadLetter,
    DeadLetterRouter,
    dead_letter_record,
    make_dead_letter,
    parse_dead_letter,
)
from streams.schema import parse_transaction

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def letter(**overrides: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "key": b"card-1",
        "value": b'{"amount": "oops"',
        "error": InvalidInput("malformed JSON: Expecting ',' delimiter"),
        "topic": "transactions",
        "partition": 3,
        "offset": 1234,
        "clock": clock,
        **overrides,
    }
    return make_dead_letter(**fields)


class FakeMessage:
    def __init__(self, key: bytes | None, value: bytes | None, ts: tuple[int, int]) -> None:
        self._key, self._value, self._ts = key, value, ts

    def topic(self) -> str:
        return "transactions"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 77

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return self._ts


class RecordingProducer:
    """Only ``produce`` is needed: the router never polls, flushes or commits."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def produce(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any
    ) -> None:
        self.records.append({"topic": topic, "key": key, "value": value, **kw})

    def poll(self, timeout: float = 0) -> int:
        raise AssertionError("router must not poll")

    def flush(self, timeout: float = 0) -> int:
        raise AssertionError("router must not flush")


def test_record_is_keyed_by_original_key_with_compact_json_value() -> None:
    key, value = dead_letter_record(letter())
    assert key == b"card-1"
    data = json.loads(value)
    assert b" " not in value.split(b'"reason"')[0]  # compact separators
    assert data == {
        "format": FORMAT,
        "reason": "malformed JSON: Expecting ',' delimiter",
        "error_type": "InvalidInput",
        "topic": "transactions",
        "partition": 3,
        "offset": 1234,
        "timestamp_ms": None,
        "key_b64": base64.b64encode(b"card-1").decode(),
        "value_b64": base64.b64encode(b'{"amount": "oops"').decode(),
        "value_size": 17,
        "value_truncated": False,
        "dead_lettered_at": "2024-06-01T12:00:00Z",
        "worker": None,
    }


def test_round_trip_keeps_non_utf8_bytes_exactly() -> None:
    raw = bytes(range(256))
    original = letter(key=b"\xff\x00k", value=raw, worker="scorer-1", timestamp_ms=1717243200000)
    _, value = dead_letter_record(original)
    parsed = parse_dead_letter(value)
    assert parsed == original
    assert (parsed.key, parsed.value) == (b"\xff\x00k", raw)
    assert parsed.source == "transactions[3]@1234"
    assert parsed.worker == "scorer-1" and parsed.timestamp_ms == 1717243200000


def test_tombstone_and_missing_key_are_null() -> None:
    parsed = parse_dead_letter(dead_letter_record(letter(key=None, value=None))[1])
    assert (parsed.key, parsed.value, parsed.value_size) == (None, None, 0)


@pytest.mark.parametrize(
    ("error", "reason", "error_type"),
    [
        ("schema says no", "schema says no", None),
        (InvalidInput("amount: too big"), "amount: too big", "InvalidInput"),
        (KeyError("card_id"), "KeyError: 'card_id'", "KeyError"),
    ],
)
def test_reason_comes_from_the_error(error: Any, reason: str, error_type: str | None) -> None:
    made = letter(error=error)
    assert (made.reason, made.error_type) == (reason, error_type)


def test_reason_from_a_real_validation_failure_names_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_transaction(b'{"transaction_id": "t", "amount": -1}')
    assert "event_time: Field required" in letter(error=info.value).reason


def test_huge_values_and_reasons_are_truncated_and_flagged() -> None:
    made = letter(value=b"x" * 5000, error="r" * 10_000, max_value_bytes=1000)
    assert made.value == b"x" * 1000
    assert made.value_truncated and made.value_size == 5000
    assert len(made.reason) == MAX_REASON_CHARS and made.reason.endswith("...")
    assert not letter(value=b"x" * 1000, max_value_bytes=1000).value_truncated


def test_clock_is_injected_and_must_be_aware() -> None:
    later = datetime(2030, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert letter(clock=lambda: later).dead_lettered_at == later
    with pytest.raises(ValueError, match="timezone"):
        letter(clock=lambda: datetime(2030, 1, 1))  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"not json", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (None, "tombstone"),
        (b"{}", "invalid dead letter: reason: Field required"),
    ],
)
def test_parse_rejects_what_is_not_a_dead_letter(raw: bytes | None, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_dead_letter(raw)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("value_b64", "%%%not-base64", "value_b64: Value error, not base64"),
        ("dead_lettered_at", "2024-06-01T12:00:00", "dead_lettered_at: Input should have timezone"),
        ("offset", "many", "offset: Input should be a valid integer"),
        ("format", "someone-else/v9", "format: Input should be"),
    ],
)
def test_parse_names_the_bad_field(field: str, value: Any, words: str) -> None:
    data = json.loads(dead_letter_record(letter())[1])
    data[field] = value
    with pytest.raises(InvalidInput, match=words):
        parse_dead_letter(json.dumps(data).encode())


def test_router_produces_to_the_dlq_topic_through_the_injected_producer() -> None:
    producer = RecordingProducer()
    reports: list[Any] = []
    router = DeadLetterRouter(
        producer, "transactions.dlq", worker="features-0", clock=clock,
        on_delivery=lambda err, msg: reports.append(err),
    )  # fmt: skip
    message = FakeMessage(b"card-9", b"\x00garbage", ts=(1, 1717243200000))
    routed = router.route(message, InvalidInput("malformed JSON: bad"))
    [record] = producer.records
    assert record["topic"] == "transactions.dlq" and record["key"] == b"card-9"
    assert record["on_delivery"] is not None
    assert parse_dead_letter(record["value"]) == routed
    assert routed.source == "transactions[2]@77"
    assert (routed.worker, routed.timestamp_ms, routed.value) == (
        "features-0", 1717243200000, b"\x00garbage",
    )  # fmt: skip
    assert router.routed == 1


def test_router_without_broker_timestamp_records_none() -> None:
    producer = RecordingProducer()
    router = DeadLetterRouter(producer, "dlq", clock=clock)
    routed = router.route(FakeMessage(None, b"{}", ts=(0, -1)), "no timestamp")
    assert routed.timestamp_ms is None and routed.key is None
    assert producer.records[0]["key"] is None


def test_route_raw_for_callers_without_a_message() -> None:
    producer = RecordingProducer()
    router = DeadLetterRouter(producer, "dlq", clock=clock, max_value_bytes=4)
    routed = router.route_raw(
        key=b"k", value=b"123456", error="bad", topic="t", partition=0, offset=5
    )
    assert routed.value == b"1234" and routed.value_truncated
    assert parse_dead_letter(producer.records[0]["value"]).source == "t[0]@5"
