"""Where the co-located broker's CPU goes at a paced rate, client by client (a command).

    python -m bench.broker_cost [--rate 250] [--seconds 10]

Against a local Kafka started for it, publishes ~400-byte keyed records at ``--rate`` and
adds the stream stage's kinds of Kafka traffic one at a time, printing the broker's CPU per
published record (ms) for each step:

1. idle (nothing published; % of a core);
2. the publisher alone (``make_producer`` defaults, one ``produce`` per record);
3. + a read_committed consumer of the inputs (the stage's consumer settings);
4. + a transactional copy of each consumed batch to an output topic with its offsets
   (the stage's transaction shape), committed every ``--commit-ms``;
5. + a read_committed reader of that output (like the bench's collector).
Writes ``bench-results/broker_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.features_bench import process_cpu_s
from bench.pipeline_bench import service_pids
from features.stream.stage import TXN_RETRY_BACKOFF_MS
from infra.settings import Settings
from infra.testing import running_services
from streams.clients import make_admin, make_consumer, make_producer
from streams.topics import TopicSpec, ensure_topics

RESULTS = Path("bench-results") / "broker_cost.json"


class Loop(threading.Thread):
    """A background client loop until :meth:`stop`."""

    def __init__(self, body: Any) -> None:
        super().__init__(daemon=True)
        self.body, self.halt = body, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.body()

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def publisher(settings: Settings, topic: str, rate: float, linger_ms: int) -> Loop:
    producer = make_producer(settings, linger_ms=linger_ms)
    value = os.urandom(200).hex().encode()
    state = {"i": 0, "t0": time.monotonic()}

    def body() -> None:
        due = state["t0"] + state["i"] / rate
        wait = due - time.monotonic()
        if wait > 0:
            producer.poll(0)
            time.sleep(wait)
        producer.produce(topic, key=f"card-{state['i'] % 5000}".encode(), value=value)
        state["i"] += 1

    return Loop(body)


def reader(settings: Settings, topics: list[str], **overrides: Any) -> tuple[Loop, Consumer]:
    consumer = make_consumer(settings, f"cost-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="latest", **overrides)
    consumer.subscribe(topics)
    return Loop(lambda: consumer.consume(1000, 0.02)), consumer


def transactional_copy(settings: Settings, inputs: list[str], out: str, commit_ms: int) -> Loop:
    name = f"cost-{uuid.uuid4().hex[:6]}"
    producer = make_producer(settings, transactional_id=name, linger_ms=2,
                             retry_backoff_ms=TXN_RETRY_BACKOFF_MS)
    producer.init_transactions(30)
    consumer: Consumer = make_consumer(settings, name, auto_offset_reset="latest",
                                       partition_assignment_strategy="range")
    consumer.subscribe(inputs)

    def body() -> None:
        msgs = [m for m in consumer.consume(1000, commit_ms / 1000) if m.error() is None]
        if not msgs:
            return
        producer.begin_transaction()
        offsets: dict[tuple[str, int], int] = {}
        for m in msgs:
            producer.produce(out, key=m.key(), value=m.value())
            offsets[(m.topic() or "", m.partition() or 0)] = (m.offset() or 0) + 1
        producer.send_offsets_to_transaction(
            [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            consumer.consumer_group_metadata(), 10)
        producer.commit_transaction(10)

    return Loop(body)


def measure(pid: int, seconds: float) -> float:
    before = process_cpu_s(pid)
    time.sleep(seconds)
    return process_cpu_s(pid) - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--commit-ms", type=int, default=20)
    parser.add_argument("--linger-ms", type=int, default=5, help="the publisher's")
    parser.add_argument("--steps", type=int, default=4, help="how many of steps 2-5 to run")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"rate": args.rate, "commit_ms": args.commit_ms,
                               "linger_ms": args.linger_ms}
    with running_services() as settings:
        pid = service_pids(settings)["kafka"]
        ins, out = f"cost-in-{uuid.uuid4().hex[:4]}", f"cost-out-{uuid.uuid4().hex[:4]}"
        parts = settings.topic_partitions
        ensure_topics(make_admin(settings), [TopicSpec("bench", ins, parts, 1, {}),
                                             TopicSpec("bench", out, parts, 1, {})])
        time.sleep(2)
        results["idle_pct"] = round(measure(pid, args.seconds) * 100 / args.seconds, 1)
        print(f"broker idle: {results['idle_pct']}% of a core", flush=True)
        loops: list[Loop] = []
        steps = [
            ("publisher", lambda: publisher(settings, ins, args.rate, args.linger_ms)),
            ("+ read_committed consumer", lambda: reader(settings, [ins])[0]),
            ("+ transactional copy", lambda: transactional_copy(settings, [ins], out,
                                                                args.commit_ms)),
            ("+ output reader", lambda: reader(settings, [out])[0]),
        ]
        try:
            for name, make in steps[: args.steps]:
                loops.append(make())
                loops[-1].start()
                time.sleep(2)
                ms = measure(pid, args.seconds) * 1000 / (args.rate * args.seconds)
                results[name] = round(ms, 3)
                print(f"broker CPU per published record, {name}: {ms:.3f} ms", flush=True)
        finally:
            for loop in reversed(loops):
                loop.stop()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
