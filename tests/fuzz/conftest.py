"""Fuzz fixtures: real Kafka and Redis, like ``tests/integration`` (marked ``integration``).

The services are *package*-scoped here, so a full ``pytest tests`` run stops them before the
integration session starts its own (never two brokers at once on a small machine). Same rule
as the integration suite: in CI (``CI`` set) or with ``FRAUDSTREAM_REQUIRE_SERVICES=1``,
services that cannot start fail the run, never a silent skip.

Size: ``FRAUDSTREAM_FUZZ_CASES`` hostile transactions (default 600, what CI runs; ``make
fuzz`` runs 5,000), a third as many hostile labels, and half as many valid transactions.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.services import redis_url
from infra.settings import Settings
from tests.integration.conftest import services_or_skip

HERE = Path(__file__).resolve().parent
DEFAULT_CASES = 600


def fuzz_cases() -> int:
    return int(os.environ.get("FRAUDSTREAM_FUZZ_CASES", DEFAULT_CASES))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="package")
def fuzz_services() -> Iterator[Settings]:
    with services_or_skip() as settings:
        yield settings


@pytest.fixture(scope="module")
def fuzz_settings(fuzz_services: Settings, tmp_path_factory: pytest.TempPathFactory
                  ) -> Settings:
    """The services with this module's own topics, groups, state dir and Feast project."""
    suffix = uuid.uuid4().hex[:8]
    unique = {name: f"{value}-{suffix}" for name, value in fuzz_services
              if name.startswith(("topic_", "consumer_group_")) and isinstance(value, str)}
    return fuzz_services.model_copy(update={
        **unique,
        "state_dir": tmp_path_factory.mktemp("fuzz") / "state",
        "stream_metrics_port": 0, "drift_metrics_port": 0, "learner_metrics_port": 0,
        "kafka_bootstrap": fuzz_services.bootstrap_servers,
        "redis_url": redis_url(fuzz_services),
        "feast_project": f"fuzz_{suffix}",
        "online_snapshot_seconds": 2.0,
    })
