"""The metrics module: isolated registries, bounded labels, model-version series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from scoring.metrics import REASON_CLASSES, build_metrics, reason_class


def test_registries_are_independent_and_nothing_is_global() -> None:
    a, b = build_metrics(), build_metrics(CollectorRegistry())
    a.decisions.labels(source="api", decision="review").inc(3)
    assert b"fraudstream_decisions_total" in b.exposition()
    assert b'fraudstream_decisions_total{decision="review",source="api"} 3.0' in a.exposition()
    assert b'decision="review"' not in b.exposition()


def test_every_family_is_declared_with_its_buckets() -> None:
    m = build_metrics()
    m.http_latency.labels("POST", "/v1/score").observe(0.004)
    text = m.exposition().decode()
    for name in ("decisions_total", "errors_total", "model_info", "model_swaps_total",
                 "http_requests_total", "http_request_seconds", "online_updates_total",
                 "online_join_total", "online_pending", "online_snapshots_total", "online_weight"):
        assert f"# TYPE fraudstream_{name.removesuffix('_total')}" in text, name
    assert 'bucket{le="0.005",method="POST",route="/v1/score"} 1.0' in text


def test_model_version_is_one_series_per_role() -> None:
    m = build_metrics()
    m.set_model_version("batch", "fraud-detector", "3")
    m.set_model_version("online", "river", "12")
    m.set_model_version("batch", "fraud-detector", "4")
    text = m.exposition().decode()
    assert 'role="batch",version="4"} 1.0' in text and 'version="3"' not in text
    assert 'role="online",version="12"} 1.0' in text
    m.set_model_version("online", "river", None)
    assert 'role="online"' not in m.exposition().decode()


def test_reason_classes_are_bounded() -> None:
    reasons = ["payload too large: 99 bytes", "malformed JSON: x", "invalid transaction: a",
               "features unavailable in the online store", "no champion model loaded",
               "redis: down", "???"]
    assert [reason_class(r) for r in reasons] == list(REASON_CLASSES)
