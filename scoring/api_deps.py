"""What the API needs, owned by one object per app: clients, models and the scoring path.

:class:`ApiDeps` is built by :func:`build_deps` from settings (real Redis, Kafka, MLflow,
online snapshots) or by tests from fakes. Nothing connects before :meth:`ApiDeps.open`,
which the app's ``lifespan`` calls; :meth:`ApiDeps.refresh` (a background task) hot-swaps
the champion when its alias moves and reloads the online snapshot, so requests never
wait on MLflow. :meth:`ApiDeps.score` is the synchronous twin of the stream scorer:
same feature core, same champion booster, same combination rule and decision policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import xgboost

from features.core import FEATURE_NAMES
from infra.errors import FraudstreamError, InvalidInput, ModelError, ServiceError
from infra.settings import Settings
from models.online_snapshot import OnlineModelHandle
from scoring.api_models import ModelOps, RegistryOps
from scoring.metrics import ScoringMetrics, build_metrics
from scoring.policy import ALERT_DECISIONS, Policy, policy_for
from scoring.ports import ScoringModel
from scoring.reasons import top_reasons
from scoring.state_store import StateStore, features_for
from streams.delivery import ProducerLike
from streams.schema import Transaction
from streams.serde import dumps

log = logging.getLogger("fraudstream.scoring.api")


class RegistryLike(Protocol):
    """The part of :class:`models.registry.ModelRegistry` the API uses."""

    def list_versions(self, name: str | None = None) -> list[Any]: ...


@dataclass
class ApiDeps:
    settings: Settings
    states: StateStore
    load_model: Callable[[], ScoringModel]
    model_version: Callable[[], str | None] | None = None
    producer: ProducerLike | None = None
    registry: RegistryLike | None = None
    ops: ModelOps | None = None  # promote, rollback, canary (scoring.api_models)
    online: OnlineModelHandle | None = None
    kafka_ready: Callable[[], bool] = lambda: False
    metrics: ScoringMetrics = field(default_factory=build_metrics)
    closers: list[Callable[[], Any]] = field(default_factory=list)
    active: tuple[ScoringModel, Policy] | None = None  # swapped as one reference

    @property
    def model(self) -> ScoringModel | None:
        return self.active[0] if self.active else None

    def open(self) -> None:
        """Load the champion and the online snapshot; failures leave /readyz red."""
        try:
            self._use(self.load_model())
        except FraudstreamError as exc:
            log.error("no champion loaded yet: %s", exc)
            self.metrics.errors.labels(component="api", reason="model").inc()
        if self.online is not None:
            self.online.maybe_reload(force=True)
            self._export_online()

    def _use(self, model: ScoringModel) -> None:
        s = self.settings
        policy = policy_for(s.review_threshold, s.decline_threshold,
                            model.metrics.get("budget_threshold"))
        self.active = (model, policy)
        self.metrics.set_model_version("batch", s.model_name, model.version)
        log.info("API scoring with %s v%s, %s", s.model_name, model.version, policy)

    def _export_online(self) -> None:
        if self.online is not None and self.online.version is not None:
            self.metrics.set_model_version("online", "river", self.online.version)
            self.metrics.online_weight.set(self.online.weight)

    def refresh(self) -> None:
        """Hot swap: a moved champion alias or a new online snapshot (called periodically)."""
        try:
            current = self.model.version if self.model else None
            wanted = self.model_version() if self.model_version else None
            if self.model is None or (wanted is not None and wanted != current):
                self._use(self.load_model())
                self.metrics.model_swaps.labels(role="batch").inc()
        except FraudstreamError as exc:
            log.warning("champion refresh failed: %s", exc)
            self.metrics.errors.labels(component="api", reason="model").inc()
        if self.online is not None and self.online.maybe_reload():
            self.metrics.model_swaps.labels(role="online").inc()
            self._export_online()

    def score(self, txn: Transaction) -> dict[str, Any]:
        """Decide ``txn`` now; publish it to ``transactions`` when configured (see docs)."""
        active = self.active
        if active is None:
            raise ModelError("no champion model loaded")
        model, policy = active
        vector = features_for(self.states, txn)
        matrix = np.asarray([vector], dtype=np.float64)
        if not np.isfinite(matrix).all():  # never score (or 500 on) a non-finite vector
            bad = [n for n, v in zip(FEATURE_NAMES, vector, strict=True) if not np.isfinite(v)]
            raise InvalidInput(f"amount: the transaction's features are not finite "
                               f"({', '.join(bad[:3])}); check amount and event_time")
        # One row: XGBoost's default OpenMP pool costs ~10 ms per DMatrix on a busy 2-core
        # box; the (thread-local) config pins it to xgb_nthread for this request.
        with xgboost.config_context(nthread=self.settings.xgb_nthread):
            xgb = np.asarray(model.booster.inplace_predict(matrix), dtype=np.float64)
            online_p = None
            combined = xgb
            if self.online is not None:
                combined, online_p = self.online.combine(xgb, matrix)
            decision = policy.decide(float(combined[0]))
            reasons: list[dict[str, Any]] = []
            if decision in ALERT_DECISIONS:
                reasons = top_reasons(model.booster, matrix, model.feature_names,
                                      self.settings.top_reasons)[0]
        published = False
        if self.settings.api_publish_transactions and self.producer is not None:
            self._publish(txn)
            published = True
        self.metrics.decisions.labels(source="api", decision=decision).inc()
        return {
            "transaction_id": txn.transaction_id,
            "score": round(float(combined[0]), 6),
            "scores": {"batch": round(float(xgb[0]), 6),
                       "online": None if online_p is None else round(float(online_p[0]), 6)},
            "decision": decision,
            "reasons": reasons,
            "model_version": {"batch": model.version,
                              "online": self.online.version if self.online else None},
            "published": published,
        }

    def _publish(self, txn: Transaction) -> None:
        assert self.producer is not None  # noqa: S101 - checked by the caller
        record = txn.to_record()
        record["ingest_ms"] = int(time.time() * 1000)
        try:
            self.producer.produce(self.settings.topic_transactions, value=dumps(record),
                                  key=txn.card_id.encode(), on_delivery=self._delivered)
            self.producer.poll(0)
        except (BufferError, Exception) as exc:  # noqa: BLE001 - reported, decision stands
            log.error("could not publish %s: %s", txn.transaction_id, exc)
            self.metrics.errors.labels(component="api", reason="service").inc()

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            log.error("transaction not delivered to Kafka: %s", err)
            self.metrics.errors.labels(component="api", reason="service").inc()

    def send_label(self, record: dict[str, Any], timeout: float = 5.0) -> None:
        """Produce one label keyed by card_id and wait for the broker's acknowledgement."""
        if self.producer is None:
            raise ServiceError("kafka: no producer configured")
        failures: list[str] = []
        self.producer.produce(
            self.settings.topic_labels, value=dumps(record), key=str(record["card_id"]).encode(),
            on_delivery=lambda err, msg: failures.append(str(err)) if err else None)
        if self.producer.flush(timeout) > 0 or failures:
            raise ServiceError(f"kafka: label not acknowledged ({failures or 'timeout'})")

    def readiness(self) -> dict[str, bool]:
        return {"kafka": self.kafka_ready(), "redis": self.states.ping(),
                "model": self.model is not None}

    def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception as exc:  # noqa: BLE001 - best effort on shutdown
                log.warning("error while closing: %s", exc)


def build_deps(settings: Settings, metrics: ScoringMetrics | None = None) -> ApiDeps:
    """Real dependencies from settings (clients are created lazily, nothing connects yet)."""
    from models.online import CombineRule
    from models.online_snapshot import SnapshotStore
    from models.registry import ModelRegistry
    from scoring.state_store import RedisStateStore
    from streams.clients import make_admin, make_producer

    registry = ModelRegistry(settings)
    states = RedisStateStore(settings)
    producer = make_producer(settings, linger_ms=1)
    admin = make_admin(settings)

    def kafka_ready() -> bool:
        try:
            admin.list_topics(topic=settings.topic_labels, timeout=2.0)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    online = OnlineModelHandle(
        SnapshotStore(settings.state_dir / "online", settings.online_keep_snapshots),
        CombineRule(settings.online_weight, settings.online_warmup_frauds),
        reload_seconds=0.0,  # refresh() is already periodic
    )
    return ApiDeps(
        settings=settings, states=states, load_model=lambda: registry.load("champion"),
        model_version=lambda: registry.alias_version("champion"), producer=producer,
        registry=registry, ops=RegistryOps(settings, registry), online=online,
        kafka_ready=kafka_ready,
        metrics=metrics or build_metrics(),
        closers=[states.close, lambda: producer.flush(5)],
    )
