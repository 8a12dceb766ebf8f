"""The console's Kafka reader: ``alerts``, ``scores`` and ``labels`` into the case store.

One consumer thread, owned by the API app's lifespan (:meth:`AlertFeed.start` /
:meth:`AlertFeed.stop`). It reads committed records only (the scorer writes in Kafka
transactions) under a group of its own that never commits: each start rebuilds the queue
from the topics (alerts and labels from their beginning, bounded by retention and the
store's capacity; ``scores`` from its last ``SCORES_BACKLOG`` records per partition, enough
for the cards' recent transactions). A record that does not decode is counted and skipped:
the console never stops on bad input.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from infra.settings import Settings
from scoring.console.store import AlertStore

log = logging.getLogger("fraudstream.scoring.console")

SCORES_BACKLOG = 20_000


class AlertFeed:
    def __init__(self, settings: Settings, store: AlertStore,
                 consumer_factory: Callable[..., Any] | None = None) -> None:
        self.settings = settings
        self.store = store
        self._factory = consumer_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set once partitions are assigned

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="console-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _consumer(self) -> Any:
        if self._factory is not None:
            return self._factory()
        from streams.clients import make_consumer

        return make_consumer(self.settings, f"fraudstream-console-{uuid.uuid4().hex[:10]}",
                             session_timeout_ms=10_000)

    def _run(self) -> None:
        s = self.settings
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            s.topic_alerts: self.store.add_alert, s.topic_scores: self.store.add_score,
            s.topic_labels: self.store.add_label}
        while not self._stop.is_set():
            try:
                consumer = self._consumer()
            except Exception as exc:  # noqa: BLE001 - a broker outage: wait and retry
                log.warning("console feed: cannot create a consumer: %s", exc)
                self._stop.wait(5.0)
                continue
            try:
                consumer.subscribe(list(handlers), on_assign=self._on_assign)
                while not self._stop.is_set():
                    for message in consumer.consume(500, 0.5):
                        if message.error() is not None:
                            continue
                        self._handle(handlers, message)
            except Exception as exc:  # noqa: BLE001 - recreate the consumer, keep serving
                log.warning("console feed: consumer failed, recreating it: %s", exc)
                self._stop.wait(2.0)
            finally:
                try:
                    consumer.close()
                except Exception:  # noqa: BLE001, S110 - closing a broken consumer
                    pass

    def _handle(self, handlers: dict[str, Callable[[dict[str, Any]], Any]],
                message: Any) -> None:
        try:
            record = json.loads(message.value() or b"")
        except (ValueError, RecursionError):
            self.store.counters["malformed"] += 1
            return
        if isinstance(record, dict):
            handlers[message.topic()](record)
        else:
            self.store.counters["malformed"] += 1

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            if tp.topic == self.settings.topic_scores:
                try:
                    low, high = consumer.get_watermark_offsets(tp, timeout=5.0)
                    tp.offset = max(low, high - SCORES_BACKLOG)
                except Exception as exc:  # noqa: BLE001 - default to the earliest offset
                    log.warning("console feed: no watermarks for %s: %s", tp, exc)
        consumer.assign(partitions)
        self.ready.set()
