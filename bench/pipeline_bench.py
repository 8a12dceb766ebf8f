"""Benchmark of the streaming path, on this machine with the broker co-located (a command).

    python -m bench.pipeline_bench [--transactions 100000] [--rate 250,1000,2000] [--seconds 30]

Measures, in one run against a local Kafka + Redis started for it:
1. passthrough ceiling: a do-nothing confluent-kafka consume -> produce of the same records;
2. sustained end-to-end throughput: a backlog of transactions through the stream stage
   (``fraudstream stream worker``: features and decisions in one hop; first decision to
   last decision, start-up excluded) and CPU per decision of every process (the stage, the
   broker and Redis) while draining it;
3. publish -> decision latency p50/p99 while publishing at fixed rates, one run per rate
   (also after its first 5 s; a decision counts when a read_committed reader sees it), and
   CPU per decision of every process at that rate, and the broker's CPU per record of
   the publisher alone at that rate (into a topic nobody reads: the load generator's share);
   Before them, ``--warmup`` seconds at each rate are published and decided unmeasured:
   the broker's JIT compiler spends most of a core for the first minute or so of a new
   traffic mix (JFR: C2 compiler threads), which a long-running broker has behind it —
   measured cold, the first rate read 2.96 ms/tx broker CPU at 250 tx/s, warm 1.13;
4. CPU of every process while idle (nothing published);
5. peak resident memory of every process.
Prints the numbers and writes them to ``bench-results/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from bench.features_bench import process_cpu_s
from features.terminal import configure_label_delay
from infra.bootstrap import bootstrap
from infra.services import SERVICES
from infra.services.lifecycle import owned_record
from infra.services.process import free_ports
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


def service_pids(settings: Settings) -> dict[str, int]:
    """The pids of the broker and Redis this run started (none for external ones)."""
    records = {name: owned_record(svc, settings) for name, svc in SERVICES.items()}
    return {name: r.pid for name, r in records.items() if r is not None}


_SAMPLE = re.compile(r'^fraudstream_stream_(phase_seconds_total\{phase="(\w+)"\}|'
                     r'gc_seconds_total\{generation="(\d)"\}|batches_total) ([0-9.e+-]+)$',
                     re.MULTILINE)


def stage_counters(ports: list[int]) -> dict[str, float]:
    """The stage workers' loop time by phase (s; ``gcN``: collector pauses of generation N,
    inside the phases) and batch count, summed over their ``/metrics``."""
    out: dict[str, float] = {}
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:  # noqa: S310
                text = r.read().decode()
        except OSError:
            continue
        for m in _SAMPLE.finditer(text):
            key = m.group(2) or (f"gc{m.group(3)}" if m.group(3) else "batches")
            out[key] = out.get(key, 0.0) + float(m.group(4))
    return out


def phase_split(before: dict[str, float], after: dict[str, float], decided: int
                ) -> dict[str, float]:
    """Stage wall ms per decision by loop phase, and decisions per batch (``per_batch``)."""
    delta = {k: after.get(k, 0.0) - v for k, v in before.items()}
    batches = delta.pop("batches", 0.0)
    out = {k: round(v * 1000 / max(1, decided), 4) for k, v in delta.items()}
    out["per_batch"] = round(decided / batches, 1) if batches else float("nan")
    return out


def idle_cpu(pids: dict[str, int | None], seconds: float) -> dict[str, float]:
    """Each process's CPU (% of one core) while nothing is published."""
    before = {name: process_cpu_s(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: round((process_cpu_s(pid) - before[name]) * 100 / seconds, 1)
            for name, pid in pids.items()}


def publisher_cost(settings: Settings, frame: pd.DataFrame, rate: float, path: Path,
                   broker_pid: int | None, seconds: float = 5.0) -> float:
    """The broker's CPU per record (ms) of the publisher alone: ``seconds`` of ``frame`` at
    ``rate`` into a topic no one reads (what the load generator costs the broker, whatever
    the stage does)."""
    topic = f"bench-publish-{uuid.uuid4().hex[:6]}"
    ensure_topics(make_admin(settings),
                  [TopicSpec("bench", topic, settings.topic_partitions, 1, {})])
    rows = frame.head(max(1, int(rate * seconds)))
    before = process_cpu_s(broker_pid)
    publish_history(write_history(rows, path), settings, max_rate=rate, progress=None,
                    topic=topic)
    return round((process_cpu_s(broker_pid) - before) * 1000 / len(rows), 4)


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


class Collector:
    """Reads ``scores`` from its end (read_committed) in the background: when each decision
    became visible, and its publish -> visible latency (ms), by transaction id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scores: dict[str, tuple[float, dict[str, Any]]] = {}
        self.visible_ms: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, args=(settings.topic_scores,),
                                          daemon=True)]
        self._ready = threading.Barrier(2)

    def __enter__(self) -> Collector:
        for thread in self._threads:
            thread.start()
        self._ready.wait(60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _read(self, topic: str) -> None:
        consumer = make_consumer(self.settings, f"bench-{uuid.uuid4().hex[:6]}",
                                 auto_offset_reset="latest")
        consumer.subscribe([topic])
        waiting = True
        while not self._stop.is_set():
            # wait for the first record only: consume(n, t) holds what came until n arrive
            # or t passes, which would add up to t to every latency measured here
            first = consumer.poll(0.1)
            batch = [] if first is None else [first, *consumer.consume(2000, 0)]
            if waiting and consumer.assignment():
                waiting = False
                self._ready.wait(60)  # assigned: what is published from now on is seen
            now_ms = time.time() * 1000
            for m in batch:
                if m.error() is not None:
                    continue
                record = orjson.loads(m.value() or b"{}")
                tid = record["transaction_id"]
                self.scores[tid] = (time.perf_counter(), record)
                # the decision's produce time minus its publish -> decide latency = publish
                self.visible_ms[tid] = now_ms - (m.timestamp()[1] - record["latency_ms"])
        consumer.close()

    def wait_for(self, ids: set[str], timeout: float) -> list[tuple[float, dict[str, Any]]]:
        """``(arrival, record)`` of the decisions of ``ids`` in arrival order, once all came
        (or at ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(ids.intersection(self.scores)) < len(ids):
            time.sleep(0.2)
        return sorted((self.scores[i] for i in ids.intersection(self.scores)),
                      key=lambda hit: hit[0])


def percentiles(values: np.ndarray) -> dict[str, float]:
    values = values[~np.isnan(values)]
    if not values.size:
        return {"p50": float("nan"), "p99": float("nan")}
    return {"p50": round(float(np.percentile(values, 50)), 1),
            "p99": round(float(np.percentile(values, 99)), 1)}


def paced_latency(settings: Settings, collector: Collector, frame: pd.DataFrame, rate: float,
                  path: Path, pids: dict[str, int | None], ports: list[int]) -> dict[str, Any]:
    """Publish ``frame`` at ``rate`` tx/s; publish -> visible decision latency of its
    transactions, each process's CPU per transaction (and their sum) and the stage's wall
    time per transaction by loop phase."""
    ids = set(frame["transaction_id"])
    before = {name: process_cpu_s(pid) for name, pid in pids.items()}
    phases = stage_counters(ports)
    started = time.perf_counter()
    publish_history(write_history(frame, path), settings, max_rate=rate, progress=None)
    got = collector.wait_for(ids, timeout=600)
    cpu = {name: round((process_cpu_s(pid) - before[name]) * 1000 / len(ids), 4)
           for name, pid in pids.items()}
    latency = np.array([collector.visible_ms[r["transaction_id"]] for _, r in got], dtype=float)
    late = np.array([t - started for t, _ in got])
    steady = latency[late >= late.min() + 5.0] if late.size else latency  # after 5 s
    return {"rate": rate, "published": len(ids), "decided": len(got),
            **percentiles(latency), "after_5s": percentiles(steady),
            "at_decide": percentiles(np.array([r["latency_ms"] for _, r in got], dtype=float)),
            "cpu_ms_per_tx": cpu, "cpu_ms_per_tx_total": round(sum(cpu.values()), 4),
            "stage_wall_ms_per_tx": phase_split(phases, stage_counters(ports), len(got))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--rate", default="250,1000,2000",
                        help="publish rates (tx/s) of the latency runs, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds published (unmeasured) at each rate before the runs")
    parser.add_argument("--workers", type=int, default=1,
                        help="stream worker processes (one consumer group)")
    args = parser.parse_args(argv)
    configure_label_delay(Settings().label_delay_days)  # as the CLI does: one d
    rates = [float(r) for r in str(args.rate).split(",") if r.strip()]
    results: dict[str, Any] = {"transactions": args.transactions, "rates": rates,
                               "workers": args.workers}
    needed = args.transactions + sum(int(rate * (args.seconds + args.warmup)) for rate in rates)
    customers = max(2000, needed // 11)  # ~12 transactions per card in the 7 live days
    frame = simulate(SimulationConfig(n_customers=customers, n_terminals=1500, days=21, seed=3))
    history = frame[frame["event_time"] < frame["event_time"].min() + pd.Timedelta(days=14)]
    live = frame[frame["event_time"] >= frame["event_time"].min() + pd.Timedelta(days=14)]
    backlog, rest = live.head(args.transactions), live.iloc[args.transactions :]
    paced, warm, at = [], [], 0
    for rate in rates:
        warm.append(rest.iloc[at : at + int(rate * args.warmup)])
        at += int(rate * args.warmup)
        paced.append(rest.iloc[at : at + int(rate * args.seconds)])
        at += int(rate * args.seconds)
    if at > len(rest):
        raise SystemExit(f"the simulated stream has {len(rest)} transactions after the "
                         f"backlog; the latency runs need {at}: fewer --seconds or rates")
    with running_services() as base:
        settings = base.model_copy(update={"state_dir": base.state_dir / "bench"})
        ports = free_ports(args.workers)
        work = settings.state_dir
        work.mkdir(parents=True, exist_ok=True)
        bootstrap(settings, write_history(history, work / "h.parquet"), SMALL_HISTORY)

        print(f"publishing a backlog of {len(backlog)} transactions", flush=True)
        publish_history(write_history(backlog, work / "backlog.parquet"), settings, progress=None)
        results["passthrough_per_s"] = round(passthrough(settings, len(backlog)))
        print(f"passthrough ceiling: {results['passthrough_per_s']:,} msg/s", flush=True)

        collector = Collector(settings).__enter__()
        workers = [
            WorkerProcess(f"stream-{i}" if args.workers > 1 else "stream",
                          ["stream", "worker", "--instance", str(i)],
                          settings.model_copy(update={"stream_metrics_port": port})).start()
            for i, port in enumerate(ports)
        ]
        pids = {w.name: w.pid for w in workers} | service_pids(base)
        try:
            backlog_ids = set(backlog["transaction_id"])
            while not collector.scores:  # CPU is counted from the first decision
                time.sleep(0.05)
            cpu_before = {name: process_cpu_s(pid) for name, pid in pids.items()}
            phases = stage_counters(ports)
            got = collector.wait_for(backlog_ids, timeout=900)
            results["stage_wall_ms_per_tx"] = phase_split(phases, stage_counters(ports),
                                                          len(got) - 1)
            if len(got) < len(backlog):
                raise SystemExit(f"only {len(got)} of {len(backlog)} decisions arrived")
            # CPU per decision of each process, from the first decision to the last
            results["cpu_ms_per_tx"] = {
                name: round((process_cpu_s(pid) - cpu_before[name]) * 1000 / (len(got) - 1), 4)
                for name, pid in pids.items()
            }
            results["cpu_ms_per_tx_total"] = round(sum(results["cpu_ms_per_tx"].values()), 4)
            print(f"CPU per decision (ms), draining: {results['cpu_ms_per_tx']}, all "
                  f"processes {results['cpu_ms_per_tx_total']}", flush=True)
            first, last = got[0][0], got[-1][0]
            results["end_to_end_per_s"] = round(len(got) / (last - first))
            results["share_of_passthrough"] = round(
                results["end_to_end_per_s"] / results["passthrough_per_s"], 3
            )
            print(
                f"end to end: {results['end_to_end_per_s']:,} tx/s sustained "
                f"({results['share_of_passthrough']:.0%} of passthrough); stage wall ms/tx "
                f"by phase {results['stage_wall_ms_per_tx']}",
                flush=True,
            )
            results["idle_cpu_pct"] = idle_cpu(pids, 5.0)
            print(f"CPU while idle (% of a core): {results['idle_cpu_pct']}", flush=True)
            for rate, frame_at_rate in zip(rates, warm, strict=True):
                if len(frame_at_rate):
                    print(f"warming up at {rate:.0f} tx/s for {args.warmup:.0f} s", flush=True)
                    publish_history(write_history(frame_at_rate, work / f"warm-{rate:.0f}.parquet"),
                                    settings, max_rate=rate, progress=None)
                    collector.wait_for(set(frame_at_rate["transaction_id"]), timeout=600)
            results["warmup_s_per_rate"] = args.warmup
            results["latency_ms"] = []
            for rate, frame_at_rate in zip(rates, paced, strict=True):
                alone = publisher_cost(settings, frame_at_rate, rate,
                                       work / f"alone-{rate:.0f}.parquet", pids.get("kafka"))
                run = paced_latency(settings, collector, frame_at_rate, rate,
                                    work / f"paced-{rate:.0f}.parquet", pids, ports)
                run["publisher_alone_kafka_ms_per_tx"] = alone
                results["latency_ms"].append(run)
                print(f"latency at {rate:.0f} tx/s ({run['decided']} of {run['published']}): "
                      f"p50 {run['p50']:.0f} ms, p99 {run['p99']:.0f} ms; after 5 s p50 "
                      f"{run['after_5s']['p50']:.0f} / p99 {run['after_5s']['p99']:.0f} ms; "
                      f"CPU ms/tx {run['cpu_ms_per_tx']} (all {run['cpu_ms_per_tx_total']}); "
                      f"stage wall ms/tx by phase {run['stage_wall_ms_per_tx']}; the publisher "
                      f"alone costs the broker {alone} ms/tx", flush=True)
            results["peak_rss_mb"] = {name: round(rss_mb(pid), 1) for name, pid in pids.items()}
            print(f"worker peak memory (MB): {results['peak_rss_mb']}", flush=True)
        finally:
            for w in workers:
                w.stop()
            collector.__exit__()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
