"""The online learner process: ``scores`` + ``labels`` -> join -> River update -> snapshots.

:class:`LearnerCore` is the pure part (records in, model updated, counters out) and is what
unit tests drive. :class:`Learner` is the thin Kafka adapter: one consumer on both topics,
micro-batches, and every ``online_snapshot_seconds`` a *checkpoint* — the model, the join
state and the consumed offsets, pickled together atomically — then a new model snapshot
for scorers, then an offset commit. On restart the learner loads the checkpoint and seeks
to the offsets stored *in it* (not the group's committed ones), so the model never learns
an example twice nor misses one, whatever moment it was killed at; the group commit is only
for lag monitoring. One learner per deployment (a second one would train a second model).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from features.core import FEATURE_NAMES
from infra.errors import InvalidInput
from infra.metrics_http import serve_metrics
from infra.settings import Settings
from models.online import CombineRule, OnlineModel
from models.online_join import Example, LabelJoin
from models.online_snapshot import SnapshotStore
from scoring.metrics import ScoringMetrics, build_metrics

log = logging.getLogger("fraudstream.models.learner")


def _ms(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise InvalidInput(f"bad time {value!r}") from None


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
        """A ``labels`` record: join it to its decision (or park it); returns #learned."""
        label = record.get("label")
        if label not in ("fraud", "genuine") or "transaction_id" not in record:
            raise InvalidInput(
                f"label record needs transaction_id and label fraud|genuine, got {sorted(record)}"
            )
        return self._learn(
            self.join.add_label(
                str(record["transaction_id"]), label == "fraud", _ms(record["label_time"])
            )
        )


class Learner:
    """Kafka adapter around :class:`LearnerCore` (see module doc)."""

    def __init__(
        self,
        settings: Settings,
        metrics: ScoringMetrics | None = None,
        consumer: Consumer | None = None,
        clock: Callable[[], float] = time.monotonic,
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
        s = self.settings
        self._consumer.subscribe([s.topic_scores, s.topic_labels], on_assign=self._on_assign)
        return self._consumer

    def process(self, messages: list[Message]) -> None:
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            topic, partition = message.topic() or "", message.partition() or 0
            try:
                record = json.loads(message.value() or b"")
                if not isinstance(record, dict):
                    raise InvalidInput("record is not a JSON object")
                if topic == self.settings.topic_labels:
                    self.core.on_label(record)
                else:
                    self.core.on_score(record)
            except (InvalidInput, ValueError) as exc:
                log.warning("skipping %s[%d]@%d: %s", topic, partition, message.offset(), exc)
                self.metrics.online_join.labels(outcome="invalid").inc()
            self.core.offsets[(topic, partition)] = (message.offset() or 0) + 1
            self._dirty = True
        self._export()

    def _export(self) -> None:
        m, counts = self.metrics, self.core.join.counts
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
