"""Integration fixtures: real Kafka and Redis for the session, isolated names per test.

Everything under ``tests/integration`` is marked ``integration``. Where the services come
from is chosen by ``infra.testing`` (``FRAUDSTREAM_TEST_SERVICES``). When they cannot be
provided the tests are skipped with the reason, except in CI (``CI`` set) or with
``FRAUDSTREAM_REQUIRE_SERVICES=1``, where the session fails instead: never a silent skip.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from infra.errors import ServiceError
from infra.services import redis_url
from infra.services.process import wait_for
from infra.settings import Settings
from infra.testing import running_services, services_required

HERE = Path(__file__).resolve().parent

TopicFactory = Callable[..., str]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs Kafka, Redis, MLflow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@contextmanager
def services_or_skip() -> Iterator[Settings]:
    """Running Kafka and Redis; without them the test fails in CI and skips elsewhere."""
    with ExitStack() as stack:
        try:
            settings = stack.enter_context(running_services())
        except ServiceError as exc:
            reason = f"Kafka/Redis could not be started: {exc}"
            if services_required():
                pytest.fail(
                    f"{reason}\n(CI or FRAUDSTREAM_REQUIRE_SERVICES=1: failing, not skipping)"
                )
            pytest.skip(f"{reason}\n(set FRAUDSTREAM_REQUIRE_SERVICES=1 to fail instead)")
        yield settings


@pytest.fixture(scope="session")
def service_settings() -> Iterator[Settings]:
    """Settings of the session's running Kafka and Redis (MLflow: sqlite in its state dir)."""
    with services_or_skip() as settings:
        yield settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(service_settings: Settings, tmp_path: Path) -> Settings:
    """The session's services with this test's own topics, consumer groups and state dir.

    Kafka and Redis are pinned as external addresses, so code under test that calls
    ``start_services``/``stop_services`` leaves the session's processes alone.
    """
    suffix = uuid.uuid4().hex[:8]
    unique = {
        name: f"{value}-{suffix}"
        for name, value in service_settings
        if name.startswith(("topic_", "consumer_group_")) and isinstance(value, str)
    }
    return service_settings.model_copy(
        update={
            **unique,
            "state_dir": tmp_path / "state",
            # Redis keys (terminal states, id registry, late log) live under the project: a
            # test of its own sees no other test's transactions or terminals
            "feast_project": f"t_{suffix}",
            # no fixed ports: tests may run beside a demo or another test session
            "stream_metrics_port": 0,
            "drift_metrics_port": 0,
            "learner_metrics_port": 0,
            "api_port": _free_port(),
            "kafka_bootstrap": service_settings.bootstrap_servers,
            "redis_url": redis_url(service_settings),
        }
    )


@pytest.fixture
def topic_factory(settings: Settings) -> Iterator[TopicFactory]:
    """``create(name=None, partitions=1, config=None) -> name``: a topic that exists on return.

    Topics created here are deleted after the test (best effort).
    """
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    created: list[str] = []

    def create(
        name: str | None = None, partitions: int = 1, config: dict[str, str] | None = None
    ) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        topic = NewTopic(name, partitions, settings.topic_replication, config=config or {})
        admin.create_topics([topic], operation_timeout=30)[name].result(timeout=60)
        created.append(name)

        def visible() -> bool:
            try:
                meta = admin.list_topics(topic=name, timeout=5).topics.get(name)
            except KafkaException:
                return False
            return meta is not None and meta.error is None and len(meta.partitions) == partitions

        if not wait_for(visible, 30.0, 0.1):
            raise ServiceError(f"topic {name} not visible with {partitions} partitions after 30s")
        return name

    yield create
    if created:
        for future in admin.delete_topics(created, operation_timeout=30).values():
            try:
                future.result(timeout=30)
            except KafkaException:
                pass  # already gone or broker going down; nothing to clean
