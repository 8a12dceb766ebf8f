"""streams/ against a real broker: topic creation, the producer helper, dead-letter routing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Message

from infra.errors import ConfigurationError, InvalidInput
from infra.settings import Settings
from streams.clients import make_admin, make_consumer, make_producer
from streams.delivery import DeliveryTracker
from streams.dlq import DeadLetterRouter, parse_dead_letter
from streams.producer import TransactionProducer
from streams.schema import parse_transaction
from streams.topics import catalog, ensure_topics

pytestmark = pytest.mark.integration

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def topics(settings: Settings) -> Iterator[list[str]]:
    """The catalog's topics for this test's settings, created here and deleted afterwards."""
    admin = make_admin(settings)
    specs = catalog(settings)
    names = [s.name for s in specs]
    created = ensure_topics(admin, specs, timeout=60)
    assert sorted(created) == sorted(names)
    yield names
    for future in admin.delete_topics(names, operation_timeout=30).values():
        try:
            future.result(timeout=30)
        except KafkaException:
            pass  # best effort: the broker may already be going down


def transaction(i: int) -> dict[str, Any]:
    return {
        "transaction_id": f"tx-{i:04d}",
        "event_time": (START + timedelta(seconds=i)).isoformat(),
        "card_id": f"card-{i % 7}",
        "merchant_id": f"m-{i % 13}",
        "amount": 10.0 + i,
        "currency": "EUR",
        "channel": "ecom" if i % 2 else "pos",
        "country": "FR",
        "mcc": 5411,
    }


def consume(settings: Settings, topic: str, count: int, timeout: float = 60.0) -> list[Message]:
    consumer: Consumer = make_consumer(settings, group_id=f"test-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                raise KafkaException(msg.error())
            messages.append(msg)
    finally:
        consumer.close()
    assert len(messages) == count, f"got {len(messages)} of {count} from {topic}"
    return messages


def test_ensure_topics_is_idempotent_and_checks_partitions(
    settings: Settings, topics: list[str]
) -> None:
    admin = make_admin(settings)
    assert ensure_topics(admin, catalog(settings)) == []
    metadata = admin.list_topics(timeout=10).topics
    for spec in catalog(settings):
        assert len(metadata[spec.name].partitions) == spec.partitions
    wider = settings.model_copy(update={"topic_partitions": settings.topic_partitions + 1})
    with pytest.raises(ConfigurationError, match="exists with"):
        ensure_topics(admin, catalog(wider))


def test_producer_round_trip_keyed_by_card(settings: Settings, topics: list[str]) -> None:
    with TransactionProducer(settings) as producer:
        with pytest.raises(InvalidInput, match="amount"):
            producer.send({**transaction(0), "amount": -1})
        for i in range(100):
            producer.send(transaction(i))
        producer.flush()
        assert producer.delivered == 100
    messages = consume(settings, settings.topic_transactions, 100)
    partitions: dict[str, set[int]] = {}
    order: dict[str, list[int]] = {}
    ids = []
    for msg in messages:
        tx = parse_transaction(msg.value() or b"", settings.max_message_bytes)
        assert msg.key() == tx.card_id.encode()
        partitions.setdefault(tx.card_id, set()).add(msg.partition() or 0)
        order.setdefault(tx.card_id, []).append(tx.event_ms)
        ids.append(tx.transaction_id)
    assert sorted(ids) == [f"tx-{i:04d}" for i in range(100)]
    assert all(len(p) == 1 for p in partitions.values())  # one card, one partition
    assert all(times == sorted(times) for times in order.values())  # per-card order kept


@pytest.mark.parametrize("transactional", [False, True], ids=["plain", "in-transaction"])
def test_dead_letter_round_trip(settings: Settings, topics: list[str], transactional: bool) -> None:
    bad = [b"{not json", b'{"transaction_id": "x", "amount": "lots"}', b"\xff\xfe"]
    with TransactionProducer(settings) as producer:
        for i, value in enumerate(bad):
            producer.send_raw(f"card-{i}", value)
    consumed = consume(settings, settings.topic_transactions, len(bad))

    tracker = DeliveryTracker()
    overrides = {"transactional.id": f"dlq-test-{uuid.uuid4().hex[:8]}"} if transactional else {}
    dlq_producer = make_producer(settings, **overrides)
    router = DeadLetterRouter(
        dlq_producer,
        settings.topic_dlq,
        worker="test-worker",
        on_delivery=tracker.callback(settings.topic_dlq, None, "dead letter"),
    )
    if transactional:
        dlq_producer.init_transactions(30)
        dlq_producer.begin_transaction()
    expected: dict[str, tuple[bytes | None, bytes | None, str]] = {}
    for msg in consumed:
        with pytest.raises(InvalidInput) as info:
            parse_transaction(msg.value() or b"", settings.max_message_bytes)
        letter = router.route(msg, info.value)
        expected[letter.source] = (msg.key(), msg.value(), info.value.reason)
    if transactional:
        dlq_producer.commit_transaction(30)
    assert dlq_producer.flush(30) == 0
    tracker.raise_if_failed()
    assert tracker.delivered == len(bad)

    for msg in consume(settings, settings.topic_dlq, len(bad)):
        letter = parse_dead_letter(msg.value())
        original_key, original, reason = expected[letter.source]
        assert msg.key() == original_key and letter.key == original_key
        assert letter.value == original and letter.value_size == len(original or b"")
        assert letter.reason == reason and letter.error_type == "InvalidInput"
        assert letter.topic == settings.topic_transactions and letter.worker == "test-worker"
        assert letter.timestamp_ms is not None
