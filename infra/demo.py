"""``fraudstream demo``: the whole path on simulated data, in a few minutes.

Starts the local services (unless external ones are configured), simulates a labeled
history, trains and registers the champion, starts the feature worker and the scorer as
processes, streams the most recent days as "live" traffic, prints alerts as they happen,
then summarises the decisions and stops everything it started.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter

import pandas as pd

from infra.bootstrap import ensure_infrastructure
from infra.demo_api import show_api, start_api
from infra.errors import ServiceError
from infra.settings import Settings
from infra.workers import WorkerProcess

log = logging.getLogger("fraudstream.demo")


def _say(message: str) -> None:
    print(f"\n== {message}", flush=True)


def count_scores(settings: Settings, expected: int, timeout: float) -> list[dict[str, object]]:
    """Read ``scores`` until ``expected`` records arrived or ``timeout`` seconds passed."""
    from streams.clients import make_consumer

    consumer = make_consumer(settings, f"fraudstream-demo-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([settings.topic_scores])
    records: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    records.append(json.loads(message.value() or b"null"))
    finally:
        consumer.close()
    return records


def run_demo(
    settings: Settings,
    keep_services: bool = False,
    live_days: int = 2,
    stream_seconds: float = 60.0,
) -> int:
    from features.worker import READY_MARKER as FEATURES_READY
    from infra import services
    from models.pipeline import train_and_register
    from replay.history import iter_transactions
    from replay.publish import publish_history
    from replay.simulator import SimulationConfig, simulate, write_history
    from scoring.tail import tail_alerts
    from scoring.worker import READY_MARKER as SCORER_READY

    started_at = time.monotonic()
    demo_dir = settings.state_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    workers: list[WorkerProcess] = []
    _say("starting Kafka and Redis")
    for status in services.start_services(settings, ("kafka", "redis")):
        print(status)
    try:
        ensure_infrastructure(settings)

        _say("simulating 30 days of labeled card transactions")
        frame = simulate(
            SimulationConfig(n_customers=2000, n_terminals=1000, days=30, seed=settings.seed)
        )
        cut = frame["event_time"].max() - pd.Timedelta(days=live_days)
        history, live = frame[frame["event_time"] <= cut], frame[frame["event_time"] > cut]
        history_path, live_path = demo_dir / "history.parquet", demo_dir / "live.parquet"
        write_history(history, history_path)
        write_history(live, live_path)
        print(
            f"history: {len(history)} transactions ({int(history['is_fraud'].sum())} fraud); "
            f"live: {len(live)} transactions"
        )

        _say("training XGBoost on the history and registering it in MLflow as champion")
        version = train_and_register(settings, history_path, alias="champion")
        print(f"{settings.model_name} version {version} is champion")

        _say("starting the feature worker (faust) and the scorer")
        workers = [
            WorkerProcess("features", ["features", "worker"], settings).start(),
            WorkerProcess("scorer", ["score", "worker"], settings).start(),
        ]
        print("  " + ", ".join(f"{w.name} pid {w.pid} (log {w.log_path})" for w in workers))
        for worker, marker in zip(workers, (FEATURES_READY, SCORER_READY), strict=True):
            if not worker.wait_for_log(marker, timeout=120):
                raise ServiceError(f"{worker.name} did not become ready:\n{worker.log_tail()}")
        print("  both ready")

        speed = live_days * 86_400 / stream_seconds
        _say(
            f"streaming the last {live_days} days live in ~{stream_seconds:.0f}s "
            f"(event time x{speed:.0f}); alerts as they happen:"
        )
        stop_tail = threading.Event()
        tail = threading.Thread(
            target=tail_alerts,
            kwargs={"settings": settings, "from_beginning": True, "stop": stop_tail},
            daemon=True,
        )
        tail.start()
        result = publish_history(live_path, settings, speed=speed)
        scores = count_scores(settings, expected=result.sent, timeout=180.0)
        stop_tail.set()
        tail.join(timeout=10)

        _say("the REST API (fraudstream api)")
        api, api_settings = start_api(settings)
        workers.append(api)
        sample = live[live["is_fraud"]].tail(1) if live["is_fraud"].any() else live.tail(1)
        (transaction,) = iter_transactions(sample)
        transaction = {**transaction, "transaction_id": "demo-api-1"}
        show_api(api_settings, transaction)

        _say("summary")
        decisions = Counter(str(s["decision"]) for s in scores)
        labels = live.set_index("transaction_id")["is_fraud"]
        alerted = [s for s in scores if s["decision"] != "approve"]
        caught = sum(int(labels.get(str(s["transaction_id"]), 0)) for s in alerted)
        latencies = sorted(float(str(s["latency_ms"])) for s in scores) or [0.0]
        print(f"published {result.sent}, scored {len(scores)}: {dict(decisions)}")
        print(
            f"alerts {len(alerted)}, of which fraud {caught}; "
            f"fraud in live stream {int(live['is_fraud'].sum())}"
        )
        print(
            f"publish->decision latency p50 {latencies[len(latencies) // 2]:.0f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99)]:.0f} ms"
        )
        print(f"demo took {time.monotonic() - started_at:.0f}s")
        return 0 if len(scores) == result.sent else 1
    finally:
        _say("stopping")
        for worker in workers:
            code = worker.stop()
            print(f"{worker.name} (pid {worker.pid}) exited {code}")
        if not keep_services:
            for status in services.stop_services(settings, ("kafka", "redis")):
                print(status)
