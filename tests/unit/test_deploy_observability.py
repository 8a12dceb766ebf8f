"""Unit tests of the operations kit's Python parts: live quality, ops HTTP app, JSON logs."""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from infra.kafka_lag import lag
from infra.logging_setup import JsonFormatter, configure_logging, record_context
from infra.metrics_http import ops_app, serve_metrics
from models.live_quality import QualityTracker
from models.ops_metrics import AuditCollector, QualityMetrics
from models.quality_monitor import apply

DAY = 86_400_000


def _tracker(**kw: float) -> QualityTracker:
    args = {"window": 1000, "capacity": 1000, "maturity_ms": 7 * DAY, "budget": 0.1}
    return QualityTracker(**{**args, **kw})  # type: ignore[arg-type]


def test_precision_and_recall_at_budget_on_matured_labels() -> None:
    t = _tracker()
    # 100 decisions on day 0: ids 0..9 score highest; frauds are 0..4 and 50..54
    for i in range(100):
        t.add_decision(f"t{i}", 1.0 - i / 100, alerted=i < 20, event_ms=i)
    for i in [*range(5), *range(50, 55)]:
        t.add_label(f"t{i}", True)
    assert t.snapshot().decisions == 10  # only labeled ones matured so far
    t.add_decision("later", 0.0, alerted=False, event_ms=8 * DAY)  # the rest mature genuine
    q = t.snapshot()
    assert q.decisions == 100 and q.frauds == 10
    k = math.ceil(0.1 * 100)
    assert q.precision_at_budget == pytest.approx(5 / k)
    assert q.recall_at_budget == pytest.approx(5 / 10)
    assert q.alert_precision == pytest.approx(5 / 20)
    assert q.alert_recall == pytest.approx(5 / 10)
    assert q.alert_rate == pytest.approx(20 / 100)


def test_window_rolls_capacity_evicts_and_late_labels_are_counted() -> None:
    t = _tracker(window=10, capacity=5, maturity_ms=DAY)
    for i in range(8):
        t.add_decision(f"t{i}", 0.5, alerted=False, event_ms=0)
    assert len(t.pending) == 5 and t.counts["evicted"] == 3
    t.add_decision("x", 0.5, alerted=False, event_ms=2 * DAY)
    assert t.snapshot().decisions == 5 and t.snapshot().frauds == 0
    t.add_label("t7", True)  # matured as genuine already: a label past the maturity period
    t.add_label("nobody", True)
    assert t.counts["late_labels"] == 1 and t.counts["unmatched_labels"] == 1
    for i in range(20):
        t.add_decision(f"y{i}", 0.5, alerted=False, event_ms=(3 + i) * DAY)
    assert len(t.window) == 10


def test_empty_window_is_nan_not_zero() -> None:
    q = _tracker().snapshot()
    assert q.decisions == 0 and math.isnan(q.recall_at_budget) and math.isnan(q.alert_rate)


def test_apply_rejects_unusable_records() -> None:
    t = _tracker()
    for bad in ([1], {"transaction_id": "a"}, {"transaction_id": "a", "score": 3.0,
                                               "event_time": 0}):
        with pytest.raises((ValueError, KeyError, TypeError)):
            apply(t, "labels", "scores", bad)
    with pytest.raises(ValueError):
        apply(t, "labels", "labels", {"transaction_id": "a", "label": "maybe"})
    apply(t, "labels", "scores", {"transaction_id": "a", "score": 0.9, "decision": "review",
                                  "event_time": "2025-02-01T10:00:00Z"})
    assert t.pending["a"].alerted and t.watermark_ms > 0


def test_quality_metrics_export_gauges_and_counts() -> None:
    registry = CollectorRegistry()
    m = QualityMetrics(registry)
    t = _tracker()
    t.add_decision("a", 0.9, alerted=True, event_ms=0)
    t.add_label("a", True)
    m.export(t)
    m.export(t)  # counters add only what is new
    get = registry.get_sample_value
    assert get("fraudstream_live_recall_at_budget_ratio") == 1.0
    assert get("fraudstream_live_window_frauds") == 1.0
    assert get("fraudstream_live_records_total", {"outcome": "labels"}) == 1.0
    assert get("fraudstream_live_records_total", {"outcome": "evicted"}) == 0.0


def test_audit_collector_counts_triggers_and_alias_moves(tmp_path: Path) -> None:
    triggers, aliases = tmp_path / "retrain_triggers.jsonl", tmp_path / "model_aliases.jsonl"
    registry = CollectorRegistry()
    registry.register(AuditCollector(triggers, aliases))
    get = registry.get_sample_value
    assert get("fraudstream_retrain_triggers_total", {"outcome": "fired"}) == 0  # no file yet
    triggers.write_text("\n".join(json.dumps(r) for r in [
        {"fire": True, "reasons": ["drift", "decay"]},
        {"fire": False, "suppressed": "rate limit", "reasons": ["drift"]},
    ]) + "\n{\"fire\": tr")  # a line still being written is skipped
    aliases.write_text("\n".join(json.dumps(r) for r in [
        {"alias": "champion", "time": "2025-02-01T00:00:00+00:00"},
        {"alias": "champion", "time": "2025-02-08T00:00:00+00:00"},
        {"alias": "challenger", "time": "2025-02-07T00:00:00+00:00"},
    ]) + "\n")
    assert get("fraudstream_retrain_triggers_total", {"outcome": "fired"}) == 1
    assert get("fraudstream_retrain_triggers_total", {"outcome": "suppressed"}) == 1
    assert get("fraudstream_retrain_trigger_reasons_total", {"reason": "drift"}) == 2
    assert get("fraudstream_model_alias_moves_total", {"alias": "champion"}) == 2
    assert get("fraudstream_model_alias_moved_timestamp_seconds",
               {"alias": "champion"}) == 1738972800.0


def test_lag_counts_from_low_watermark_without_commit_and_never_negative() -> None:
    got = lag({("t", 0): 12, ("t", 1): -1001}, {("t", 1): 3}, {("t", 0): 10, ("t", 1): 7})
    assert got == {("t", 0): 0, ("t", 1): 4}


def _call(app: object, path: str) -> tuple[str, bytes]:
    status: list[str] = []
    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""},  # type: ignore[operator]
                        lambda s, h: status.append(s)))
    return status[0], body


def test_ops_app_health_readiness_and_metrics() -> None:
    registry = CollectorRegistry()
    QualityMetrics(registry)
    ready = {"v": False}
    app = ops_app(registry, lambda: ready["v"])
    assert _call(app, "/healthz")[0].startswith("200")
    assert _call(app, "/readyz")[0].startswith("503")
    ready["v"] = True
    assert _call(app, "/readyz")[0].startswith("200")
    status, body = _call(app, "/metrics")
    assert status.startswith("200") and b"fraudstream_live_recall_at_budget_ratio" in body

    def broken() -> bool:
        raise RuntimeError("boom")

    assert _call(ops_app(registry, broken), "/readyz")[0].startswith("503")


def test_serve_metrics_serves_over_http_and_port_zero_is_off() -> None:
    import socket

    assert serve_metrics(0, "127.0.0.1") is False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry = CollectorRegistry()
    QualityMetrics(registry)
    assert serve_metrics(port, "127.0.0.1", registry)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    assert "fraudstream_live_alert_rate_ratio" in httpx.get(
        f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert serve_metrics(port, "127.0.0.1", registry) is False  # taken: logged, not raised


def test_json_formatter_one_object_per_line_with_record_context() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("test.jsonlogs")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.warning("skipping %s", "bad json",
                    extra=record_context("transactions", 3, 17, "t-1"))
        log.info("plain line\nwith a newline")
        try:
            raise ValueError("nope")
        except ValueError:
            log.exception("failed", extra={"topic": "labels", "partition": 0, "offset": 5})
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "skipping bad json" and first["level"] == "WARNING"
    assert first["source"] == "transactions[3]@17" and first["transaction_id"] == "t-1"
    assert "transaction_id" not in second and second["message"].endswith("newline")
    assert third["source"] == "labels[0]@5" and "ValueError: nope" in third["exc_info"]


def test_configure_logging_text_is_default_and_json_switches() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging()
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
        configure_logging("json", verbose=True)
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


class _Done:
    def __init__(self, value: object) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> object:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class _FakeAdmin:
    """Offsets of one group (g) on topic t; group ``broken`` fails like a down broker."""

    def list_consumer_group_offsets(self, request: list[object], **_: object) -> dict:  # type: ignore[type-arg]
        from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

        group = request[0].group_id  # type: ignore[attr-defined]
        if group == "broken":
            return {group: _Done(KafkaException("broker down"))}
        parts = [TopicPartition("t", 0, 40), TopicPartition("t", 1, -1001)]
        return {group: _Done(ConsumerGroupTopicPartitions(group, parts))}

    def list_offsets(self, wanted: dict, **kw: object) -> dict:  # type: ignore[type-arg]
        from types import SimpleNamespace

        latest = type(next(iter(wanted.values()))).__name__ == "LatestSpec"
        ends = {0: 100, 1: 30} if latest else {0: 0, 1: 10}
        return {tp: _Done(SimpleNamespace(offset=ends[tp.partition])) for tp in wanted}


def test_lag_collector_exports_per_partition_and_survives_a_failing_group() -> None:
    from infra.kafka_lag import ConsumerLagCollector

    registry = CollectorRegistry()
    collector = ConsumerLagCollector(_FakeAdmin(), ["g", "broken"], 1.0)  # type: ignore[arg-type]
    registry.register(collector)
    get = registry.get_sample_value
    labels = {"group": "g", "topic": "t"}
    assert get("fraudstream_consumer_lag_messages", {**labels, "partition": "0"}) == 60
    assert get("fraudstream_consumer_lag_messages", {**labels, "partition": "1"}) == 20
    assert get("fraudstream_kafka_topic_end_offset", {"topic": "t", "partition": "0"}) == 100
    assert get("fraudstream_consumer_lag_up", {"group": "g"}) == 1
    assert get("fraudstream_consumer_lag_up", {"group": "broken"}) == 0
    assert get("fraudstream_consumer_lag_errors_total") >= 1
