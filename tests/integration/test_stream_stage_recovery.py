"""The stream stage's decisions under failure: SIGKILLed and restarted mid-stream, and the
champion alias moved mid-stream — every valid transaction still gets exactly one decision."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from infra.settings import Settings
from models.pipeline import train_and_register
from replay.history import write_history
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate
from streams.clients import make_consumer
from tests.integration.deployed import (
    SMALL_TRAIN,
    drain,
    prepare,
    running_workers,
    split_days,
    stream_worker,
)


class ScoreCounter(threading.Thread):
    """Counts committed score records as they arrive (to time the kills)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings, self.count, self.stop = settings, 0, threading.Event()

    def run(self) -> None:
        consumer = make_consumer(self.settings, f"counter-{uuid.uuid4().hex[:8]}")
        consumer.subscribe([self.settings.topic_scores])
        while not self.stop.is_set():
            self.count += sum(1 for m in consumer.consume(1000, 0.2) if m.error() is None)
        consumer.close()

    def wait_for(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.count >= n, f"only {self.count} scores after {timeout}s"


@pytest.fixture(scope="module")
def stream() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = simulate(SimulationConfig(n_customers=4000, n_terminals=1000, days=19, seed=5))
    return split_days(frame, 14)


def test_stream_stage_killed_repeatedly_decides_every_transaction_exactly_once(
    settings: Settings, stream: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    s = settings
    history, live = stream
    assert len(live) >= 50_000
    prepare(s, history, tmp_path)
    live_path = write_history(live, tmp_path / "live.parquet")
    counter = ScoreCounter(s)
    counter.start()
    kills = 0
    with running_workers(s) as procs:
        publish_history(live_path, s, progress=None)
        for fraction in (0.15, 0.4, 0.7):
            counter.wait_for(int(len(live) * fraction), timeout=240)
            procs["stream"].kill()
            kills += 1
            procs["stream"] = stream_worker(s)
        scores = drain(s, s.topic_scores, len(live), timeout=300, settle=5)
        assert procs["stream"].alive(), procs["stream"].log_tail()
    counter.stop.set()

    counts = Counter(json.loads(m.value() or b"{}")["transaction_id"] for m in scores)
    expected = set(live["transaction_id"])
    missing = expected - set(counts)
    duplicated = {t: n for t, n in counts.items() if n > 1}
    print(f"live {len(live)}, kills {kills}, scores {len(scores)}, distinct {len(counts)}")
    assert kills == 3
    assert not missing, f"{len(missing)} transactions never scored"
    assert not duplicated, f"{len(duplicated)} scored twice, e.g. {list(duplicated)[:3]}"
    assert set(counts) == expected and len(scores) == len(live)


def test_moving_the_champion_mid_stream_switches_versions_without_gap_or_duplicate(
    settings: Settings, stream: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    s = settings
    history, live = stream
    live = live.head(20_000)
    first = prepare(s, history, tmp_path)
    second = train_and_register(
        s, write_history(history, tmp_path / "h2.parquet"), alias=None, config=SMALL_TRAIN
    )
    live_path = write_history(live, tmp_path / "live.parquet")
    counter = ScoreCounter(s)
    counter.start()
    with running_workers(s):
        # ~25 s of traffic: the alias moves early and the stream stage (checking every 5 s)
        # must switch while transactions are still flowing
        publisher = threading.Thread(
            target=publish_history,
            args=(live_path, s),
            kwargs={"progress": None, "max_rate": 800},
            daemon=True,
        )
        publisher.start()
        counter.wait_for(2_000, timeout=240)
        from models.registry import ModelRegistry

        ModelRegistry(s).set_alias(
            s.model_name, "champion", second, actor="test", reason="mid-stream promotion"
        )
        publisher.join(timeout=120)
        scores = drain(s, s.topic_scores, len(live), timeout=300, settle=5)
    counter.stop.set()

    records = [json.loads(m.value() or b"{}") for m in scores]
    counts = Counter(r["transaction_id"] for r in records)
    assert set(counts) == set(live["transaction_id"]) and max(counts.values()) == 1
    versions = Counter(r["model_version"]["batch"] for r in records)
    print(f"versions seen: {dict(versions)}")
    assert set(versions) == {first, second}
    # per partition, once the new version appears the old one never comes back
    by_partition: dict[int, list[str]] = {}
    for message, record in zip(scores, records, strict=True):
        by_partition.setdefault(message.partition() or 0, []).append(
            record["model_version"]["batch"]
        )
    for sequence in by_partition.values():
        switched = [i for i, v in enumerate(sequence) if v == second]
        if switched:
            assert set(sequence[switched[0] :]) == {second}
