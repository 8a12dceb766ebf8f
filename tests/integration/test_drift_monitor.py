"""The drift monitor against real Kafka: score records in, drift records, gauges, reports out."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry

from drift.metrics import DriftMetrics
from drift.monitor import DriftMonitor, registry_reference
from drift.reference import SCORE, Reference
from infra.settings import Settings
from models.registry import ModelRegistry
from models.train import TrainConfig, train_model
from streams.clients import make_consumer, make_producer
from streams.serde import dumps, loads
from tests.integration.conftest import TopicFactory

DAY0 = datetime(2025, 3, 3, tzinfo=UTC)
PER_DAY = 1500


def _scores(rng: np.random.Generator, day: int, n: int, shift: float) -> list[dict[str, object]]:
    out = []
    for i in range(n):
        when = DAY0 + timedelta(days=day, seconds=int(i * 86_000 / n))
        out.append({
            "transaction_id": f"d{day}-{i}",
            "event_time": when.isoformat().replace("+00:00", "Z"),
            "card_id": f"c{i % 97}",
            "score": float(rng.beta(1, 20)),
            "decision": "approve",
            "model_version": {"batch": "5", "online": None},
            "features": {"amount": float(rng.lognormal(3.5 + shift, 1.0)), "is_ecom": None},
            "latency_ms": 4,
        })  # fmt: skip
    return out


def test_monitor_publishes_drift_records_and_gauges(
    settings: Settings, topic_factory: TopicFactory
) -> None:
    settings = settings.model_copy(update={"drift_min_rows": 500, "drift_lateness_seconds": 0})
    topic_factory(settings.topic_scores, partitions=2)
    topic_factory(settings.topic_drift)
    rng = np.random.default_rng(1)
    reference = Reference.from_columns(
        {
            "amount": rng.lognormal(3.5, 1.0, 20_000),
            "is_ecom": (rng.random(20_000) < 0.3).astype(float),
            SCORE: rng.beta(1, 20, 20_000),
        },
        model_version="5",
    )
    producer = make_producer(settings)
    records = [
        *_scores(rng, 0, PER_DAY, 0.0),
        *_scores(rng, 1, PER_DAY, 0.0),
        *_scores(rng, 2, PER_DAY, 0.7),  # prices up 2x on day 2
        *_scores(rng, 3, 50, 0.0),  # moves both partitions' watermarks past day 2
        {"not": "a score record"},
    ]
    for record in records:
        key = str(record.get("card_id", "x")).encode()
        producer.produce(settings.topic_scores, key=key, value=dumps(record))
    producer.flush(30)

    registry = CollectorRegistry()
    monitor = DriftMonitor(settings, lambda: reference, metrics=DriftMetrics(registry))
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
    thread.start()
    consumer = make_consumer(settings, f"{settings.consumer_group_drift}-reader")
    consumer.subscribe([settings.topic_drift])
    seen: list[tuple[str, dict[str, object]]] = []
    deadline = time.monotonic() + 60
    while len(seen) < 9 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.append(((message.key() or b"").decode(), loads(message.value() or b"")))
    stop.set()
    thread.join(30)
    consumer.close()

    assert len(seen) == 9, seen  # 3 closed windows x 3 columns; day 3 is still open
    by_window: dict[str, dict[str, dict[str, object]]] = {}
    for key, value in seen:
        assert key == value["column"]
        window = value["window"]
        assert isinstance(window, dict)
        by_window.setdefault(str(window["start"]), {})[key] = value
    days = sorted(by_window)
    assert days == ["2025-03-03T00:00:00Z", "2025-03-04T00:00:00Z", "2025-03-05T00:00:00Z"]
    assert [by_window[d]["amount"]["severity"] for d in days] == ["none", "none", "alert"]
    assert by_window[days[2]]["amount"]["drifting"] == ["amount"]
    assert by_window[days[2]]["is_ecom"]["evaluated"] is False  # all missing: no verdict
    assert by_window[days[2]]["score"]["reference_model_version"] == "5"
    assert by_window[days[2]]["score"]["scored_by"] == {"5": PER_DAY}

    psi = registry.get_sample_value("fraudstream_drift_psi", {"column": "amount"})
    assert psi is not None and psi >= 0.25
    assert registry.get_sample_value("fraudstream_drift_severity", {"column": "amount"}) == 2
    assert registry.get_sample_value("fraudstream_drift_records_total", {"outcome": "invalid"}) == 1
    assert registry.get_sample_value("fraudstream_drift_windows_total", {"severity": "alert"}) == 1
    latest = (settings.state_dir / "drift" / "latest.md").read_text()
    assert "drifting: **amount** (alert)" in latest
    assert len(list((settings.state_dir / "drift").glob("window-*.md"))) == 3

    # committed offsets stop at the still-open day-3 records, so a restart re-reads them
    check = make_consumer(settings, settings.consumer_group_drift)
    parts = [TopicPartition(settings.topic_scores, p) for p in (0, 1)]
    committed = check.committed(parts, timeout=10)
    check.close()
    assert sum(max(tp.offset, 0) for tp in committed) == 3 * PER_DAY


def test_reference_comes_from_the_champion_profile(tmp_path: Path) -> None:
    """``registry_reference``: the champion's ``reference_profile.json`` via MLflow."""
    rng = np.random.default_rng(0)
    n = 3000
    start = pd.Timestamp("2024-03-01", tz="UTC")
    event_time = start + pd.to_timedelta(np.sort(rng.uniform(0, 45 * 86400, n)), unit="s")
    fraud = rng.random(n) < 0.06
    frame = pd.DataFrame({
        "amount_z": rng.normal(0, 1, n) + 2.0 * fraud,
        "velocity_1h": rng.poisson(1 + 3 * fraud, n).astype(float),
        "is_fraud": fraud,
        "event_time": event_time,
        "label_time": event_time + pd.to_timedelta(rng.uniform(0.5, 10, n), unit="D"),
        "amount": rng.gamma(2.0, 40.0, n),
        "card_id": rng.integers(0, 300, n).astype(str),
    })  # fmt: skip
    result = train_model(frame, ["amount_z", "velocity_1h"], TrainConfig(num_boost_round=20))
    settings = Settings(
        state_dir=tmp_path / "state", mlflow_tracking_uri=None, model_name="fd-drift"
    )
    ModelRegistry(settings).log_and_register(result, "fd-drift", "fs_v1")
    load, version = registry_reference(settings)
    reference = load()
    assert version() == reference.model_version == "1"
    assert reference.names == ("amount_z", "velocity_1h", SCORE)
    assert reference.columns["velocity_1h"].cuts[0] == 0.0  # the minimum is a cut
    assert reference.columns[SCORE].sample.size == min(1000, result.counts["test"])
