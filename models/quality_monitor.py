"""Kafka adapter of the live quality tracker: ``scores`` + ``labels`` -> quality gauges.

Reads both topics in its own consumer group (``consumer_group_quality``), feeds
:class:`~models.live_quality.QualityTracker` and exports its window through
:class:`~models.ops_metrics.QualityMetrics` every ``export_s`` seconds. A record it cannot
read is counted (``outcome="invalid"``) and logged with ``topic[partition]@offset``; it never
stops the loop. State is in memory: after a restart the window refills as labels mature
(offsets are committed as read, so the restarted tracker does not re-count old records).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, Message

from infra.settings import Settings
from models.live_quality import QualityTracker
from models.ops_metrics import QualityMetrics
from streams.clients import is_record

log = logging.getLogger("fraudstream.models.quality")
ALERTED = frozenset({"review", "decline"})


def event_ms(value: Any) -> int:
    """Epoch ms from epoch ms or ISO-8601 (``Z`` allowed); ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


def tracker_for(settings: Settings) -> QualityTracker:
    return QualityTracker(
        window=settings.quality_window, capacity=settings.quality_capacity,
        maturity_ms=int(settings.retrain_maturity_days * 86_400_000),
        budget=settings.retrain_budget, sample_rate=settings.quality_sample_rate)


def apply(tracker: QualityTracker, topic_labels: str, topic: str, record: object) -> None:
    """Feed one decoded record; ValueError/KeyError/TypeError when it is not usable."""
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    tid = str(record["transaction_id"])
    if topic == topic_labels:
        label = record["label"]
        if label not in ("fraud", "genuine"):
            raise ValueError(f"label {label!r} is not fraud|genuine")
        tracker.add_label(tid, label == "fraud")
    else:
        score = float(record["score"])
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score {score} outside [0, 1]")
        tracker.add_decision(tid, score, record.get("decision") in ALERTED,
                             event_ms(record["event_time"]))


class QualityMonitor:
    def __init__(self, settings: Settings, metrics: QualityMetrics,
                 consumer: Consumer | None = None, export_s: float = 2.0) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tracker = tracker_for(settings)
        self._consumer = consumer
        self.export_s = export_s
        self.assigned = False  # readiness: the group gave this process its partitions

    def process(self, messages: list[Message]) -> None:
        for message in messages:
            if not is_record(message, log):
                continue
            topic = message.topic() or ""
            try:
                apply(self.tracker, self.settings.topic_labels, topic,
                      json.loads(message.value() or b""))
            except (ValueError, KeyError, TypeError) as exc:
                self.tracker.counts["invalid"] += 1
                log.warning("skipping %s[%d]@%d: %s", topic, message.partition() or 0,
                            message.offset() or 0, exc,
                            extra={"topic": topic, "partition": message.partition(),
                                   "offset": message.offset()})

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        self.assigned = True

    def run(self, stop: threading.Event) -> None:
        if self._consumer is None:
            from streams.clients import make_consumer

            self._consumer = make_consumer(self.settings, self.settings.consumer_group_quality)
        consumer = self._consumer
        consumer.subscribe([self.settings.topic_scores, self.settings.topic_labels],
                           on_assign=self._on_assign)
        last = 0.0
        try:
            while not stop.is_set():
                batch = consumer.consume(1000, 0.5)
                self.process(batch)
                if batch:
                    consumer.commit(asynchronous=True)
                if time.monotonic() - last >= self.export_s:
                    self.metrics.export(self.tracker)
                    last = time.monotonic()
        finally:
            self.metrics.export(self.tracker)
            consumer.close()
