"""The online learner process: ``scores`` + ``labels`` -> join -> River update -> snapshots.

:class:`LearnerCore` is the pure part (records in, model updated, counters out) and is what
unit tests drive. :class:`Learner` is the thin Kafka adapter: one consumer on both topics,
micro-batches, and every ``online_snapshot_seconds`` a *checkpoint* — the model, the join
state and the consumed offsets, pickled together atomically — then a new model snapshot
for scorers, then an offset commit. On restart the learner loads the checkpoint and seeks
to the offsets stored *in it* (not the group's committed ones), so the model never learns
an example twice nor misses one, whatever moment it was killed at; the group commit is only
for lag monitoring. One learner per deployment (a second one would train a second model).

Hostile input: each record is processed under a :class:`~streams.isolation.RecordGuard`.
A ``labels`` record is validated by the stream's own parser
(:func:`features.labels.parse_label`); a bad one (no ``label_time``, ``Infinity``, naive or
overflowing times, 5,000-deep JSON ...) is dead-lettered to ``labels.dlq``
(``topic_labels_dlq``) with its reason, and the learner goes on; an unexpected failure is
retried a bounded number of times, then dead-lettered too. Dead letters are flushed and
confirmed before a checkpoint stores the offsets past them, so nothing is acknowledged that
was neither learned from nor dead-lettered. A bad ``scores`` record (the project's own
output) is skipped and counted (``online_join_total{outcome="invalid"}``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Message, TopicPartition

from features.core import FEATURE_NAMES, Label
from features.labels import parse_label, validate_label
from infra.errors import InvalidInput, ServiceError
from infra.metrics_http import serve_metrics
from infra.settings import Settings
from models.online import CombineRule, OnlineModel
from models.online_join import Example, LabelJoin
from models.online_snapshot import SnapshotStore
from scoring.metrics import ScoringMetrics, build_metrics
from streams import serde
from streams.clients import is_record
from streams.delivery import DeliveryTracker, ProducerLike
from streams.dlq import DeadLetterRouter
from streams.isolation import RecordGuard

log = logging.getLogger("fraudstream.models.learner")
DLQ_FLUSH_TIMEOUT_S = 10.0  # bounded: under the consumer's poll interval


def _ms(value: Any) -> int:
    """Epoch ms of a record's time, by the boundary's rules (no overflow, no naive time)."""
    from streams.rules import check_time_ms

    try:
        return check_time_ms(value)
    except ValueError as exc:
        raise InvalidInput(f"bad time {str(value)[:40]!r}: {exc}") from None


@dataclass
class LearnerCore:
    """Model + join; :meth:`on_score` / :meth:`on_label` take decoded topic records."""

    model: OnlineModel
    join: LabelJoin
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset to read

    @classmethod
    def fresh(cls, settings: Settings) -> LearnerCore:
        return cls(
            OnlineModel(
                FEATURE_NAMES, settings.online_negative_rate, settings.online_learning_rate
            ),
            LabelJoin(
                settings.online_join_capacity,
                int(settings.online_join_ttl_hours * 3_600_000),
                settings.online_negative_rate,
                settings.seed,
            ),
        )

    def _learn(self, examples: list[Example]) -> int:
        for ex in examples:
            self.model.learn(ex.vector, ex.fraud)
        return len(examples)

    def on_score(self, record: dict[str, Any]) -> int:
        """A ``scores`` record: hold its feature vector for the label; returns #learned."""
        try:
            features = record["features"]
            vector = np.array(
                [
                    np.nan if features.get(n) is None else features[n]
                    for n in self.model.feature_names
                ],
                dtype=np.float32,
            )
            tid, event_ms = str(record["transaction_id"]), _ms(record["event_time"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise InvalidInput(
                f"score record without transaction_id/event_time/features: {exc!r}"
            ) from None
        return self._learn(self.join.add_decision(tid, vector, event_ms))

    def on_label(self, record: dict[str, Any]) -> int:
        """A decoded ``labels`` record: join it to its decision (or park it); #learned.

        Validated as the stream validates it (:func:`features.labels.validate_label`).
        """
        return self.learn_label(validate_label(record))

    def learn_label(self, label: Label) -> int:
        """A validated label: join it to its decision (or park it); returns #learned."""
        return self._learn(self.join.add_label(label.transaction_id, label.fraud,
                                               label.label_ms))


class Learner:
    """Kafka adapter around :class:`LearnerCore` (see module doc)."""

    def __init__(
        self,
        settings: Settings,
        metrics: ScoringMetrics | None = None,
        consumer: Consumer | None = None,
        clock: Callable[[], float] = time.monotonic,
        dlq_producer: ProducerLike | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or build_metrics()
        self.store = SnapshotStore(settings.state_dir / "online", settings.online_keep_snapshots)
        self.rule = CombineRule(settings.online_weight, settings.online_warmup_frauds)
        saved = self.store.load_checkpoint()
        self.core: LearnerCore = (
            saved if isinstance(saved, LearnerCore) else LearnerCore.fresh(settings)
        )
        self._consumer = consumer
        self._clock = clock
        self._last_snapshot = clock()
        self._dirty = False
        self._counted: dict[str, int] = dict(self.core.join.counts)
        self._dlq_producer = dlq_producer
        self._deliveries = DeliveryTracker()
        self.label_guard = RecordGuard(None)  # routed once the producer exists (_router)
        self.score_guard = RecordGuard(None)
        self._dead_lettered = 0

    def _router(self) -> DeadLetterRouter:
        if self.label_guard.router is None:
            if self._dlq_producer is None:
                from streams.clients import make_producer

                self._dlq_producer = make_producer(self.settings)
            self.label_guard.router = DeadLetterRouter(
                self._dlq_producer, self.settings.topic_labels_dlq, worker="learner",
                on_delivery=self._deliveries.callback(self.settings.topic_labels_dlq, None))
        return self.label_guard.router

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:  # resume exactly where the checkpoint's model stopped
            saved = self.core.offsets.get((tp.topic, tp.partition))
            if saved is not None:
                tp.offset = saved
        consumer.assign(partitions)

    def start(self) -> Consumer:
        if self._consumer is None:
            from streams.clients import make_consumer

            self._consumer = make_consumer(self.settings, self.settings.consumer_group_learner)
            ensure_labels_dlq(self.settings)
        s = self.settings
        self._consumer.subscribe([s.topic_scores, s.topic_labels], on_assign=self._on_assign)
        return self._consumer

    def process(self, messages: list[Message]) -> None:
        for message in messages:
            if not is_record(message, log):
                continue
            topic, partition = message.topic() or "", message.partition() or 0
            value = message.value() or b""
            if topic == self.settings.topic_labels:
                self._router()
                self.label_guard.run(message, partial(self._on_label_bytes, value))
            else:
                ok, _ = self.score_guard.run(message, partial(self._on_score_bytes, value))
                if not ok:
                    self.metrics.online_join.labels(outcome="invalid").inc()
            self.core.offsets[(topic, partition)] = (message.offset() or 0) + 1
            self._dirty = True
        self._export()

    def _on_label_bytes(self, value: bytes) -> int:
        return self.core.learn_label(parse_label(value, self.settings.max_message_bytes))

    def _on_score_bytes(self, value: bytes) -> int:
        return self.core.on_score(serde.loads_object(value))

    def _export(self) -> None:
        m, counts = self.metrics, self.core.join.counts
        routed = sum(v for k, v in self.label_guard.outcomes.items() if k.endswith("_lettered"))
        if routed > self._dead_lettered:
            m.online_join.labels(outcome="dead_lettered").inc(routed - self._dead_lettered)
            self._dead_lettered = routed
        for key, value in counts.items():
            delta = value - self._counted.get(key, 0)
            if delta:
                if key.startswith("learned_"):  # learned_<label>_<kind>
                    _, label, kind = key.split("_")
                    m.online_updates.labels(label=label, kind=kind).inc(delta)
                else:
                    m.online_join.labels(outcome=key).inc(delta)
        self._counted = dict(counts)
        m.online_pending.labels(side="decisions").set(len(self.core.join))
        m.online_pending.labels(side="labels").set(self.core.join.parked)
        m.online_weight.set(self.rule.weight_for(self.core.model.frauds))

    def maybe_snapshot(self, force: bool = False) -> int | None:
        """Checkpoint + snapshot + commit when due and something changed; the new version."""
        now = self._clock()
        if not self._dirty or (
            not force and now - self._last_snapshot < self.settings.online_snapshot_seconds
        ):
            return None
        self._confirm_dead_letters()
        self.store.save_checkpoint(self.core)
        version = self.store.write(self.core.model, {"watermark_ms": self.core.join.watermark_ms})
        self._last_snapshot, self._dirty = now, False
        self.metrics.online_snapshots.inc()
        self.metrics.online_snapshot_version.set(version)
        if self._consumer is not None:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self.core.offsets.items()]
            self._consumer.commit(offsets=offsets, asynchronous=True)
        log.info(
            "online snapshot %d: %d frauds, %d genuine learned, %d pending",
            version,
            self.core.model.frauds,
            self.core.model.genuines,
            len(self.core.join),
        )
        return version

    def _confirm_dead_letters(self) -> None:
        """Every dead letter delivered before the checkpoint stores offsets past it; else
        :class:`ServiceError` (the restart re-reads from the last checkpoint)."""
        if self._dlq_producer is None:
            return
        left = self._dlq_producer.flush(DLQ_FLUSH_TIMEOUT_S)
        self._deliveries.raise_if_failed(left)
        if left:
            raise ServiceError(f"{left} dead letter(s) not confirmed by the broker")

    def run(self, stop: threading.Event) -> None:
        consumer = self.start()
        try:
            while not stop.is_set():
                self.process(consumer.consume(500, 0.2))
                self.maybe_snapshot()
            self.maybe_snapshot(force=True)
        finally:
            consumer.close()


def run_learner(settings: Settings) -> None:
    """Process entry (``fraudstream learner``): run until SIGTERM/SIGINT, then snapshot."""
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    metrics = build_metrics()
    serve_metrics(settings.learner_metrics_port, settings.metrics_host, metrics.registry)
    Learner(settings, metrics).run(stop)


def ensure_labels_dlq(settings: Settings) -> None:
    """Create ``labels.dlq`` if missing (one partition, 30 days, like ``transactions.dlq``)."""
    from streams.clients import make_admin
    from streams.topics import TopicSpec, ensure_topics

    spec = TopicSpec(role="labels_dlq", name=settings.topic_labels_dlq, partitions=1,
                     replication=settings.topic_replication, key="original key",
                     config={"cleanup.policy": "delete", "retention.ms": str(30 * 86_400_000)})
    ensure_topics(make_admin(settings), [spec])
