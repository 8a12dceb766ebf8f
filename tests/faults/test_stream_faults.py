"""The stream stage under faults: SIGKILL storm, broker stopped, Redis restarted, scale-out.

Each test replays a simulated stream (transactions paced, then their labels) through real
``fraudstream stream worker`` processes while the fault happens, then checks every committed
``scores`` record against the offline core: 0 missing, 0 duplicated decisions, 0 differing
card features, terminal differences only where a worker recorded a late item.

Sizes: CI runs the reduced one; ``FRAUDSTREAM_CHAOS=full`` (``make chaos``) the full one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from features.stream.stage import READY_MARKER
from infra.services import start_services, stop_services
from infra.settings import Settings
from infra.workers import WorkerProcess
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate
from tests.integration.deployed import split_days
from tests.integration.streamcheck import (
    Verdict,
    count_scores,
    deploy,
    publish_labels,
    stage,
    verdict,
)

FULL = os.environ.get("FRAUDSTREAM_CHAOS") == "full"


@dataclass(frozen=True)
class Size:
    customers: int
    live_days: float
    rate: float  # tx/s while publishing
    kills: tuple[float, ...]  # seconds before each kill (storm)


SIZE = (Size(8000, 6, 1000, (0.5, 2.0, 6.0, 1.0, 8.0, 0.7, 3.0, 10.0, 1.5, 5.0, 0.5, 7.0,
                             2.5, 9.0, 1.0, 4.0)) if FULL else
        Size(1500, 4, 300, (0.5, 12.0, 1.5, 15.0, 0.7, 3.0, 12.0, 1.0)))


@pytest.fixture(scope="module")
def stream() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = simulate(SimulationConfig(n_customers=SIZE.customers, n_terminals=500,
                                      days=int(12 + SIZE.live_days), seed=31))
    history, live = split_days(frame, 12)
    return history, live.reset_index(drop=True)


class Publisher(threading.Thread):
    """Publishes the live transactions at ``rate`` then their labels, in the background."""

    def __init__(self, settings: Settings, live: pd.DataFrame, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.live, self.rate = settings, live, rate
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            publish_history(self.live, self.settings, progress=None, max_rate=self.rate,
                            flush_timeout=180)
            publish_labels(self.live, self.settings)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def finish(self) -> None:
        self.join(300)
        assert not self.is_alive() and self.error is None, self.error


@pytest.fixture
def deployed(settings: Settings, stream: tuple[pd.DataFrame, pd.DataFrame],
             tmp_path: Path) -> Iterator[tuple[Settings, pd.DataFrame]]:
    s = settings
    deploy(s, stream[0], tmp_path)
    yield s, stream[1]


def wait_decisions(s: Settings, n: int, timeout: float = 180) -> None:
    """Wait until ``n`` decisions are committed: the fault must hit a running stream."""
    deadline = time.monotonic() + timeout
    while (got := count_scores(s)) < n:
        assert time.monotonic() < deadline, f"only {got} decisions after {timeout}s"
        time.sleep(0.5)


def report(name: str, v: Verdict, started: float, *workers: WorkerProcess) -> None:
    failed = sum(w.log_path.read_text(errors="replace").count("batch failed")
                 for w in workers if w.log_path.exists())
    print(f"{name}: {v}, aborted batches logged {failed}, in "
          f"{time.monotonic() - started:.0f}s")
    v.assert_exact()


def test_sigkill_storm(deployed: tuple[Settings, pd.DataFrame]) -> None:
    s, live = deployed
    started = time.monotonic()
    worker = stage(s)
    try:  # whatever fails, the last worker started is stopped
        assert worker.wait_for_log(READY_MARKER, timeout=180), worker.log_tail(40)
        publisher = Publisher(s, live, SIZE.rate)
        publisher.start()
        waited = time.monotonic()
        wait_decisions(s, 500)
        print(f"the first 500 decisions came {time.monotonic() - waited:.1f} s after "
              "publishing started")
        hit: list[int] = []
        kills: list[tuple[float, list[int]]] = []
        for i, wait in enumerate(SIZE.kills):  # both shorter and longer than a start-up
            time.sleep(wait)
            kills.append((time.time(), list(range(s.topic_partitions))))
            worker.kill()
            if i in (len(SIZE.kills) // 2, len(SIZE.kills) - 1):
                hit.append(count_scores(s))
            worker = stage(s)
        publisher.finish()
        print(f"decisions committed at the middle and the last kill: {hit}")
        assert hit[0] < len(live)  # the kills hit a stream still being decided
        v = verdict(s, live, timeout=600, kills=kills)
    finally:
        worker.stop()
    print(f"a restarted worker decided on every partition again after {v.takeover_s} s "
          "(kills not cut short by the next)")
    report(f"storm ({len(SIZE.kills)} kills)", v, started, worker)


def _outage(deployed: tuple[Settings, pd.DataFrame], service_settings: Settings,
            service: str, seconds: float, name: str) -> None:
    """Stop ``service`` for ``seconds`` mid-stream and start it again; no worker restart."""
    s, live = deployed
    started = time.monotonic()
    worker = stage(s)
    publisher = Publisher(s, live, SIZE.rate)
    publisher.start()
    try:
        wait_decisions(s, 2000)
        stop_services(service_settings, [service])
        time.sleep(seconds)
        start_services(service_settings, [service])
        publisher.finish()
        v = verdict(s, live, timeout=600)
        assert worker.alive(), worker.log_tail(40)
    finally:
        start_services(service_settings, [service])  # idempotent: running is fine
        worker.stop()
    report(name, v, started, worker)


def test_broker_stopped_20s(deployed: tuple[Settings, pd.DataFrame],
                            service_settings: Settings) -> None:
    _outage(deployed, service_settings, "kafka", 20, "broker stopped 20 s")


def test_redis_restarted(deployed: tuple[Settings, pd.DataFrame],
                         service_settings: Settings) -> None:
    _outage(deployed, service_settings, "redis", 3, "redis restarted")


def owned(worker: WorkerProcess) -> list[int]:
    """The partitions of ``worker``'s latest assignment (its last ready line)."""
    lines = [ln for ln in worker.log_tail(400).splitlines() if READY_MARKER in ln]
    if not lines:
        return []
    listed = lines[-1].split("partitions [", 1)[1].split("]", 1)[0]
    return [int(p) for p in listed.split(",") if p.strip()]


def wait_shared(workers: list[WorkerProcess], partitions: int, timeout: float = 180) -> None:
    """Wait until ``workers`` each own an equal share of the ``partitions``."""
    deadline = time.monotonic() + timeout
    while sorted(len(owned(w)) for w in workers) != [partitions // len(workers)] * len(workers):
        assert time.monotonic() < deadline, {w.name: w.log_tail(20) for w in workers}
        time.sleep(0.5)


def test_scale_out_kill_one_then_add_one(settings: Settings,
                                         stream: tuple[pd.DataFrame, pd.DataFrame],
                                         tmp_path: Path) -> None:
    s = settings.model_copy(update={"topic_partitions": 8})
    deploy(s, stream[0], tmp_path)
    live = stream[1]
    started = time.monotonic()
    workers: dict[str, WorkerProcess] = {"0": stage(s, "0"), "1": stage(s, "1")}
    wait_shared(list(workers.values()), 8)  # the kill hits a group of two, not one
    publisher = Publisher(s, live, SIZE.rate)
    publisher.start()
    try:
        wait_decisions(s, 2000)
        dead = owned(workers["1"])
        killed_at = time.time()
        workers["1"].kill()
        time.sleep(15)  # the takeover is measured alone, before the third worker joins
        workers["2"] = stage(s, "2")
        publisher.finish()
        v = verdict(s, live, timeout=600, kills=[(killed_at, dead)])
        assert workers["0"].alive() and workers["2"].alive()
        decided = count_scores(s)
    finally:
        for w in workers.values():
            w.stop()
    assert decided == len(live)
    print(f"partitions {dead} of the killed worker decided again after {v.takeover_s} s")
    report("2 workers on 8 partitions, one killed, one added", v, started, *workers.values())
