"""TransactionProducer with an injected fake producer: validation first, nothing dropped."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError

import streams.producer as producer_module
from infra.errors import InvalidInput, ServiceError
from infra.settings import Settings
from streams.delivery import DeliveryFailed
from streams.producer import TransactionProducer
from streams.schema import Transaction, validate_transaction

VALID: dict[str, Any] = {
    "transaction_id": "tx-1",
    "event_time": 1710058530000,
    "card_id": "card-7",
    "merchant_id": "m-1",
    "amount": 12.5,
    "country": "FR",
    "mcc": 5411,
}


class FakeProducer:
    """Queues records and serves their delivery reports on poll/flush, like librdkafka."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None]] = []
        self.pending: list[tuple[Callable[[Any, Any], None] | None, bytes | None]] = []
        self.fail_keys: set[bytes] = set()
        self.queue_full = 0  # how many produce() calls raise BufferError first
        self.stuck = 0  # flush() leaves this many undelivered
        self.polls = 0

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        if self.queue_full:
            self.queue_full -= 1
            raise BufferError("Local: Queue full")
        self.records.append((topic, key, value))
        self.pending.append((on_delivery, key))

    def poll(self, timeout: float = -1) -> int:
        self.polls += 1
        if timeout == 0:  # acks take a round trip: nothing is ready without waiting
            return 0
        served, self.pending = self.pending, []
        for callback, key in served:
            err = KafkaError(KafkaError._MSG_TIMED_OUT) if key in self.fail_keys else None
            if callback is not None:
                callback(err, None)
        return len(served)

    def flush(self, timeout: float = -1) -> int:
        self.poll(timeout)
        return self.stuck


@pytest.fixture
def fake() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def producer(fake: FakeProducer) -> TransactionProducer:
    settings = Settings(topic_transactions="tx-in", max_message_bytes=1024)
    return TransactionProducer(settings, producer=fake)


def sent(fake: FakeProducer) -> list[tuple[str, bytes | None, dict[str, Any]]]:
    return [(t, k, json.loads(v or b"null")) for t, k, v in fake.records]


def test_valid_dict_is_sent_keyed_by_card_id_as_normalized_json(
    producer: TransactionProducer, fake: FakeProducer
) -> None:
    tx = producer.send({**VALID, "loyalty_tier": "gold"})
    producer.flush()
    [(topic, key, value)] = sent(fake)
    assert (topic, key) == ("tx-in", b"card-7")
    assert value["event_time"] == "2024-03-10T08:15:30Z" and value["mcc"] == "5411"
    assert value["loyalty_tier"] == "gold"  # upstream's extra fields survive
    assert validate_transaction(value) == tx
    assert b", " not in fake.records[0][2]  # type: ignore[operator]
    assert producer.delivered == 1


def test_transaction_objects_are_sent_and_revalidated(
    producer: TransactionProducer, fake: FakeProducer
) -> None:
    producer.send(validate_transaction(VALID))
    bogus = Transaction.model_construct(**{**VALID, "amount": -3.0})
    with pytest.raises(InvalidInput, match="amount"):
        producer.send(bogus)
    assert len(fake.records) == 1


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({**VALID, "amount": -1}, "amount: must be greater than or equal to 0"),
        ({**VALID, "amount": "12.50"}, "amount: must be a JSON number"),
        ({k: v for k, v in VALID.items() if k != "card_id"}, "card_id: Field required"),
        ({**VALID, "event_time": "2024-03-10T08:15:30"}, "event_time: .*timezone"),
        ({**VALID, "note": object()}, "extra fields are not JSON"),
        ({**VALID, "note": "x" * 2000}, "payload too large: .* > 1024"),
        (["not", "a", "dict"], "expected a Transaction or a dict, got list"),
    ],
)
def test_invalid_input_raises_before_anything_is_sent(
    producer: TransactionProducer, fake: FakeProducer, bad: Any, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words):
        producer.send(bad)
    assert fake.records == []


def test_failed_delivery_raises_on_flush_naming_the_transaction(
    producer: TransactionProducer, fake: FakeProducer
) -> None:
    fake.fail_keys.add(b"card-bad")
    producer.send(VALID)
    producer.send({**VALID, "transaction_id": "tx-lost", "card_id": "card-bad"})
    with pytest.raises(DeliveryFailed, match="1 record.*tx-in tx-lost: _MSG_TIMED_OUT") as info:
        producer.flush()
    [failure] = info.value.failures
    assert (failure.key, failure.label) == (b"card-bad", "tx-lost")
    assert producer.delivered == 1
    producer.flush()  # reported once; the producer is usable again


def test_records_still_queued_after_the_flush_timeout_are_reported(
    producer: TransactionProducer, fake: FakeProducer
) -> None:
    producer.send(VALID)
    fake.stuck = 1
    with pytest.raises(DeliveryFailed, match="1 record.*unconfirmed") as info:
        producer.flush(timeout=0.01)
    assert info.value.undelivered == 1


def test_close_flushes_raises_and_is_final(
    producer: TransactionProducer, fake: FakeProducer
) -> None:
    fake.fail_keys.add(b"card-7")
    producer.send(VALID)
    with pytest.raises(DeliveryFailed):
        producer.close()
    producer.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        producer.send(VALID)


def test_context_manager_flushes_on_exit(fake: FakeProducer) -> None:
    with TransactionProducer(Settings(), producer=fake) as producer:
        producer.send(VALID)
        assert producer.delivered == 0
    assert producer.delivered == 1
    fake.fail_keys.add(b"card-7")
    with pytest.raises(DeliveryFailed), TransactionProducer(Settings(), producer=fake) as p:
        p.send(VALID)


def test_context_manager_keeps_the_body_error(fake: FakeProducer) -> None:
    fake.fail_keys.add(b"card-7")
    with pytest.raises(ZeroDivisionError), TransactionProducer(Settings(), producer=fake) as p:
        p.send(VALID)
        _ = 1 / 0


def test_full_queue_is_retried_while_serving_reports(
    producer: TransactionProducer, fake: FakeProducer
) -> None:
    fake.queue_full = 3
    producer.send(VALID)
    assert len(fake.records) == 1 and fake.polls >= 3


def test_full_queue_that_never_drains_is_a_service_error(fake: FakeProducer) -> None:
    fake.queue_full = 10**9
    producer = TransactionProducer(Settings(), producer=fake, queue_full_timeout=0.2)
    with pytest.raises(ServiceError, match="queue still full"):
        producer.send(VALID)


def test_send_raw_skips_validation_but_not_delivery_checks(
    producer: TransactionProducer, fake: FakeProducer
) -> None:
    producer.send_raw("card-x", b"{not json")
    producer.send_raw(None, None, topic="elsewhere")
    fake.fail_keys.add(b"card-y")
    producer.send_raw(b"card-y", b"\xff")
    assert fake.records[:2] == [("tx-in", b"card-x", b"{not json"), ("elsewhere", None, None)]
    with pytest.raises(DeliveryFailed, match="card-y"):
        producer.flush()


def test_kafka_client_is_created_lazily_from_settings(
    monkeypatch: pytest.MonkeyPatch, fake: FakeProducer
) -> None:
    made: list[Settings] = []

    def make(settings: Settings) -> FakeProducer:
        made.append(settings)
        return fake

    monkeypatch.setattr(producer_module, "make_producer", make)
    settings = Settings(topic_transactions="lazy")
    producer = TransactionProducer(settings)
    producer.flush()
    assert made == []  # nothing connects before the first send
    producer.send(VALID)
    producer.close()
    assert made == [settings] and fake.records[0][0] == "lazy"
