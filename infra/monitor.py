"""The monitor process (``fraudstream monitor``): consumer lag and live detection quality.

One small process per deployment that watches the pipeline from outside the stream workers:
consumer lag of every worker's group (:mod:`infra.kafka_lag`, read at scrape time),
precision/recall at the alert budget on matured labels (:mod:`models.quality_monitor`) and
retrain triggers and promotions from the audit logs (:class:`models.ops_metrics.AuditCollector`). It
serves both on ``/metrics`` of ``monitor_metrics_port`` with ``/healthz`` and ``/readyz``
(ready once its consumer is assigned partitions). Runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from prometheus_client import CollectorRegistry

from infra.kafka_lag import ConsumerLagCollector
from infra.metrics_http import serve_metrics
from infra.settings import Settings
from models.ops_metrics import AuditCollector, QualityMetrics
from models.quality_monitor import QualityMonitor


def lag_groups(settings: Settings) -> tuple[str, ...]:
    """The groups whose lag is exported: the setting, or every worker's group."""
    if settings.monitor_lag_groups:
        return settings.monitor_lag_groups
    return (settings.consumer_group_stream,
            settings.consumer_group_learner, settings.consumer_group_drift,
            settings.consumer_group_quality)


def build_registry(settings: Settings) -> tuple[CollectorRegistry, QualityMetrics]:
    from streams.clients import make_admin

    audit = settings.state_dir / "audit"
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsumerLagCollector(
        make_admin(settings), lag_groups(settings), settings.monitor_lag_timeout_s))
    registry.register(AuditCollector(audit / "retrain_triggers.jsonl",
                                     audit / "model_aliases.jsonl"))
    return registry, QualityMetrics(registry)


def run_monitor(settings: Settings, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    registry, metrics = build_registry(settings)
    monitor = QualityMonitor(settings, metrics)
    serve_metrics(settings.monitor_metrics_port, settings.metrics_host, registry,
                  ready=lambda: monitor.assigned)
    monitor.run(stop)
