"""Prometheus metrics of the models package's processes: live quality and the retrainer.

Declared here, in one place, so alert rules and the dashboard
(``infra/deploy/prometheus``, ``infra/deploy/grafana``) have one source of names. Nothing is
registered at import: each class creates its collectors in the registry it is given. The
online learner's own counters live with the API's in :mod:`scoring.metrics`.

Conventions: ratios end in ``_ratio`` (0..1), timestamps in ``_timestamp_seconds``,
counters in ``_total``; label values are bounded (outcomes and trigger reasons are fixed
words, never ids).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from models.live_quality import Quality, QualityTracker

NS = "fraudstream"
QUALITY_COUNTS = ("decisions", "labels", "matured_unlabeled", "evicted", "late_labels",
                  "unmatched_labels", "invalid")


class QualityMetrics:
    """Gauges of :class:`~models.live_quality.QualityTracker`'s rolling window."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, namespace=NS, registry=r)

        self.precision_at_budget = gauge(
            "live_precision_at_budget_ratio", "Precision of the top alert-budget share by "
            "score among the last matured decisions.")
        self.recall_at_budget = gauge(
            "live_recall_at_budget_ratio", "Share of matured frauds in the top alert-budget "
            "share by score (recall at the alert budget).")
        self.alert_precision = gauge(
            "live_alert_precision_ratio", "Frauds among matured decisions alerted "
            "(review/decline).")
        self.alert_recall = gauge(
            "live_alert_recall_ratio", "Matured frauds that were alerted (review/decline).")
        self.alert_rate = gauge(
            "live_alert_rate_ratio", "Alerted share of the matured decisions in the window.")
        self.budget = gauge("live_alert_budget_ratio", "The alert budget the window is "
                            "judged at (retrain_budget).")
        self.window_decisions = gauge(
            "live_window_decisions", "Matured decisions in the rolling window.")
        self.window_frauds = gauge("live_window_frauds", "Frauds in the rolling window.")
        self.pending = gauge("live_pending_decisions", "Decisions waiting for their label.")
        self.watermark = gauge("live_watermark_timestamp_seconds",
                               "Event time of the latest decision seen.")
        self.records = Counter(
            "live_records", "Decisions and labels seen by the quality tracker, by outcome.",
            ["outcome"], namespace=NS, registry=r)
        for outcome in QUALITY_COUNTS:  # every series exists from the start
            self.records.labels(outcome=outcome)
        self._counted: dict[str, int] = {}

    def export(self, tracker: QualityTracker) -> Quality:
        """Set every gauge from ``tracker`` and add its new counts; returns the snapshot."""
        q = tracker.snapshot()
        self.precision_at_budget.set(q.precision_at_budget)
        self.recall_at_budget.set(q.recall_at_budget)
        self.alert_precision.set(q.alert_precision)
        self.alert_recall.set(q.alert_recall)
        self.alert_rate.set(q.alert_rate)
        self.budget.set(tracker.budget)
        self.window_decisions.set(q.decisions)
        self.window_frauds.set(q.frauds)
        self.pending.set(len(tracker.pending))
        self.watermark.set(tracker.watermark_ms / 1000)
        for key, value in tracker.counts.items():
            delta = value - self._counted.get(key, 0)
            if delta > 0:
                self.records.labels(outcome=key).inc(delta)
        self._counted = dict(tracker.counts)
        return q


TRIGGER_OUTCOMES = ("fired", "suppressed")


class AuditCollector(Collector):
    """Retrain triggers and alias moves, counted from the audit logs at scrape time.

    The retrainer runs wherever it is scheduled (the demo's loop, a CronJob, an operator's
    ``fraudstream retrain``) and may exit before any scrape; its audit logs
    (``state_dir/audit/retrain_triggers.jsonl``, ``model_aliases.jsonl``, append-only) are
    the durable record, so the monitor, which shares the state volume, exports them:

    - ``fraudstream_retrain_triggers_total{outcome}``: checks that fired or were suppressed;
    - ``fraudstream_retrain_trigger_reasons_total{reason}``: drift, decay, volume, schedule;
    - ``fraudstream_model_alias_moves_total{alias}``: champion moves are promotions;
    - ``fraudstream_model_alias_moved_timestamp_seconds{alias}``: when it last moved.
    """

    def __init__(self, triggers: Path, aliases: Path) -> None:
        self.triggers = triggers
        self.aliases = aliases

    @staticmethod
    def _lines(path: Path) -> list[dict[str, Any]]:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line being appended right now
            if isinstance(record, dict):
                out.append(record)
        return out

    def collect(self) -> Iterator[Metric]:
        outcomes = CounterMetricFamily(f"{NS}_retrain_triggers", "Retrain trigger checks "
                                       "that fired or were suppressed.", labels=["outcome"])
        reasons = CounterMetricFamily(f"{NS}_retrain_trigger_reasons", "Trigger reasons "
                                      "met.", labels=["reason"])
        counts = dict.fromkeys(TRIGGER_OUTCOMES, 0)
        by_reason: dict[str, int] = {}
        for record in self._lines(self.triggers):
            counts["fired" if record.get("fire") else "suppressed"] += 1
            for reason in record.get("reasons") or []:
                by_reason[str(reason)] = by_reason.get(str(reason), 0) + 1
        for outcome, n in counts.items():
            outcomes.add_metric([outcome], n)
        for reason, n in sorted(by_reason.items()):
            reasons.add_metric([reason], n)
        moves = CounterMetricFamily(f"{NS}_model_alias_moves", "Alias moves (champion: "
                                    "promotions and rollbacks).", labels=["alias"])
        moved = GaugeMetricFamily(f"{NS}_model_alias_moved_timestamp_seconds", "Wall time of "
                                  "the alias's last move.", labels=["alias"])
        per_alias: dict[str, tuple[int, float]] = {}
        for record in self._lines(self.aliases):
            alias = str(record.get("alias"))
            n, last = per_alias.get(alias, (0, 0.0))
            try:
                when = datetime.fromisoformat(str(record.get("time"))).timestamp()
            except ValueError:
                when = last
            per_alias[alias] = (n + 1, max(last, when))
        for alias, (n, last) in sorted(per_alias.items()):
            moves.add_metric([alias], n)
            moved.add_metric([alias], last)
        yield from (outcomes, reasons, moves, moved)
