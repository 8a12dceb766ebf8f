"""A bounded read of one topic: from the start (or a time) up to its end at the call.

Used where a command needs what a topic holds now — the retrainer's labels, a canary's
decisions since its last step — not a subscription: the end offsets are taken first, then
consumed up to them under a deadline (``ServiceError`` past it), with a fresh consumer
group that commits nothing. On a transactional topic the last offsets can be commit
markers that are never delivered, so a partition also counts as read once the consumer's
position reaches its end.
"""

from __future__ import annotations

import time
import uuid

from infra.errors import ServiceError
from infra.settings import Settings


def read_topic(settings: Settings, topic: str, *, since_ms: int | None = None,
               timeout: float = 60.0) -> list[tuple[bytes, int]]:
    """``(value, timestamp ms)`` of every record of ``topic`` (from ``since_ms`` if given)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from streams.clients import make_consumer

    consumer = make_consumer(settings, f"fraudstream-read-{uuid.uuid4().hex[:8]}")
    deadline = time.monotonic() + timeout
    out: list[tuple[bytes, int]] = []
    try:
        meta = consumer.list_topics(topic, timeout=min(10.0, timeout))
        found = meta.topics.get(topic)
        if found is None or found.error is not None:
            raise ServiceError(f"topic {topic!r} is not available")
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1]
                for p in found.partitions}
        starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends]
        if since_ms is not None:
            starts = consumer.offsets_for_times(
                [TopicPartition(topic, p, since_ms) for p in ends], timeout=10.0)
        done = {p for p, high in ends.items() if high <= 0}
        done |= {tp.partition for tp in starts if tp.offset < 0 and since_ms is not None}
        consumer.assign([tp for tp in starts if tp.partition not in done])
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                raise ServiceError(f"reading {topic!r} took over {timeout}s")
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error() is not None:
                    continue
                value, offset, partition = msg.value(), msg.offset(), msg.partition()
                if value is not None:
                    out.append((value, msg.timestamp()[1]))
                if offset is not None and partition is not None \
                        and offset >= ends[partition] - 1:
                    done.add(partition)
            for tp in consumer.position([TopicPartition(topic, p) for p in ends
                                         if p not in done]):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
    finally:
        consumer.close()
    return out
