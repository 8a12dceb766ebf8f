"""confluent-kafka client factories: every Kafka client in the project is built here.

Factories take the process's :class:`~infra.settings.Settings` plus per-use overrides, so
bootstrap servers and client defaults live in one place. Nothing connects at import time.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

from infra.settings import Settings


def _base(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap_servers}


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    """An idempotent producer (no duplicates from its own retries), batching for throughput."""
    config: dict[str, Any] = {
        **_base(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        # Java clients' partitioner: a card lands on the same partition whoever
        # publishes it, so per-card state and its labels meet in one worker.
        "partitioner": "murmur2_random",
        "message.max.bytes": max(1_000_000, settings.max_message_bytes * 4),
    }
    config.update({k.replace("_", "."): v for k, v in overrides.items()})
    return Producer(config)


def produce_when_room(producer: Any, topic: str, value: bytes | None,
                      key: bytes | None, **kwargs: Any) -> None:
    """``producer.produce`` (a confluent-kafka ``Producer`` or a stand-in), serving
    delivery callbacks while the local queue is full (the broker slow or away); the
    caller's ``flush`` timeout bounds the wait for delivery."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, **kwargs)
            return
        except BufferError:  # local queue full: serve delivery callbacks to make room
            producer.poll(0.1)


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer with manual commits: offsets are committed only after work is done."""
    config: dict[str, Any] = {
        **_base(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    config.update({k.replace("_", "."): v for k, v in overrides.items()})
    return Consumer(config)


def make_admin(settings: Settings) -> AdminClient:
    return AdminClient(_base(settings))


def is_record(message: Message, log: logging.Logger) -> bool:
    """True for a record; False for an end-of-partition event or a consumer error (logged)."""
    err = message.error()
    if err is None:
        return True
    if err.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error: %s", err)
    return False
