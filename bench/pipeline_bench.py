"""Benchmark of the streaming path, on this machine with the broker co-located (a command).

    python -m bench.pipeline_bench [--transactions 100000] [--rate 2000] [--seconds 30]

Measures, in one run against a local Kafka + Redis started for it:
1. passthrough ceiling: a do-nothing confluent-kafka consume -> produce of the same records;
2. sustained end-to-end throughput: a backlog of transactions through the feature worker and
   the scorer (first decision to last decision; start-up excluded);
3. publish -> decision latency p50/p99 while publishing at a fixed rate;
4. peak resident memory of the two worker processes.
Prints the numbers and writes them to ``bench-results/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from infra.bootstrap import bootstrap
from infra.services import SERVICES
from infra.services.lifecycle import owned_record
from infra.settings import Settings
from infra.testing import running_services
from infra.workers import WorkerProcess
from models.train import TrainConfig
from replay.history import write_history
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate
from streams.clients import make_admin, make_consumer, make_producer
from streams.topics import TopicSpec, ensure_topics

RESULTS = Path("bench-results") / "pipeline.json"
SMALL_HISTORY = TrainConfig(unknown_labels="genuine", test_days=5, delay_days=2, valid_days=4)


def rss_mb(pid: int | None) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` so far (NaN when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_pids(settings: Settings) -> dict[str, int]:
    """The pids of the broker and Redis this run started (none for external ones)."""
    records = {name: owned_record(svc, settings) for name, svc in SERVICES.items()}
    return {name: r.pid for name, r in records.items() if r is not None}


def passthrough(settings: Settings, n: int) -> float:
    """Messages/s of a do-nothing consume -> produce over ``n`` transactions already in Kafka."""
    out = f"passthrough-{uuid.uuid4().hex[:6]}"
    ensure_topics(make_admin(settings), [TopicSpec("bench", out, settings.topic_partitions, 1, {})])
    consumer = make_consumer(settings, f"passthrough-{uuid.uuid4().hex[:6]}")
    producer = make_producer(settings)
    consumer.subscribe([settings.topic_transactions])
    done, started = 0, 0.0
    while done < n:
        batch = [m for m in consumer.consume(1000, 1.0) if m.error() is None]
        if batch and not started:
            started = time.perf_counter()
        for m in batch:
            producer.produce(out, key=m.key(), value=m.value())
        producer.poll(0)
        done += len(batch)
    producer.flush(30)
    consumer.close()
    return n / (time.perf_counter() - started)


def collect_scores(
    settings: Settings, n: int, timeout: float, on_first: Callable[[], None] | None = None
) -> list[tuple[float, dict[str, Any]]]:
    """(arrival perf_counter, record) for ``n`` score records; ``on_first`` is called when
    the first arrives."""
    consumer = make_consumer(settings, f"bench-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([settings.topic_scores])
    out: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for m in consumer.consume(2000, 0.2):
            if m.error() is None:
                if not out and on_first is not None:
                    on_first()
                out.append((time.perf_counter(), json.loads(m.value() or b"{}")))
    consumer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"transactions": args.transactions, "rate": args.rate}
    customers = max(2000, args.transactions // 12)
    frame = simulate(SimulationConfig(n_customers=customers, n_terminals=1500, days=21, seed=3))
    history = frame[frame["event_time"] < frame["event_time"].min() + pd.Timedelta(days=14)]
    live = frame[frame["event_time"] >= frame["event_time"].min() + pd.Timedelta(days=14)]
    backlog, paced = live.head(args.transactions), live.iloc[args.transactions :]
    paced = paced.head(int(args.rate * args.seconds))
    with running_services() as base:
        settings = base.model_copy(update={"state_dir": base.state_dir / "bench"})
        work = settings.state_dir
        work.mkdir(parents=True, exist_ok=True)
        bootstrap(settings, write_history(history, work / "h.parquet"), SMALL_HISTORY)

        print(f"publishing a backlog of {len(backlog)} transactions", flush=True)
        publish_history(write_history(backlog, work / "backlog.parquet"), settings, progress=None)
        results["passthrough_per_s"] = round(passthrough(settings, len(backlog)))
        print(f"passthrough ceiling: {results['passthrough_per_s']:,} msg/s", flush=True)

        workers = [
            WorkerProcess("features", ["features", "worker"], settings).start(),
            WorkerProcess("scorer", ["score", "worker"], settings).start(),
        ]
        pids = {w.name: w.pid for w in workers} | service_pids(base)
        cpu_before: dict[str, float] = {}

        def sample() -> None:
            cpu_before.update({name: cpu_s(pid) for name, pid in pids.items()})

        try:
            got = collect_scores(settings, len(backlog), timeout=900, on_first=sample)
            if len(got) < len(backlog):
                raise SystemExit(f"only {len(got)} of {len(backlog)} decisions arrived")
            # CPU per decision of each process, from the first decision to the last
            results["cpu_ms_per_tx"] = {
                name: round((cpu_s(pid) - cpu_before[name]) * 1000 / (len(got) - 1), 4)
                for name, pid in pids.items()
            }
            print(f"CPU per decision (ms): {results['cpu_ms_per_tx']}", flush=True)
            first, last = got[0][0], got[-1][0]
            results["end_to_end_per_s"] = round(len(got) / (last - first))
            results["share_of_passthrough"] = round(
                results["end_to_end_per_s"] / results["passthrough_per_s"], 3
            )
            print(
                f"end to end: {results['end_to_end_per_s']:,} tx/s sustained "
                f"({results['share_of_passthrough']:.0%} of passthrough)",
                flush=True,
            )

            collected: list[tuple[float, dict[str, Any]]] = []
            reader = threading.Thread(
                target=lambda: collected.extend(collect_scores(settings, len(paced), 600)),
                daemon=True,
            )
            reader.start()
            publish_history(
                write_history(paced, work / "paced.parquet"),
                settings,
                max_rate=args.rate,
                progress=None,
            )
            reader.join(timeout=300)
            latency = np.array([r["latency_ms"] for _, r in collected], dtype=float)
            results["latency_ms"] = {
                "at_rate": args.rate,
                "n": int(latency.size),
                "p50": float(np.percentile(latency, 50)),
                "p99": float(np.percentile(latency, 99)),
            }
            print(
                f"latency at {args.rate:.0f} tx/s: p50 {results['latency_ms']['p50']:.0f} ms, "
                f"p99 {results['latency_ms']['p99']:.0f} ms (n={latency.size})",
                flush=True,
            )
            results["peak_rss_mb"] = {w.name: round(rss_mb(w.pid), 1) for w in workers}
            print(f"worker peak memory (MB): {results['peak_rss_mb']}", flush=True)
        finally:
            for w in workers:
                w.stop()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
