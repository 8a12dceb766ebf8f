"""A deployed pipeline for integration tests: topics, Feast, a champion, and the stream stage."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from confluent_kafka import Message

from infra.bootstrap import bootstrap
from infra.settings import Settings
from infra.workers import WorkerProcess
from models.train import TrainConfig
from replay.history import write_history
from streams.clients import make_consumer

SMALL_TRAIN = TrainConfig(unknown_labels="genuine", test_days=5, delay_days=2, valid_days=4)


def split_days(frame: pd.DataFrame, days: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, live): the first ``days`` of ``frame`` and the rest."""
    cut = frame["event_time"].min() + pd.Timedelta(days=days)
    return frame[frame["event_time"] < cut], frame[frame["event_time"] >= cut]


def prepare(settings: Settings, history: pd.DataFrame, tmp_path: Path) -> str:
    """Topics, Feast definitions and a champion trained on ``history``; returns its version."""
    path = write_history(history, tmp_path / f"history-{uuid.uuid4().hex[:6]}.parquet")
    return bootstrap(settings, path, SMALL_TRAIN)


def stream_worker(settings: Settings, instance: str = "0") -> WorkerProcess:
    """One ``fraudstream stream worker`` process (features and decisions in one hop)."""
    return WorkerProcess(f"stream-{instance}", ["stream", "worker", "--instance", instance],
                         settings).start()


@contextmanager
def running_workers(settings: Settings) -> Iterator[dict[str, WorkerProcess]]:
    procs = {"stream": stream_worker(settings)}
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def drain(
    settings: Settings, topic: str, want: int, timeout: float, settle: float
) -> list[Message]:
    """Read committed records of ``topic`` until ``want`` arrived, then ``settle`` s more."""
    consumer = make_consumer(settings, f"test-reader-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    settled_at: float | None = None
    try:
        while time.monotonic() < deadline:
            out.extend(m for m in consumer.consume(1000, 0.5) if m.error() is None)
            if len(out) >= want and settled_at is None:
                settled_at = time.monotonic()
            if settled_at is not None and time.monotonic() - settled_at > settle:
                break
    finally:
        consumer.close()
    return out


def values(messages: list[Message]) -> list[dict[str, object]]:
    return [json.loads(m.value() or b"{}") for m in messages]
