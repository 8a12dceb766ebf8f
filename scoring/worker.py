"""Scorer worker: featurized transactions -> Feast features -> champion -> decisions.

A confluent-kafka consume-transform-produce loop with Kafka transactions: each micro-batch's
``scores`` / ``alerts`` / dead-letter records and its input offsets are committed in one
transaction, so every valid transaction gets exactly one decision in ``scores`` across
crashes, restarts and rebalances (consumers read with ``isolation.level=read_committed``).
A failed transaction is aborted and the consumer rewound to the last committed offsets, so
nothing is lost either.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from infra.errors import InvalidInput, ModelError
from infra.settings import Settings
from scoring.policy import ALERT_DECISIONS, Policy, policy_for
from scoring.reasons import top_reasons
from streams.clients import make_consumer, make_producer
from streams.dlq import dead_letter_record, make_dead_letter
from streams.serde import dumps

log = logging.getLogger("fraudstream.scoring.worker")

FEATURE_READ_RETRIES = 5
CHAMPION, SHADOW = "champion", "shadow"
MODEL_CHECK_SECONDS = 5.0
READY_MARKER = "scoring with model version"


class FeatureReader(Protocol):
    """The online feature read the scorer needs (``features.store.OnlineFeatures``)."""

    def read(self, transaction_ids: Sequence[str]) -> list[tuple[float, ...] | None]: ...
    def served_features(self) -> list[str]: ...


class ModelSource(Protocol):
    """Where models come from (``models.registry.ModelRegistry`` provides it)."""

    def load(self, alias: str = ...) -> ScoringModel: ...
    def alias_version(self, alias: str = ...) -> str | None: ...


class ScoringModel(Protocol):
    """What the scorer needs of a model (``models.versions.LoadedModel`` provides it)."""

    @property
    def booster(self) -> Any: ...
    @property
    def version(self) -> str: ...
    @property
    def feature_names(self) -> Sequence[str]: ...
    @property
    def metrics(self) -> dict[str, float]: ...


@dataclass
class ScorerStats:
    batches: int = 0
    scored: int = 0
    alerts: int = 0
    dead_lettered: int = 0
    aborted: int = 0
    decisions: dict[str, int] = field(default_factory=dict)


def check_servable(model: ScoringModel, served: Sequence[str]) -> None:
    """Refuse a model whose signature is not the served FeatureService's ordered features."""
    if list(model.feature_names) != list(served):
        raise ModelError(
            f"model version {model.version} expects features {list(model.feature_names)}, "
            f"but the feature service serves {list(served)}"
        )


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
    ) -> None:
        """Clients are built from ``settings`` on :meth:`start` unless injected (tests)."""
        self.settings = settings
        self.online = online
        self._models = models
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
        try:
            producer.begin_transaction()
            self._score_batch(messages)
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata()
            )
            producer.commit_transaction()
            self.stats.batches += 1
        except KafkaException as exc:
            error = exc.args[0]
            if not error.txn_requires_abort():
                raise
            log.warning("transaction aborted (%s); rewinding to committed offsets", error)
            producer.abort_transaction()
            self.stats.aborted += 1
            for tp in consumer.committed(consumer.assignment(), timeout=10):
                consumer.seek(tp)

    def _score_batch(self, messages: list[Message]) -> None:
        producer = self._clients()[0]
        if self.model is None or self.policy is None:
            raise RuntimeError("scorer not started")
        s = self.settings
        decoded: list[tuple[Message, dict[str, Any]]] = []
        for message in messages:
            try:
                decoded.append((message, _decode(message.value())))
            except InvalidInput as exc:
                self._dead_letter(message, exc.reason)
        vectors = self._read_features([r["transaction_id"] for _, r in decoded])
        ready: list[tuple[dict[str, Any], tuple[float, ...]]] = []
        for (message, record), vector in zip(decoded, vectors, strict=True):
            if vector is None:
                self._dead_letter(message, "features unavailable in the online store")
            else:
                ready.append((record, vector))
        if not ready:
            return
        matrix = np.asarray([v for _, v in ready], dtype=np.float64)
        scores = self.model.booster.inplace_predict(matrix)
        shadow_scores = (
            self.shadow.booster.inplace_predict(matrix) if self.shadow is not None else None
        )
        decisions = self.policy.decide_many(scores)
        alert_rows = [i for i, d in enumerate(decisions) if d in ALERT_DECISIONS]
        reasons = top_reasons(
            self.model.booster, matrix[alert_rows], self.model.feature_names, s.top_reasons
        )
        reason_of = dict(zip(alert_rows, reasons, strict=True))
        now = self._wall_ms()
        for i, ((record, vector), score, decision) in enumerate(
            zip(ready, scores, decisions, strict=True)
        ):
            key = record["card_id"].encode()
            latency = max(0, now - int(record.get("ingest_ms", now)))
            out = {
                "transaction_id": record["transaction_id"],
                "event_time": record["event_time"],
                "card_id": record["card_id"],
                "score": round(float(score), 6),
                "decision": decision,
                "model_version": {"batch": self.model.version, "online": None},
                "features": dict(zip(self.model.feature_names, vector, strict=True)),
                "latency_ms": latency,
            }
            if shadow_scores is not None and self.shadow is not None:
                shadow_score = float(shadow_scores[i])
                out["shadow"] = {
                    "version": self.shadow.version,
                    "score": round(shadow_score, 6),
                    "decision": self.policy.decide(shadow_score),
                }
            producer.produce(s.topic_scores, key=key, value=dumps(out, nan_as_null=True))
            self.stats.decisions[decision] = self.stats.decisions.get(decision, 0) + 1
            if i in reason_of:
                alert = {
                    "transaction_id": record["transaction_id"],
                    "decision": decision,
                    "score": out["score"],
                    "reasons": reason_of[i],
                    "model_version": out["model_version"],
                    "latency_ms": latency,
                    "transaction": {
                        k: record.get(k)
                        for k in (
                            "event_time",
                            "card_id",
                            "merchant_id",
                            "amount",
                            "currency",
                            "channel",
                            "country",
                            "mcc",
                        )
                    },
                }
                producer.produce(s.topic_alerts, key=key, value=dumps(alert))
                self.stats.alerts += 1
        self.stats.scored += len(ready)

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

    def _dead_letter(self, message: Message, reason: str) -> None:
        letter = make_dead_letter(
            key=message.key(),
            value=message.value(),
            error=reason,
            topic=message.topic() or self.settings.topic_featurized,
            partition=_or_unknown(message.partition()),
            offset=_or_unknown(message.offset()),
            worker="scorer",
        )
        key, value = dead_letter_record(letter)
        self._clients()[0].produce(self.settings.topic_dlq, key=key, value=value)
        self.stats.dead_lettered += 1

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
            return
        candidate = self._models.load(SHADOW)
        check_servable(candidate, self.online.served_features())
        log.info("shadow model: version %s (scored and logged, never acted on)", version)
        self.shadow = candidate

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


def _decode(raw: bytes | None) -> dict[str, Any]:
    try:
        record = json.loads(raw or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"malformed featurized record: {exc}") from None
    if not isinstance(record, dict) or "transaction_id" not in record or "card_id" not in record:
        raise InvalidInput("featurized record lacks transaction_id/card_id")
    return record


def _or_unknown(value: int | None) -> int:
    return -1 if value is None else value
