"""Every Prometheus metric of the API and the online learner, declared here.

The stream stage's own collectors are in :mod:`features.stream.metrics` (it shares the
bucket bounds below).

Nothing is registered at import: :func:`build_metrics` creates the collectors in the
:class:`~prometheus_client.CollectorRegistry` it is given (a fresh one by default) and the
process passes the returned :class:`ScoringMetrics` to whatever records into it. Names,
label sets and buckets are fixed here so dashboards and alert rules have one source.

Label values are bounded: decisions come from :data:`scoring.policy.Decision`, free-text
error reasons are folded into a handful of classes by :func:`reason_class`, HTTP routes are
route *templates* (never raw paths). Latencies are in seconds (Prometheus convention).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

# publish -> decision spans Kafka and the stream stage: ms to seconds.
E2E_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
# one stream-stage micro-batch (up to stream_batch_size records).
BATCH_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
# one REST request; the /v1/score target is p99 <= 10 ms.
REST_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0)

REASON_CLASSES = ("payload_too_large", "malformed", "invalid", "features_unavailable",
                  "model", "service", "other")


def reason_class(reason: str) -> str:
    """Fold a free-text error/dead-letter reason into a bounded label value.

    >>> reason_class("payload too large: 20000 bytes > 16384")
    'payload_too_large'
    >>> reason_class("invalid transaction: amount: Input should be greater than 0")
    'invalid'
    >>> reason_class("features unavailable in the online store")
    'features_unavailable'
    """
    text = reason.lower()
    if "too large" in text:
        return "payload_too_large"
    if "malformed" in text or "json" in text:
        return "malformed"
    if "features unavailable" in text:
        return "features_unavailable"
    if "invalid" in text or "expected" in text or "lacks" in text:
        return "invalid"
    if "model" in text:
        return "model"
    if "kafka" in text or "redis" in text or "service" in text:
        return "service"
    return "other"


@dataclass(frozen=True)
class ScoringMetrics:
    """The collectors, grouped by who records them (see each ``documentation``)."""

    registry: CollectorRegistry
    # API (the stream stage's decisions are counted by features.stream.metrics)
    decisions: Counter
    errors: Counter
    model_info: Gauge
    model_swaps: Counter
    http_requests: Counter
    http_latency: Histogram
    # online learner
    online_updates: Counter
    online_join: Counter
    online_pending: Gauge
    online_snapshots: Counter
    online_snapshot_version: Gauge
    online_weight: Gauge

    def set_model_version(self, role: str, name: str, version: str | None) -> None:
        """Expose the version in use for ``role`` (batch, online, shadow): one series at 1."""
        for labels in list(self._series(role)):
            self.model_info.remove(*labels)
        if version is not None:
            self.model_info.labels(role=role, name=name, version=version).set(1)

    def _series(self, role: str) -> list[tuple[str, ...]]:
        found: list[tuple[str, ...]] = []
        for metric in self.model_info.collect():
            for sample in metric.samples:
                if sample.labels.get("role") == role:
                    found.append((role, sample.labels["name"], sample.labels["version"]))
        return found

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)


def build_metrics(registry: CollectorRegistry | None = None) -> ScoringMetrics:
    """Create every collector in ``registry`` (a new one when omitted)."""
    r = registry if registry is not None else CollectorRegistry(auto_describe=True)
    ns = "fraudstream"
    return ScoringMetrics(
        registry=r,
        decisions=Counter(
            "decisions", "Decisions made by the REST API, by path (api) and decision.",
            ["source", "decision"], namespace=ns, registry=r),
        errors=Counter(
            "errors", "Errors by component (api, learner) and reason class.",
            ["component", "reason"], namespace=ns, registry=r),
        model_info=Gauge(
            "model_info", "Model version in use (value 1), by role (batch, online, shadow).",
            ["role", "name", "version"], namespace=ns, registry=r),
        model_swaps=Counter(
            "model_swaps", "Model hot swaps, by role.", ["role"], namespace=ns, registry=r),
        http_requests=Counter(
            "http_requests", "REST requests by method, route template and status code.",
            ["method", "route", "status"], namespace=ns, registry=r),
        http_latency=Histogram(
            "http_request_seconds", "REST request latency by method and route template.",
            ["method", "route"], namespace=ns, buckets=REST_BUCKETS, registry=r),
        online_updates=Counter(
            "online_updates", "Examples the online model learned, by label (fraud, genuine) "
            "and kind (explicit label, implicit genuine after the join window).",
            ["label", "kind"], namespace=ns, registry=r),
        online_join=Counter(
            "online_join", "Join outcomes of the online learner (decisions, labels, joined, "
            "unmatched, expired, sampled_out, invalid).", ["outcome"], namespace=ns,
            registry=r),
        online_pending=Gauge(
            "online_pending", "Join state size, by side (decisions, labels).", ["side"],
            namespace=ns, registry=r),
        online_snapshots=Counter(
            "online_snapshots", "Online-model snapshots written.", namespace=ns, registry=r),
        online_snapshot_version=Gauge(
            "online_snapshot_version", "Latest online snapshot version written or loaded.",
            namespace=ns, registry=r),
        online_weight=Gauge(
            "online_weight", "Weight of the online model in the combined score (0 during "
            "warm-up).", namespace=ns, registry=r),
    )
