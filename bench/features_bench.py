"""Feature worker benchmark: throughput, freshness, online batch reads (a command, not a test).

``python -m bench.features_bench [--transactions N] [--rate R] [--seconds S] [--repeat K]``

Starts Kafka and Redis (``infra.testing.running_services``), runs the real feature worker
(``fraudstream features worker`` as a child process) and measures:

1. throughput: N simulated transactions (+ their labels) pre-published, then the worker
   started; events/s from the first to the last feature row appearing in Redis;
2. freshness: transactions published live (event time = now) at R/s for S seconds; for each,
   the time from ``produce()`` until its row is readable in Redis (polled every ~1 ms);
3. online reads of micro-batches of 1, 100 and 500 transactions: ``OnlineFeatures.read``
   (one pipelined round trip + decoding Feast's protobufs) beside a raw Redis pipeline of
   the same HMGETs (no decoding) and Feast's ``get_online_features``.

Prints the numbers and writes ``bench-results/features.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from features.core import FEATURE_NAMES
from features.definitions import ENTITY_JOIN_KEY, TRANSACTION_VIEW
from features.labels import ensure_feature_topics
from features.redis_layout import feature_fields, redis_key
from features.store import OnlineFeatures
from infra.settings import Settings
from infra.testing import running_services
from infra.workers import WorkerProcess
from replay.history import label_records
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate
from streams.clients import make_producer
from streams.schema import EXAMPLE_TRANSACTIONS


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def start_worker(settings: Settings) -> WorkerProcess:
    worker = WorkerProcess(f"features-{uuid.uuid4().hex[:6]}", ["features", "worker"], settings)
    worker.start()
    if not worker.wait_for_log("Worker ready", timeout=180):
        raise RuntimeError(f"feature worker did not start:\n{worker.log_tail()}")
    return worker


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process (from /proc; other processes on the box do not
    inflate it, unlike wall-clock rates)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(settings: Settings, n: int) -> dict[str, Any]:
    customers = max(200, n // 20)
    frame = simulate(SimulationConfig(n_customers=customers, n_terminals=customers // 2,
                                      days=8, seed=5))
    frame = frame.iloc[:n]
    publish_history(frame, settings, progress=None)
    producer = make_producer(settings)
    for record in label_records(frame):
        producer.produce(settings.topic_labels, key=record["card_id"],
                         value=json.dumps(record).encode())
        producer.poll(0)
    producer.flush(60)
    online = OnlineFeatures(settings)
    project = settings.feast_project.encode()
    ids = frame["transaction_id"].tolist()
    worker = start_worker(settings)
    first: tuple[float, int] | None = None
    done_count, missing = 0, set(range(len(ids)))
    deadline = time.monotonic() + 900
    try:
        # rows appear roughly in publish order: check a window of not-yet-seen ids (EXISTS;
        # DBSIZE would also count the worker's entity-state snapshot keys)
        while missing and time.monotonic() < deadline:
            window = sorted(missing)[:2000]
            with online.redis.pipeline(transaction=False) as pipe:
                for i in window:
                    pipe.exists(redis_key(ENTITY_JOIN_KEY, ids[i], project))
                found = pipe.execute()
            now = time.monotonic()
            missing.difference_update(i for i, hit in zip(window, found, strict=True) if hit)
            done_count = len(ids) - len(missing)
            if done_count and first is None:
                first = (now, done_count)
                cpu_first = process_cpu_s(worker.pid)
            if missing:
                time.sleep(0.1)
        done = time.monotonic()
        cpu_done = process_cpu_s(worker.pid)
    finally:
        worker.stop()
    if first is None:
        raise RuntimeError(f"no feature row appeared:\n{worker.log_tail()}")
    if missing:
        raise RuntimeError(f"{len(missing)} rows missing after 900 s:\n{worker.log_tail()}")
    rate = (len(frame) - first[1]) / max(done - first[0], 1e-9)
    cpu_ms = (cpu_done - cpu_first) * 1000.0 / max(len(frame) - first[1], 1)
    return {"transactions": len(frame), "labels_published": len(frame), "events_per_s": rate,
            "seconds": done - first[0], "worker_cpu_ms_per_transaction": cpu_ms,
            "one_core_transactions_per_s": 1000.0 / cpu_ms if cpu_ms > 0 else None,
            "load_average": list(os.getloadavg())}


WARMUP_S = 5.0  # the first seconds after "Worker ready": first fetches, caches, commits


def freshness(settings: Settings, rate: float, seconds: float) -> dict[str, Any]:
    online = OnlineFeatures(settings)
    project = settings.feast_project.encode()
    worker = start_worker(settings)
    producer = make_producer(settings)
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def poll() -> None:
        client = OnlineFeatures(settings).redis
        while not stop.is_set() or len(seen) < len(sent):
            with lock:
                pending = [t for t in sent if t not in seen]
            if pending:
                with client.pipeline(transaction=False) as pipe:
                    for tid in pending:
                        pipe.exists(redis_key(ENTITY_JOIN_KEY, tid, project))
                    found = pipe.execute()
                now = time.perf_counter()
                for tid, hit in zip(pending, found, strict=True):
                    if hit:
                        seen[tid] = now
            if stop.is_set() and time.perf_counter() - stopped[0] > 30:
                return
            time.sleep(0.001)

    stopped = [0.0]
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    base = dict(EXAMPLE_TRANSACTIONS[0])
    try:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            target = start + i / rate
            while (delay := target - time.perf_counter()) > 0:
                time.sleep(min(delay, 0.002))
            tid = f"fresh-{i:07d}"
            record = {**base, "transaction_id": tid, "card_id": f"card-{i % 997}",
                      "terminal_id": f"t-{i % 311}", "amount": 10.0 + i % 50,
                      "event_time": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
            with lock:
                sent[tid] = time.perf_counter()
            producer.produce(settings.topic_transactions, key=record["card_id"],
                             value=json.dumps(record).encode())
            producer.poll(0)
        producer.flush(30)
        stopped[0] = time.perf_counter()
        stop.set()
        poller.join(60)
    finally:
        worker.stop()
    lags = [(seen[t] - sent[t]) * 1000.0 for t in sent if t in seen]
    # the worst lag in each second of publishing: warm-up, periodic pauses or steady tail
    per_second: dict[int, float] = {}
    for t in sent:
        if t in seen:
            second = int(sent[t] - start)
            per_second[second] = max(per_second.get(second, 0.0), (seen[t] - sent[t]) * 1000.0)
    steady = [(seen[t] - sent[t]) * 1000.0 for t in sent
              if t in seen and sent[t] - start >= WARMUP_S]
    del online
    return {"rate_per_s": rate, "published": len(sent), "readable": len(lags),
            "p50_ms": pct(lags, 0.5), "p99_ms": pct(lags, 0.99), "max_ms": max(lags),
            "warmup_s": WARMUP_S, "steady_p50_ms": pct(steady, 0.5),
            "steady_p99_ms": pct(steady, 0.99),
            "max_ms_by_second": [round(per_second.get(k, float("nan")), 1)
                                 for k in range(int(seconds) + 1)]}


def reads(settings: Settings, repeat: int) -> dict[str, Any]:
    online = OnlineFeatures(settings)
    project = settings.feast_project.encode()
    fields = feature_fields(TRANSACTION_VIEW, FEATURE_NAMES)
    ids = [f"fresh-{i:07d}" for i in range(5000)]  # written by the freshness run
    out: dict[str, Any] = {}
    online.read(ids[:10])
    online.read_via_feast(ids[:10])

    def timed(fn: Any, batch: list[str]) -> float:
        started = time.perf_counter()
        fn(batch)
        return (time.perf_counter() - started) * 1000.0

    def raw(batch: list[str]) -> None:
        with online.redis.pipeline(transaction=False) as pipe:
            for tid in batch:
                pipe.hmget(redis_key(ENTITY_JOIN_KEY, tid, project), fields)  # type: ignore[arg-type]
            pipe.execute()

    for size in (1, 100, 500):
        batches = [ids[(i * size) % (len(ids) - size):][:size] for i in range(repeat)]
        ours = [timed(online.read, b) for b in batches]
        base = [timed(raw, b) for b in batches]
        feast = [timed(online.read_via_feast, b) for b in batches[: max(5, repeat // 10)]]
        if any(v is None for v in online.read(batches[0])):
            raise RuntimeError("benchmark rows missing from the online store")
        out[str(size)] = {
            "read_p50_ms": statistics.median(ours), "read_p99_ms": pct(ours, 0.99),
            "raw_redis_p50_ms": statistics.median(base), "raw_redis_p99_ms": pct(base, 0.99),
            "feast_get_online_features_p50_ms": statistics.median(feast),
            "ratio_p50": statistics.median(ours) / statistics.median(base),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=40_000)
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--only-freshness", action="store_true",
                        help="skip the throughput and read benchmarks")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with running_services() as base:
        settings = base.model_copy(update={"faust_store": "rocksdict://"})
        ensure_feature_topics(settings)
        OnlineFeatures(settings).apply()
        if not args.only_freshness:
            results["throughput"] = throughput(settings, args.transactions)
            tp = results["throughput"]
            print(f"throughput: {tp['events_per_s']:,.0f} transactions/s "
                  f"({tp['transactions']} transactions + their labels); worker CPU "
                  f"{tp['worker_cpu_ms_per_transaction']:.3f} ms per transaction (+ its "
                  f"label) = {tp['one_core_transactions_per_s']:,.0f} transactions/s per "
                  f"core; load average {tp['load_average'][0]:.1f}")
        # own topics, consumer group and state: nothing left over from the throughput run
        # (e.g. its label backlog) may sit in front of the live transactions
        fresh = settings.model_copy(update={
            **{name: f"{value}-fresh" for name, value in settings
               if name.startswith(("topic_", "consumer_group_")) and isinstance(value, str)},
            "state_dir": settings.state_dir / "freshness"})
        ensure_feature_topics(fresh)
        results["freshness"] = freshness(fresh, args.rate, args.seconds)
        fresh = results["freshness"]
        print(f"freshness at {args.rate:.0f}/s: p50 {fresh['p50_ms']:.1f} ms, "
              f"p99 {fresh['p99_ms']:.1f} ms ({fresh['readable']}/{fresh['published']}); "
              f"after the first {WARMUP_S:.0f} s: p50 {fresh['steady_p50_ms']:.1f} ms, "
              f"p99 {fresh['steady_p99_ms']:.1f} ms; worst per second: "
              f"{fresh['max_ms_by_second']}")
        if not args.only_freshness:
            results["reads"] = reads(settings, args.repeat)
        for size, r in results.get("reads", {}).items():
            print(f"read {size:>3}: {r['read_p50_ms']:.2f} ms p50 vs raw Redis "
                  f"{r['raw_redis_p50_ms']:.2f} ms (x{r['ratio_p50']:.2f}); Feast "
                  f"get_online_features {r['feast_get_online_features_p50_ms']:.2f} ms")
    out = Path("bench-results") / ("freshness.json" if args.only_freshness else "features.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
