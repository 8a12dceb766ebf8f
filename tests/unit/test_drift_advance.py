"""Closing event-time windows from outside: a replay stepping day by day knows midnight has
passed although no later record arrives to move the watermark (the demo's loop)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from drift.metrics import DriftMetrics
from drift.monitor import DriftMonitor
from drift.reference import SCORE, Reference
from drift.sustained import SustainedDrift
from drift.windows import EventTimeWindower
from infra.settings import Settings
from tests.fakes import FakeMessage

DAY = 86_400_000
DAY0 = 20_089 * DAY  # 2025-01-01


def test_advance_closes_windows_that_end_by_the_watermark() -> None:
    w: EventTimeWindower[int] = EventTimeWindower(10, lambda t: t, lateness_ms=3,
                                                  partition_of=lambda t: 0)
    w.expect([0, 1])  # partition 1 never delivers: only advance() can close anything
    assert w.add(1) == [] and w.add(8) == [] and w.add(12) == []
    assert w.advance(9) == []  # [0, 10) does not end by 9
    assert [(c.start_ms, c.items) for c in w.advance(10)] == [(0, [1, 8])]
    assert w.add(9) == [] and w.late == 1  # its window closed: late, never reopened
    assert w.advance(5) == [] and w.watermark_ms == 10  # never moves back
    assert [(c.start_ms, c.items) for c in w.advance(20)] == [(10, [12])]


def _day(rng: np.random.Generator, day: int, n: int, shift: float) -> list[Message]:
    out = []
    for i in range(n):
        ms = DAY0 + day * DAY + i * (DAY // n)
        record = {"transaction_id": f"{day}-{i}", "event_time": ms, "card_id": "c",
                  "score": float(rng.beta(1, 20)), "decision": "approve",
                  "model_version": {"batch": "1", "online": None},
                  "features": {"amount": float(rng.lognormal(3.5 + shift, 1.0))},
                  "latency_ms": 1}
        out.append(FakeMessage(json.dumps(record).encode(), day * n + i, topic="scores",
                               partition=i % 2))
    return cast(list[Message], out)


def test_monitor_judges_a_day_when_told_midnight_passed(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    reference = Reference.from_columns(
        {"amount": rng.lognormal(3.5, 1.0, 20_000), SCORE: rng.beta(1, 20, 20_000)},
        model_version="1")
    settings = Settings(state_dir=tmp_path, drift_min_rows=200)
    monitor = DriftMonitor(settings, lambda: reference, metrics=DriftMetrics(CollectorRegistry()),
                           sustained=SustainedDrift(2, 3), report_dir=tmp_path / "drift")
    with pytest.raises(RuntimeError, match="not started"):
        monitor.poll()
    severities = []
    for day, shift in enumerate([0.0, 0.8, 0.8]):  # prices up on days 1 and 2
        assert monitor.process(_day(rng, day, 600, shift)) == []  # nothing later arrived
        (report,) = monitor.advance(DAY0 + (day + 1) * DAY)
        assert (report.start_ms, report.end_ms, report.rows) == (
            DAY0 + day * DAY, DAY0 + (day + 1) * DAY, 600)
        severities.append(report.column("amount").severity)
        assert monitor.status is not None and monitor.status.end_ms == report.end_ms
    assert severities == ["none", "alert", "alert"]
    assert monitor.status is not None
    assert monitor.status.columns == ("amount",)  # 2 of the last 3 windows
    assert (tmp_path / "drift" / "latest.md").exists()
    assert monitor.advance(DAY0 + 3 * DAY) == []  # nothing open
