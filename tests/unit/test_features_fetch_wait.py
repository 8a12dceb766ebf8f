"""The feature worker's consumer does not wait faust's fixed 1.5 s on a fetch."""

from __future__ import annotations

import asyncio

from features.worker import create_app
from infra.settings import Settings


def test_the_worker_consumer_waits_at_most_the_configured_fetch_wait() -> None:
    async def fetch_wait(wait_ms: int) -> int:
        app = create_app(Settings(feature_fetch_wait_ms=wait_ms), online=object())  # type: ignore[arg-type]
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert asyncio.run(fetch_wait(42)) == 42
    assert asyncio.run(fetch_wait(7)) == 7  # applied again: the last app's setting wins
    assert Settings().feature_fetch_wait_ms == 50
