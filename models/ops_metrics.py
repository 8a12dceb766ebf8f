"""Prometheus metrics of the models package's processes: live quality and the retrainer.

Declared here, in one place, so alert rules and the dashboard
(``infra/deploy/prometheus``, ``infra/deploy/grafana``) have one source of names. Nothing is
registered at import: each class creates its collectors in the registry it is given. The
online learner's own counters live with the scorer's in :mod:`scoring.metrics`.

Conventions: ratios end in ``_ratio`` (0..1), timestamps in ``_timestamp_seconds``,
counters in ``_total``; label values are bounded (outcomes and trigger reasons are fixed
words, never ids).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

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


RETRAIN_OUTCOMES = ("quiet", "suppressed", "fired")
PROMOTION_OUTCOMES = ("promoted", "rejected")


class RetrainMetrics:
    """Counters of the retrainer's checks, triggers and promotions.

    The retrainer runs inside a long-lived loop (the demo's, or a scheduled job); a job that
    exits should write them with ``prometheus_client.write_to_textfile`` for a node
    exporter's textfile collector, or push them to a Pushgateway.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.checks = Counter("retrain_checks", "Retrain trigger checks by outcome (quiet, "
                              "suppressed, fired).", ["outcome"], namespace=NS, registry=r)
        self.reasons = Counter("retrain_trigger_reasons", "Trigger reasons met (drift, decay, "
                               "volume, schedule).", ["reason"], namespace=NS, registry=r)
        self.promotions = Counter("promotions", "Challenger evaluations by outcome "
                                  "(promoted, rejected).", ["outcome"], namespace=NS,
                                  registry=r)
        self.last_retrain = Gauge("retrain_last_timestamp_seconds", "Wall time of the last "
                                  "challenger trained.", namespace=NS, registry=r)
        for outcome in RETRAIN_OUTCOMES:
            self.checks.labels(outcome=outcome)
        for outcome in PROMOTION_OUTCOMES:
            self.promotions.labels(outcome=outcome)

    def record_check(self, fired: bool, suppressed: bool, reasons: tuple[str, ...]) -> None:
        self.checks.labels(outcome="fired" if fired else "suppressed" if suppressed
                           else "quiet").inc()
        for reason in reasons:
            self.reasons.labels(reason=reason).inc()

    def record_evaluation(self, promoted: bool, trained_at_s: float) -> None:
        self.promotions.labels(outcome="promoted" if promoted else "rejected").inc()
        self.last_retrain.set(trained_at_s)
