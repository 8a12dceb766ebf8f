"""The demo's Kafka side: publish days of traffic and labels, wait for the warm-up, skip
offsets.

Labels are the fraud verdicts (chargebacks, analyst reviews) at their ``label_time``; genuine
transactions need none (the feature core counts only fraud labels, and the retrainer treats
a transaction without a fraud report as genuine). Publishing follows
:func:`replay.publish.publish_history` (JSON, keyed by ``card_id``), with the labels merged in.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pandas as pd
from confluent_kafka import Producer, TopicPartition

from infra.errors import ServiceError
from infra.settings import Settings
from replay.history import iter_transactions, label_records
from streams.clients import make_consumer, produce_when_room


def fraud_labels_between(frame: pd.DataFrame, start: pd.Timestamp,
                         end: pd.Timestamp) -> pd.DataFrame:
    """Rows whose fraud verdict arrives in ``[start, end)``."""
    times = pd.to_datetime(frame["label_time"], utc=True)
    hit = frame["is_fraud"].to_numpy(dtype=bool) & ((times >= start) & (times < end)).to_numpy()
    return frame.loc[hit]


def publish_transactions(settings: Settings, producer: Producer, frame: pd.DataFrame,
                         start: pd.Timestamp, end: pd.Timestamp) -> int:
    """``frame``'s transactions with event time in ``[start, end)``, in event-time order."""
    times = pd.to_datetime(frame["event_time"], utc=True)
    rows = frame.loc[((times >= start) & (times < end)).to_numpy()]
    for record in iter_transactions(rows):
        _produce(producer, settings.topic_transactions, record)
    _flush(producer)
    return len(rows)


def publish_labels(settings: Settings, producer: Producer, frame: pd.DataFrame,
                   start: pd.Timestamp, end: pd.Timestamp) -> int:
    """The fraud verdicts arriving in ``[start, end)``, in label-time order.

    Publish them right after the same span's transactions, while the feature worker is
    still reading those: it holds a label until its card partition has caught up with the
    label's time and then applies it in time order, as the feature core does. Published
    before their transactions, labels find the partition idle and the transaction unknown
    (dropped); published after the worker has caught up, they are applied when read, after
    transactions the feature core would have counted them for. Both show in the demo's
    count of served vectors that differ from the feature core's.
    """
    labels = fraud_labels_between(frame, start, end)
    n = 0
    for record in label_records(labels, include_genuine=False):
        _produce(producer, settings.topic_labels, record)
        n += 1
    _flush(producer)
    return n


def _flush(producer: Producer) -> None:
    if producer.flush(60):
        raise ServiceError("messages still queued after 60 s: is Kafka up?")


def _produce(producer: Producer, topic: str, record: dict[str, object]) -> None:
    value = json.dumps(record, separators=(",", ":")).encode()
    key = str(record["card_id"]).encode()
    produce_when_room(producer, topic, value, key)


def warmup_settings(settings: Settings) -> Settings:
    """The stream stage's settings for replaying the past: its decisions go to topics of
    their own (``<scores>.warmup``, ``<alerts>.warmup``), so the live ``scores`` (which the
    drift monitor windows) hold only live decisions, while the card states (changelog),
    terminal states and feature rows it builds are the live stage's starting point."""
    return settings.model_copy(update={"topic_scores": f"{settings.topic_scores}.warmup",
                                       "topic_alerts": f"{settings.topic_alerts}.warmup"})


def wait_decided(settings: Settings, expected: int, timeout: float,
                 progress: Callable[[int, float], None], every: float = 5.0) -> float:
    """Count ``settings.topic_scores`` until ``expected`` records; returns the seconds."""
    consumer = make_consumer(settings, f"fraudstream-demo-warmup-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([settings.topic_scores])
    started = time.monotonic()
    seen, next_report = 0, started + every
    try:
        while seen < expected:
            now = time.monotonic()
            if now - started > timeout:
                raise ServiceError(f"only {seen} of {expected} transactions decided "
                                   f"after {timeout:.0f}s")
            seen += sum(1 for m in consumer.consume(1000, 0.5) if m.error() is None)
            if now >= next_report:
                progress(seen, now - started)
                next_report = now + every
    finally:
        consumer.close()
    return time.monotonic() - started


def skip_to_end(settings: Settings, group: str, topic: str) -> int:
    """Commit ``group``'s offsets at the end of ``topic`` (what ``kafka-consumer-groups
    --reset-offsets --to-latest`` does), so a consumer of that group started now begins
    after what the topic already holds. The group must have no running member. Returns
    the number of records skipped."""
    consumer = make_consumer(settings, group)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        offsets, skipped = [], 0
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=10)
            offsets.append(TopicPartition(topic, partition, high))
            skipped += high - low
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
    return skipped
