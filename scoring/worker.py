"""Scorer worker: featurized transactions -> Feast features -> champion -> decisions.

A confluent-kafka consume-transform-produce loop with Kafka transactions: each micro-batch's
``scores`` / ``alerts`` / dead-letter records and its input offsets are committed in one
transaction, so every valid transaction gets exactly one decision in ``scores`` across
crashes, restarts and rebalances (consumers read with ``isolation.level=read_committed``).
A failed transaction is aborted and the consumer rewound to the last committed offsets, so
nothing is lost either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from infra.errors import InvalidInput
from infra.settings import Settings
from scoring.metrics import ScoringMetrics, reason_class
from scoring.policy import ALERT_DECISIONS, Policy, policy_for
from scoring.ports import FeatureReader, ModelSource, OnlineScorer, ScoringModel, check_servable
from scoring.reasons import top_reasons
from scoring.records import BatchOutcome, alert_record, score_record
from streams.clients import make_consumer, make_producer
from streams.dlq import dead_letter_record, make_dead_letter
from streams.serde import dumps, loads_records

log = logging.getLogger("fraudstream.scoring.worker")

FEATURE_READ_RETRIES = 5
CHAMPION, SHADOW = "champion", "shadow"
MODEL_CHECK_SECONDS = 5.0
READY_MARKER = "scoring with model version"


@dataclass
class ScorerStats:
    batches: int = 0
    scored: int = 0
    alerts: int = 0
    dead_lettered: int = 0
    aborted: int = 0
    decisions: dict[str, int] = field(default_factory=dict)


class Scorer:
    """Owns its consumer and transactional producer; :meth:`run` loops until stopped."""

    def __init__(
        self,
        settings: Settings,
        online: FeatureReader,
        models: ModelSource,
        instance: str = "0",
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        producer: Producer | None = None,
        consumer: Consumer | None = None,
        online_model: OnlineScorer | None = None,
        metrics: ScoringMetrics | None = None,
    ) -> None:
        """Clients are built from ``settings`` on :meth:`start` unless injected (tests)."""
        self.settings = settings
        self.online = online
        self._models = models
        self.online_model = online_model
        self.metrics = metrics
        self.shadow: ScoringModel | None = None
        self._instance = instance
        self._wall_ms = wall_ms
        self.policy: Policy | None = None
        self.stats = ScorerStats()
        self.model: ScoringModel | None = None
        self._consumer: Consumer | None = consumer
        self._producer: Producer | None = producer
        self._last_model_check = 0.0

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._use(self._models.load(CHAMPION))
        self._refresh_shadow()
        s = self.settings
        if self._producer is None:
            self._producer = make_producer(
                s, transactional_id=f"{s.consumer_group_scorer}-{self._instance}", linger_ms=2
            )
        self._producer.init_transactions(30)
        if self._consumer is None:
            # Static membership: a restarted scorer with the same instance id takes its
            # partitions back at once instead of waiting out the dead member's session.
            self._consumer = make_consumer(
                s,
                s.consumer_group_scorer,
                group_instance_id=f"{s.consumer_group_scorer}-{self._instance}",
                session_timeout_ms=s.scorer_session_timeout_ms,
            )
        self._consumer.subscribe([s.topic_featurized])

    def _clients(self) -> tuple[Producer, Consumer]:
        if self._producer is None or self._consumer is None:
            raise RuntimeError("scorer not started: call start() first")
        return self._producer, self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        if self.model is None:
            self.start()
        consumer = self._clients()[1]
        try:
            while not stop.is_set():
                messages = consumer.consume(
                    self.settings.score_batch_size, self.settings.score_batch_ms / 1000.0
                )
                messages = [m for m in messages if self._usable(m)]
                if self.online_model is not None and self.online_model.maybe_reload():
                    self._observe_models()
                if messages:
                    self._transact(messages)
                self._maybe_swap_model()
        finally:
            self.close()

    # -- one micro-batch ------------------------------------------------------------------
    def _usable(self, message: Message) -> bool:
        err = message.error()
        if err is None:
            return True
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", err)
        return False

    def _transact(self, messages: list[Message]) -> None:
        producer, consumer = self._clients()
        started = time.perf_counter()
        try:
            producer.begin_transaction()
            outcome = self._score_batch(messages)
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata()
            )
            producer.commit_transaction()
            self._account(outcome, time.perf_counter() - started)
        except KafkaException as exc:
            error = exc.args[0]
            if not error.txn_requires_abort():
                raise
            log.warning("transaction aborted (%s); rewinding to committed offsets", error)
            producer.abort_transaction()
            self.stats.aborted += 1
            if self.metrics is not None:
                self.metrics.aborted_transactions.inc()
            for tp in consumer.committed(consumer.assignment(), timeout=10):
                consumer.seek(tp)

    def _score_batch(self, messages: list[Message]) -> BatchOutcome:
        producer = self._clients()[0]
        if self.model is None or self.policy is None:
            raise RuntimeError("scorer not started")
        s, model, outcome = self.settings, self.model, BatchOutcome()
        decoded: list[tuple[Message, dict[str, Any]]] = []
        for message in messages:
            try:
                records = loads_records(message.value())
            except InvalidInput as exc:
                self._dead_letter(message, f"malformed featurized record: {exc.reason}", outcome)
                continue
            for record in records:
                if _valid(record):
                    decoded.append((message, record))
                else:  # the rest of its message is scored
                    self._dead_letter(message, "featurized record lacks transaction_id/card_id",
                                      outcome, value=dumps(record, nan_as_null=True))
        vectors = self._read_features([r["transaction_id"] for _, r in decoded])
        ready: list[tuple[dict[str, Any], tuple[float, ...]]] = []
        for (message, record), vector in zip(decoded, vectors, strict=True):
            if vector is None:
                self._dead_letter(message, "features unavailable in the online store", outcome,
                                  value=dumps(record, nan_as_null=True))
            else:
                ready.append((record, vector))
        if not ready:
            return outcome
        matrix = np.asarray([v for _, v in ready], dtype=np.float64)
        batch_scores = model.booster.inplace_predict(matrix)
        scores, online_p = batch_scores, None
        if self.online_model is not None:
            scores, online_p = self.online_model.combine(batch_scores, matrix)
        decisions = self.policy.decide_many(scores)
        alert_rows = [i for i, d in enumerate(decisions) if d in ALERT_DECISIONS]
        reasons = top_reasons(model.booster, matrix[alert_rows], model.feature_names, s.top_reasons)
        reason_of = dict(zip(alert_rows, reasons, strict=True))
        versions = {
            "batch": model.version,
            "online": self.online_model.version if self.online_model is not None else None,
        }
        shadow_scores = (
            self.shadow.booster.inplace_predict(matrix) if self.shadow is not None else None
        )
        now = self._wall_ms()
        for i, (record, vector) in enumerate(ready):
            latency = max(0, now - int(record.get("ingest_ms", now)))
            out = score_record(
                record,
                score=float(scores[i]),
                decision=decisions[i],
                versions=versions,
                feature_names=model.feature_names,
                vector=vector,
                latency_ms=latency,
                parts={
                    "batch": float(batch_scores[i]),
                    "online": None if online_p is None else float(online_p[i]),
                },
            )
            if shadow_scores is not None and self.shadow is not None:
                shadow_score = float(shadow_scores[i])
                out["shadow"] = {
                    "version": self.shadow.version,
                    "score": round(shadow_score, 6),
                    "decision": self.policy.decide(shadow_score),
                }
            key = record["card_id"].encode()
            producer.produce(s.topic_scores, key=key, value=dumps(out, nan_as_null=True))
            outcome.decisions.append(decisions[i])
            outcome.latencies_ms.append(latency)
            if i in reason_of:
                reasons_i = reason_of[i]
                if online_p is not None and scores[i] - batch_scores[i] > 0.01:
                    lift = round(float(scores[i] - batch_scores[i]), 4)
                    reasons_i = [
                        {"code": "online_model", "value": float(online_p[i]), "contribution": lift},
                        *reasons_i,
                    ][: s.top_reasons]
                alert = alert_record(out, record, reasons_i)
                producer.produce(s.topic_alerts, key=key, value=dumps(alert, nan_as_null=True))
                outcome.alerts += 1
        return outcome

    def _account(self, outcome: BatchOutcome, seconds: float) -> None:
        """Stats and metrics of a committed batch."""
        st = self.stats
        st.batches += 1
        st.scored += len(outcome.decisions)
        st.alerts += outcome.alerts
        st.dead_lettered += len(outcome.dead_letter_reasons)
        for decision in outcome.decisions:
            st.decisions[decision] = st.decisions.get(decision, 0) + 1
        m = self.metrics
        if m is None:
            return
        m.batch_seconds.observe(seconds)
        m.batch_size.observe(len(outcome.decisions) + len(outcome.dead_letter_reasons))
        if outcome.decisions:
            m.transactions.labels(outcome="scored").inc(len(outcome.decisions))
        for decision in outcome.decisions:
            m.decisions.labels(source="stream", decision=decision).inc()
        for latency in outcome.latencies_ms:
            m.publish_to_decision.observe(latency / 1000.0)
        for reason in outcome.dead_letter_reasons:
            m.transactions.labels(outcome="dead_lettered").inc()
            m.dead_letters.labels(worker="scorer", reason=reason_class(reason)).inc()

    def _observe_models(self) -> None:
        if self.metrics is None:
            return
        name = self.settings.model_name
        self.metrics.set_model_version("batch", name, self.model.version if self.model else None)
        self.metrics.set_model_version("shadow", name, self.shadow.version if self.shadow else None)
        online = self.online_model.version if self.online_model is not None else None
        self.metrics.set_model_version("online", "river", online)

    def _read_features(self, ids: list[str]) -> list[tuple[float, ...] | None]:
        vectors = self.online.read(ids)
        for attempt in range(FEATURE_READ_RETRIES):
            missing = [i for i, v in enumerate(vectors) if v is None]
            if not missing:
                break
            time.sleep(0.01 * (attempt + 1))
            again = self.online.read([ids[i] for i in missing])
            for i, v in zip(missing, again, strict=True):
                vectors[i] = v
        return vectors

    def _dead_letter(self, message: Message, reason: str, outcome: BatchOutcome,
                     value: bytes | None = None) -> None:
        """Dead-letter ``message`` (or one record of it: ``value``) with ``reason``."""
        letter = make_dead_letter(
            key=message.key(),
            value=message.value() if value is None else value,
            error=reason,
            topic=message.topic() or self.settings.topic_featurized,
            partition=_or_unknown(message.partition()),
            offset=_or_unknown(message.offset()),
            worker="scorer",
        )
        key, value = dead_letter_record(letter)
        self._clients()[0].produce(self.settings.topic_dlq, key=key, value=value)
        outcome.dead_letter_reasons.append(reason)

    # -- hot swap -------------------------------------------------------------------------
    def _maybe_swap_model(self) -> None:
        """Follow the ``champion`` and ``shadow`` aliases (checked every few seconds)."""
        if self.model is None:
            return
        now = time.monotonic()
        if now - self._last_model_check < MODEL_CHECK_SECONDS:
            return
        self._last_model_check = now
        version = self._models.alias_version(CHAMPION)
        if version is not None and version != self.model.version:
            candidate = self._models.load(CHAMPION)
            log.info("champion moved: %s -> %s", self.model.version, candidate.version)
            if self.metrics is not None:
                self.metrics.model_swaps.labels(role="batch").inc()
            self._use(candidate)
        self._refresh_shadow()

    def _refresh_shadow(self) -> None:
        version = self._models.alias_version(SHADOW)
        current = self.shadow.version if self.shadow else None
        if version == current:
            return
        if version is None:
            log.info("shadow model %s retired", current)
            self.shadow = None
            self._observe_models()
            return
        candidate = self._models.load(SHADOW)
        check_servable(candidate, self.online.served_features())
        log.info("shadow model: version %s (scored and logged, never acted on)", version)
        self.shadow = candidate
        self._observe_models()

    def _use(self, model: ScoringModel) -> None:
        """Switch to ``model`` between micro-batches (never within one)."""
        check_servable(model, self.online.served_features())
        self.policy = policy_for(
            self.settings.review_threshold,
            self.settings.decline_threshold,
            model.metrics.get("budget_threshold"),
        )
        self.model = model
        log.info("scoring with model version %s, %s", model.version, self.policy)
        self._observe_models()


def _valid(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("transaction_id"), str) \
        and isinstance(record.get("card_id"), str)


def _or_unknown(value: int | None) -> int:
    return -1 if value is None else value
