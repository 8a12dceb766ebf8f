"""Topic catalog (pure) and ensure_topics against a fake AdminClient."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from infra.errors import ConfigurationError, ServiceError
from infra.settings import Settings
from streams.topics import DAY_MS, TopicSpec, catalog, ensure_topics, topic_for

CARD_KEYED = ("transactions", "scores", "alerts", "labels")


class FakeAdmin:
    """In-memory cluster: topic -> partitions; new topics get leaders after ``lag`` polls."""

    def __init__(self, topics: dict[str, int] | None = None, lag: int = 0) -> None:
        self.topics: dict[str, int] = dict(topics or {})
        self.leaderless: dict[str, int] = {}
        self.lag = lag
        self.created: list[Any] = []
        self.create_errors: dict[str, KafkaError] = {}
        self.list_error: KafkaException | None = None
        self.sneak_in: dict[str, int] = {}  # created by "another process" during create

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if self.list_error is not None:
            raise self.list_error
        topics = {}
        for name, count in self.topics.items():
            waiting = self.leaderless.get(name, 0)
            if waiting:
                self.leaderless[name] = waiting - 1
            leader = -1 if waiting else 0
            parts = {i: SimpleNamespace(error=None, leader=leader) for i in range(count)}
            topics[name] = SimpleNamespace(error=None, partitions=parts)
        return SimpleNamespace(topics=topics)

    def create_topics(self, new_topics: list[Any], **kwargs: Any) -> dict[str, Future[None]]:
        futures: dict[str, Future[None]] = {}
        self.topics.update(self.sneak_in)
        for new in new_topics:
            self.created.append(new)
            future: Future[None] = Future()
            if new.topic in self.create_errors:
                future.set_exception(KafkaException(self.create_errors[new.topic]))
            elif new.topic in self.topics:
                future.set_exception(KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS)))
            else:
                self.topics[new.topic] = new.num_partitions
                self.leaderless[new.topic] = self.lag
                future.set_result(None)
            futures[new.topic] = future
        return futures


@pytest.fixture
def settings() -> Settings:
    return Settings(
        topic_partitions=6,
        topic_replication=1,
        topic_transactions="tx-a",
        topic_dlq="tx-a.dlq",
        topic_scores="scores",
        topic_alerts="alerts",
    )


def test_catalog_covers_every_design_topic(settings: Settings) -> None:
    specs = catalog(settings)
    assert [s.role for s in specs] == [
        "transactions", "dlq", "scores", "alerts", "labels", "labels_dlq",
        "drift",
    ]  # fmt: skip
    names = [s.name for s in specs]
    assert len(set(names)) == len(names)
    assert topic_for(specs, "transactions").name == "tx-a"
    assert topic_for(specs, "dlq").name == "tx-a.dlq"
    assert topic_for(specs, "scores").name == settings.topic_scores


def test_card_keyed_topics_are_co_partitioned(settings: Settings) -> None:
    specs = catalog(settings)
    for role in CARD_KEYED:
        spec = topic_for(specs, role)
        assert (spec.partitions, spec.key) == (6, "card_id"), role
    assert topic_for(specs, "dlq").partitions == 1
    assert topic_for(specs, "drift").partitions == 1


def test_topic_configs_are_explicit_strings(settings: Settings) -> None:
    for spec in catalog(settings):
        assert spec.config["cleanup.policy"] == "delete"
        retention = int(spec.config["retention.ms"])
        assert retention >= 7 * DAY_MS and retention % DAY_MS == 0
        assert all(isinstance(v, str) for v in spec.config.values())
        assert "min.insync.replicas" not in spec.config
        assert spec.replication == 1
    assert int(topic_for(catalog(settings), "labels").config["retention.ms"]) == 365 * DAY_MS


def test_replicated_clusters_require_two_in_sync_replicas() -> None:
    specs = catalog(Settings(topic_replication=3, topic_partitions=3))
    assert all(s.config["min.insync.replicas"] == "2" and s.replication == 3 for s in specs)


def test_new_topic_carries_the_spec(settings: Settings) -> None:
    new = topic_for(catalog(settings), "scores").new_topic()
    assert (new.topic, new.num_partitions, new.replication_factor) == ("scores", 6, 1)
    assert new.config is not None and new.config["cleanup.policy"] == "delete"


def test_topic_for_unknown_role_names_the_known_ones(settings: Settings) -> None:
    with pytest.raises(KeyError, match="known: .*transactions"):
        topic_for(catalog(settings), "nope")


def test_ensure_topics_creates_missing_and_is_idempotent(settings: Settings) -> None:
    admin = FakeAdmin(topics={"tx-a": 6}, lag=3)  # new topics need 3 polls to get leaders
    created = ensure_topics(admin, catalog(settings), timeout=5)
    assert "tx-a" not in created and len(created) == len(catalog(settings)) - 1
    assert admin.topics["tx-a.dlq"] == 1 and admin.topics["scores"] == 6
    assert all(v == 0 for v in admin.leaderless.values())  # waited until leaders were there
    assert ensure_topics(admin, catalog(settings), timeout=5) == []
    assert len(admin.created) == len(catalog(settings)) - 1


def test_existing_topic_with_other_partition_count_is_a_configuration_error(
    settings: Settings,
) -> None:
    admin = FakeAdmin(topics={"scores": 4})
    with pytest.raises(
        ConfigurationError, match=r"'scores' \(scores\) exists with 4 partitions.*6"
    ):
        ensure_topics(admin, catalog(settings), timeout=1)
    assert admin.created == []  # refused before creating anything


def test_topic_created_concurrently_is_fine_if_it_matches(settings: Settings) -> None:
    admin = FakeAdmin()
    admin.sneak_in = {"alerts": 6}
    created = ensure_topics(admin, catalog(settings), timeout=5)
    assert "alerts" not in created and len(created) == len(catalog(settings)) - 1


def test_topic_created_concurrently_with_other_partitions_is_refused(settings: Settings) -> None:
    admin = FakeAdmin()
    admin.sneak_in = {"alerts": 2}
    with pytest.raises(ConfigurationError, match="'alerts'.*2 partitions"):
        ensure_topics(admin, catalog(settings), timeout=5)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (KafkaError.INVALID_REPLICATION_FACTOR, ConfigurationError),
        (KafkaError.INVALID_CONFIG, ConfigurationError),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, ServiceError),
    ],
)
def test_creation_errors_are_mapped(settings: Settings, code: int, error: type[Exception]) -> None:
    admin = FakeAdmin()
    admin.create_errors["scores"] = KafkaError(code)
    with pytest.raises(error, match="cannot create topic 'scores'"):
        ensure_topics(admin, catalog(settings), timeout=1)


def test_unreachable_kafka_is_a_service_error(settings: Settings) -> None:
    admin = FakeAdmin()
    admin.list_error = KafkaException(KafkaError(KafkaError._TRANSPORT))
    with pytest.raises(ServiceError, match="metadata unavailable"):
        ensure_topics(admin, catalog(settings), timeout=1)


def test_topics_that_never_get_leaders_time_out(settings: Settings) -> None:
    admin = FakeAdmin(lag=10**9)
    spec = TopicSpec(role="x", name="x", partitions=2, replication=1)
    with pytest.raises(ServiceError, match="not ready within the timeout: x"):
        ensure_topics(admin, [spec], timeout=0.3)
