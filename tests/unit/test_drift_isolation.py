"""The drift monitor skips (and counts) any score record it cannot use, and keeps going."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from drift.metrics import DriftMetrics
from drift.monitor import DriftMonitor
from drift.reference import SCORE, Reference
from infra.settings import Settings
from tests.fakes import FakeMessage

DAY0 = 20_089 * 86_400_000  # 2025-01-01


def record(i: int, **changes: Any) -> dict[str, Any]:
    return {"transaction_id": f"t{i}", "event_time": DAY0 + i, "card_id": "c",
            "score": 0.1, "decision": "approve", "model_version": {"batch": "1"},
            "features": {"amount": 10.0}, **changes}


HOSTILE: list[bytes] = [
    b"\xff", b"[" * 5000 + b"]" * 5000, b"{}",
    json.dumps(record(1, event_time="2025-01-01T00:00:00")).encode(),  # naive
    json.dumps(record(2, event_time=1e300)).encode(),
    json.dumps(record(3, event_time="9999-12-31T23:59:59-01:00")).encode(),
    b'{"transaction_id": "t", "event_time": 1735689600000, "score": 0.1, '
    b'"features": {"amount": ' + b"9" * 400 + b"}}",
    json.dumps(record(5, features=[1, 2])).encode(),
]


def test_hostile_score_records_are_skipped_and_counted(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    reference = Reference.from_columns(
        {"amount": rng.lognormal(3.5, 1.0, 2_000), SCORE: rng.beta(1, 20, 2_000)},
        model_version="1")
    monitor = DriftMonitor(Settings(state_dir=tmp_path), lambda: reference,
                           metrics=DriftMetrics(CollectorRegistry()),
                           report_dir=tmp_path / "drift")
    good = [json.dumps(record(10 + i)).encode() for i in range(3)]
    messages = [FakeMessage(raw, i, topic="scores") for i, raw in enumerate(HOSTILE + good)]
    monitor.process(cast(list[Message], messages))
    assert monitor._guard.outcomes["invalid_skipped"] == len(HOSTILE)
    assert monitor.metrics.records.labels("invalid")._value.get() == len(HOSTILE)
    assert monitor.metrics.records.labels("windowed")._value.get() == len(good)
