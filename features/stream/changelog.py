"""Restoring card states from the changelog topic (read_committed, to its end).

The end is the partition's high watermark when the restore starts. With
``isolation.level=read_committed`` the reader cannot pass an open transaction — that of a
worker killed mid-batch — until the broker aborts it (``stream_transaction_timeout_ms``
after it began; the local broker sweeps every second), so a takeover waits at most about
that long. A restore that does not finish within its deadline raises
:class:`~infra.errors.ServiceError`; the stage then backs off and tries again.
"""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from infra.errors import ServiceError
from infra.settings import Settings
from streams.clients import make_consumer

log = logging.getLogger("fraudstream.features.stream.changelog")


def restore(settings: Settings, partitions: list[int], deadline_s: float = 30.0
            ) -> dict[int, dict[str, bytes]]:
    """The committed card states (``card -> JSON``) of each of ``partitions``."""
    out: dict[int, dict[str, bytes]] = {p: {} for p in partitions}
    if not partitions:
        return out
    topic, timeout = settings.topic_card_changelog, settings.stream_call_timeout_s
    consumer = make_consumer(settings, f"{settings.consumer_group_stream}-restore-"
                             f"{uuid.uuid4().hex[:8]}", enable_partition_eof=True)
    try:
        ends: dict[int, int] = {}
        for p in partitions:
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout)
            except KafkaException as exc:
                raise ServiceError(f"changelog {topic}[{p}] offsets unavailable: {exc}") from None
            if high > low:
                ends[p] = high
        if not ends:
            return out
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        _read(consumer, out, ends, time.monotonic() + deadline_s)
    finally:
        consumer.close()
    return out


def _read(consumer: Consumer, out: dict[int, dict[str, bytes]], ends: dict[int, int],
          deadline: float) -> None:
    pending = dict(ends)
    while pending:
        if time.monotonic() > deadline:
            raise ServiceError(f"changelog restore incomplete before the deadline: {pending}")
        for msg in consumer.consume(10_000, 0.2):
            p, err = msg.partition() or 0, msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("changelog read: %s", err)
                    continue
            else:
                key, value = msg.key(), msg.value()
                if key is not None:
                    card = key.decode("utf-8", "replace")
                    if value is None:
                        out[p].pop(card, None)
                    else:
                        out[p][card] = value
            if p in pending and (msg.offset() or 0) + (1 if err is None else 0) >= pending[p]:
                del pending[p]
        for tp in consumer.position([TopicPartition(t.topic, t.partition)
                                     for t in consumer.assignment()]):
            if tp.partition in pending and tp.offset >= pending[tp.partition]:
                del pending[tp.partition]
