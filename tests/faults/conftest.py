"""The fault suite: real Kafka and Redis (the integration fixtures), marked ``integration``.

CI runs a reduced size; ``make chaos`` (``FRAUDSTREAM_CHAOS=full``) the full size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import service_settings, settings, topic_factory  # noqa: F401

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)
