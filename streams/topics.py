"""The topic catalog and its explicit, idempotent creation.

Topics are created on purpose, never by broker auto-creation, so partition counts and retention
are what the design says. Every card-keyed topic (transactions, scores, alerts, labels) has
``settings.topic_partitions`` partitions: the same card hashes to the same partition number
everywhere, which keeps per-card order and lets label/decision joins stay co-partitioned.
The dead-letter and drift topics are low volume and get one partition.

:func:`catalog` is pure (settings in, specs out). :func:`ensure_topics` creates what is missing,
accepts topics that already exist (also when another process wins the race), refuses an
existing topic whose partition count differs (:class:`~infra.errors.ConfigurationError`:
re-partitioning would move cards between partitions), and returns once metadata shows every
topic with a leader for each partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from infra.errors import ConfigurationError, ServiceError
from infra.settings import Settings

DAY_MS = 24 * 3600 * 1000
_CONFIG_ERRORS = {
    KafkaError.INVALID_REPLICATION_FACTOR,
    KafkaError.INVALID_PARTITIONS,
    KafkaError.INVALID_CONFIG,
    KafkaError.POLICY_VIOLATION,
    KafkaError.TOPIC_EXCEPTION,  # invalid topic name
}


class AdminLike(Protocol):
    """The two ``AdminClient`` calls used here (unit tests inject a fake)."""

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...

    def create_topics(
        self, new_topics: list[NewTopic], **kwargs: Any
    ) -> dict[str, Future[Any]]: ...


@dataclass(frozen=True)
class TopicSpec:
    """One topic: ``role`` is the catalog's name for it, ``name`` the configured topic name."""

    role: str
    name: str
    partitions: int
    replication: int
    config: Mapping[str, str] = field(default_factory=dict)
    key: str = "card_id"

    def new_topic(self) -> NewTopic:
        return NewTopic(self.name, self.partitions, self.replication, config=dict(self.config))


def catalog(settings: Settings) -> tuple[TopicSpec, ...]:
    """Every external topic of the design, in pipeline order."""

    def spec(
        role: str, name: str, retention_days: int, *, partitions: int = 0, key: str = "card_id"
    ) -> TopicSpec:
        config = {"cleanup.policy": "delete", "retention.ms": str(retention_days * DAY_MS)}
        if settings.topic_replication >= 3:
            config["min.insync.replicas"] = "2"
        return TopicSpec(
            role=role,
            name=name,
            partitions=partitions or settings.topic_partitions,
            replication=settings.topic_replication,
            config=config,
            key=key,
        )

    return (
        spec("transactions", settings.topic_transactions, 7),
        spec("dlq", settings.topic_dlq, 30, partitions=1, key="original key"),
        spec("scores", settings.topic_scores, 30),
        spec("alerts", settings.topic_alerts, 90),
        # Chargebacks arrive months late and labels are training data: keep them a year.
        spec("labels", settings.topic_labels, 365),
        spec("labels_dlq", settings.topic_labels_dlq, 30, partitions=1, key="original key"),
        spec("drift", settings.topic_drift, 90, partitions=1, key="feature or 'score'"),
    )


def changelog_spec(settings: Settings) -> TopicSpec:
    """The stream stage's card-state changelog: compacted, one partition per card partition
    (partition ``p`` holds the states of the cards of ``transactions[p]``)."""
    return TopicSpec(
        role="card_changelog", name=settings.topic_card_changelog,
        partitions=settings.topic_partitions, replication=settings.topic_replication,
        config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0",
                "segment.ms": str(3_600_000)},
    )


def topic_for(specs: Iterable[TopicSpec], role: str) -> TopicSpec:
    """The spec with ``role`` (``KeyError`` naming the known roles if absent)."""
    specs = tuple(specs)
    for spec in specs:
        if spec.role == role:
            return spec
    raise KeyError(f"no topic with role {role!r}; known: {[s.role for s in specs]}")


@dataclass(frozen=True)
class _State:
    partitions: int
    ready: bool  # no topic error and every partition has a leader


def _states(admin: AdminLike, timeout: float) -> dict[str, _State]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ServiceError(f"Kafka metadata unavailable: {exc}") from None
    states = {}
    for name, topic in metadata.topics.items():
        parts = topic.partitions.values()
        ready = topic.error is None and all(p.error is None and p.leader >= 0 for p in parts)
        states[name] = _State(partitions=len(topic.partitions), ready=ready and bool(parts))
    return states


def _check_partitions(spec: TopicSpec, actual: int) -> None:
    if actual != spec.partitions:
        raise ConfigurationError(
            f"topic {spec.name!r} ({spec.role}) exists with {actual} partitions but the catalog "
            f"wants {spec.partitions}; keyed topics cannot be re-partitioned in place: set "
            f"FRAUDSTREAM_TOPIC_PARTITIONS={actual} or recreate the topic"
        )


def _error_code(exc: BaseException) -> int | None:
    err = exc.args[0] if exc.args else None
    return err.code() if isinstance(err, KafkaError) else None


def ensure_topics(
    admin: AdminLike, specs: Iterable[TopicSpec], *, timeout: float = 30.0
) -> list[str]:
    """Create missing topics and wait until all are usable; return the names created here.

    Raises :class:`ConfigurationError` for a partition-count mismatch or a spec the cluster
    rejects (e.g. replication above the broker count), :class:`ServiceError` when Kafka is
    unreachable or the topics do not become ready within ``timeout`` seconds.
    """
    specs = tuple(specs)
    deadline = time.monotonic() + timeout
    existing = _states(admin, timeout)
    for spec in specs:
        state = existing.get(spec.name)
        if state is not None and state.partitions:
            _check_partitions(spec, state.partitions)
    missing = [s for s in specs if s.name not in existing]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [s.new_topic() for s in missing], operation_timeout=timeout, request_timeout=timeout
        )
        for spec in missing:
            try:
                futures[spec.name].result(timeout=timeout)
                created.append(spec.name)
            except KafkaException as exc:
                code = _error_code(exc)
                if code == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # created concurrently; its partitions are checked below
                kind = ConfigurationError if code in _CONFIG_ERRORS else ServiceError
                raise kind(f"cannot create topic {spec.name!r}: {exc}") from None
    _wait_ready(admin, specs, deadline)
    return created


def _wait_ready(admin: AdminLike, specs: tuple[TopicSpec, ...], deadline: float) -> None:
    """Poll metadata until every topic shows all its partitions with a leader."""
    while True:
        states = _states(admin, max(1.0, deadline - time.monotonic()))
        pending = []
        for spec in specs:
            state = states.get(spec.name)
            if state is None or not state.ready:
                pending.append(spec.name)
            else:
                _check_partitions(spec, state.partitions)
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise ServiceError(f"topics not ready within the timeout: {', '.join(pending)}")
        time.sleep(0.1)
