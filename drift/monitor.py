"""Drift monitor worker: ``scores`` -> windows -> PSI/KS verdicts -> ``drift``, metrics, report.

A thin adapter around the pure core (:mod:`drift.windows`, :mod:`drift.detect`). Per closed
window it publishes one record per column to the ``drift`` topic (:mod:`drift.records`),
sets the Prometheus gauges (:mod:`drift.metrics`), writes a Markdown report into
``state_dir/drift/`` (:mod:`drift.report`) and updates the sustained-drift tracker that
retrain triggers read (``monitor.status``: ``drift_sustained_windows`` of the last
``drift_sustained_lookback`` windows at ``alert``).

:meth:`DriftMonitor.run` loops on :meth:`~DriftMonitor.poll`. A caller that knows event time
has passed a window's end (a replay stepping day by day, where no later record arrives to
move the watermark) drives the monitor with ``poll`` and :meth:`~DriftMonitor.advance`.

Offsets: after a window is published, each partition's offset is committed up to its oldest
record still in an open window, so a restart re-reads what it has not yet judged (a window
may then be published twice; consumers key on ``window.start``). Windows are global
statistics: run one monitor per consumer group (it costs a few ms per window).

The reference comes from ``reference()`` (default: the champion's ``reference_profile.json``
through :class:`models.registry.ModelRegistry`) and is reloaded when ``reference_version()``
reports another version, checked after each window. Invalid score records are counted and
skipped: ``scores`` is written by our own scorer, so there is nothing to dead-letter to.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from drift.detect import SEVERITY_RANK, DriftThresholds, WindowReport, evaluate_window
from drift.metrics import DriftMetrics, default_metrics
from drift.records import Observation, drift_records, observation
from drift.reference import Reference
from drift.report import write_report
from drift.sustained import SustainedDrift, SustainedStatus
from drift.windows import CountWindower, EventTimeWindower, Window
from infra.metrics_http import serve_metrics
from infra.settings import Settings
from streams.clients import make_consumer, make_producer
from streams.isolation import RecordGuard
from streams.serde import dumps

log = logging.getLogger("fraudstream.drift.monitor")


def thresholds_from(settings: Settings) -> DriftThresholds:
    s = settings
    return DriftThresholds(
        psi_warn=s.drift_psi_warn,
        psi_alert=s.drift_psi_alert,
        ks_alpha=s.drift_ks_alpha,
        ks_min_statistic=s.drift_ks_min_statistic,
        correction=s.drift_correction,
        min_rows=s.drift_min_rows,
        skip=tuple(s.drift_skip_columns),
    )


def registry_reference(
    settings: Settings,
) -> tuple[Callable[[], Reference], Callable[[], str | None]]:
    """``(load, version)`` of the ``drift_reference_alias`` version in the MLflow registry."""
    from models.registry import ModelRegistry  # MLflow is imported only when used

    registry = ModelRegistry(settings)
    alias = settings.drift_reference_alias

    def load() -> Reference:
        version, profile = registry.load_reference(alias)
        return Reference.from_profile(profile, version)

    return load, lambda: registry.alias_version(alias)


class DriftMonitor:
    """Owns its consumer and producer; :meth:`run` loops until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        reference: Callable[[], Reference] | None = None,
        reference_version: Callable[[], str | None] | None = None,
        *,
        metrics: DriftMetrics | None = None,
        sustained: SustainedDrift | None = None,
        report_dir: Path | None = None,
    ) -> None:
        if reference is None:
            reference, reference_version = registry_reference(settings)
        self.settings = settings
        self.thresholds = thresholds_from(settings)
        self._load_reference = reference
        self._reference_version = reference_version
        self.metrics = metrics or default_metrics()
        self.sustained = sustained or SustainedDrift(
            settings.drift_sustained_windows, settings.drift_sustained_lookback)
        self.status: SustainedStatus | None = None  # sustained columns after the last window
        self.report_dir = report_dir or settings.state_dir / "drift"
        self.reference: Reference | None = None
        self.windower = self._windower()
        self.reports: list[WindowReport] = []  # of this process, newest last
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        # One try: adding to a window is not idempotent, and a score record's parse is
        # deterministic, so a retry could only double-count (a failure is skipped, counted).
        self._guard = RecordGuard(None, tries=1)

    def _windower(self) -> CountWindower[Observation] | EventTimeWindower[Observation]:
        s = self.settings
        if s.drift_window == "count":
            return CountWindower(s.drift_window_rows, lambda o: o.event_ms)
        return EventTimeWindower(
            s.drift_window_seconds * 1000,
            lambda o: o.event_ms,
            s.drift_lateness_seconds * 1000,
            partition_of=lambda o: o.partition,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.reference = self._load_reference()
        s = self.settings
        self._producer = make_producer(s)
        self._consumer = make_consumer(s, s.consumer_group_drift, enable_partition_eof=True)
        self._consumer.subscribe(
            [s.topic_scores], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        log.info("drift monitor: reference version %s", self.reference.model_version)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None

    def run(self, stop: threading.Event | None = None, batch: int = 500) -> None:
        stop = stop or threading.Event()
        if self._consumer is None:
            self.start()
        try:
            while not stop.is_set():
                self.poll(0.2, batch)
        finally:
            self.close()

    def poll(self, timeout: float = 0.2, batch: int = 500) -> list[Message]:
        """Read and window one batch (what :meth:`run` repeats); returns what was read, so a
        caller that drives the monitor itself (the demo) sees the same records."""
        if self._consumer is None:
            raise RuntimeError("drift monitor not started (or closed): call start() first")
        messages: list[Message] = self._consumer.consume(batch, timeout)
        self.process(messages)
        return messages

    def advance(self, watermark_ms: int) -> list[WindowReport]:
        """Event time has reached ``watermark_ms`` and every earlier record has been read
        (a replay at a day boundary): judge, publish and commit the windows ending by then.
        Count windows close by size only: nothing to do for them."""
        if not isinstance(self.windower, EventTimeWindower):
            return []
        reports = [self.judge(w) for w in self.windower.advance(watermark_ms)]
        if reports:
            self._commit()
        return reports

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if isinstance(self.windower, EventTimeWindower):
            self.windower.expect([tp.partition for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if isinstance(self.windower, EventTimeWindower):
            self.windower.forget([tp.partition for tp in partitions])

    # -- per batch ------------------------------------------------------------------------
    def process(self, messages: list[Message]) -> list[WindowReport]:
        """Window ``messages``; judge, publish and commit every window they close."""
        closed: list[Window[Observation]] = []
        for m in messages:
            err = m.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                if isinstance(self.windower, EventTimeWindower):
                    closed += self.windower.idle(m.partition() or 0)
                continue
            if err is not None:
                log.warning("consumer error: %s", err)
                continue
            # A bad record is skipped (logged with its position, counted "invalid"), an
            # unexpected failure retried a bounded number of times, then skipped the same
            # way: no record can stop the monitor (streams.isolation).
            late = self.windower.late
            ok, added = self._guard.run(m, partial(self._add, m))
            if not ok:
                self.metrics.records.labels("invalid").inc()
                continue
            closed += added or []
            self.metrics.records.labels("late" if self.windower.late > late else "windowed").inc()
        reports = [self.judge(w) for w in closed]
        if reports:
            self._commit()
        return reports

    def _add(self, m: Message) -> list[Window[Observation]]:
        obs = observation(m.value(), m.partition() or 0, m.offset() or 0)
        return self.windower.add(obs)

    def judge(self, window: Window[Observation]) -> WindowReport:
        """Evaluate one window and publish its verdicts everywhere."""
        reference = self._current_reference()
        names = reference.names
        values = {
            n: np.fromiter(
                (o.values.get(n, np.nan) for o in window.items), float, len(window.items)
            )
            for n in names
        }
        versions = Counter(o.version or "unknown" for o in window.items)
        started = time.perf_counter()
        report = evaluate_window(
            values,
            reference,
            self.thresholds,
            start_ms=window.start_ms,
            end_ms=window.end_ms,
            scored_by=dict(versions),
        )
        self.metrics.evaluation_seconds.observe(time.perf_counter() - started)
        self._publish(report)
        self.reports.append(report)
        return report

    def _publish(self, report: WindowReport) -> None:
        kind = self.settings.drift_window
        if self._producer is not None:
            for key, value in drift_records(report, self.thresholds, kind):
                self._producer.produce(self.settings.topic_drift, key=key, value=dumps(value))
            self._producer.flush(30)
        status = self.status = self.sustained.update(report)
        m = self.metrics
        for c in report.columns:
            m.psi.labels(c.column).set(c.psi)
            m.ks_statistic.labels(c.column).set(c.ks_statistic)
            m.ks_pvalue.labels(c.column).set(c.ks_pvalue_adjusted)
            m.severity.labels(c.column).set(SEVERITY_RANK[c.severity])
            m.sustained.labels(c.column).set(1.0 if c.column in status.columns else 0.0)
        m.window_rows.set(report.rows)
        m.window_end.set(report.end_ms / 1000)
        m.windows.labels(report.severity).inc()
        path = write_report(report, self.thresholds, self.report_dir, self.reference)
        log.info(
            "window %s: %s %s -> %s", report.start_ms, report.severity, list(report.drifting), path
        )

    def _current_reference(self) -> Reference:
        if self.reference is None:
            self.reference = self._load_reference()
        elif self._reference_version is not None:
            version = self._reference_version()
            if version is not None and version != self.reference.model_version:
                log.info("reference moves: %s -> %s", self.reference.model_version, version)
                self.reference = self._load_reference()
                self.sustained.reset()
        return self.reference

    def _commit(self) -> None:
        """Commit each partition up to its oldest record that is still in an open window."""
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        if not assigned:
            return
        oldest: dict[int, int] = {}
        for o in self.windower.open_items():
            oldest[o.partition] = min(oldest.get(o.partition, o.offset), o.offset)
        offsets = []
        for tp in consumer.position(assigned):
            if tp.offset < 0 and tp.partition not in oldest:
                continue
            offsets.append(
                TopicPartition(tp.topic, tp.partition, oldest.get(tp.partition, tp.offset))
            )
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=False)


def serve(settings: Settings, stop: threading.Event | None = None) -> DriftMonitor:
    """Run a monitor on the registry's reference until ``stop``; the CLI entry point.

    Serves ``/metrics`` on ``drift_metrics_port`` (0 = not served) from the global registry.
    """
    serve_metrics(settings.drift_metrics_port, settings.metrics_host)
    monitor = DriftMonitor(settings)
    monitor.run(stop)
    return monitor
