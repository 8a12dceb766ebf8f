"""The worker's stages under crashes, in memory: a model of Kafka, the tables and the kill.

The model follows what the feature worker (:mod:`features.worker`) relies on:

- input topics (transactions, labels: keyed by card) and the repartition topic are logs;
  a consumer reads from its group's committed offset;
- the card stage emits a batch's repartition messages (durable once sent), then writes its
  card states to the table, then acknowledges the batch; the terminal stage writes the rows
  of released transactions to the online store, then its terminal states, then acknowledges
  (a held item's message only once the item is released);
- a table write is durable once its changelog message is delivered: a crash loses any
  suffix of the writes since the last commit; a commit first flushes every write, then
  commits, per partition, the offsets below the first unacknowledged message;
- a crash (SIGKILL) may happen between any two of those steps; the restarted stages start
  from the durable tables and the committed offsets.

Whatever the schedule and crash points, every transaction's online vector equals the
uninterrupted offline core's.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest

from features.backfill import compute_features, events_from_frame, labels_from_frame
from features.stages import CardStage, TerminalStage
from replay.simulator import SimulationConfig, simulate

N = 3


def part(key: str) -> int:
    return zlib.crc32(key.encode()) % N


class Crash(Exception):
    """The process is killed here."""


@dataclass
class Log:
    """One partition of a topic, with its group's committed offset and acknowledgements."""

    items: list[Any] = field(default_factory=list)
    committed: int = 0
    acked: set[int] = field(default_factory=set)

    def commit(self) -> None:
        while self.committed in self.acked:
            self.acked.discard(self.committed)
            self.committed += 1


@dataclass
class Handle:
    log: Log
    offset: int
    refs: int = 1

    def ack(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            self.log.acked.add(self.offset)


class CrashStore:
    """A table: reads see this incarnation's writes; durability lags until a commit."""

    def __init__(self, durable: dict[str, Any]) -> None:
        self.durable = durable
        self.live = dict(durable)
        self.pending: list[tuple[str, Any]] = []

    def get(self, key: str, handle: Any = None) -> Any:
        return self.live.get(key)

    def put(self, key: str, value: Any, handle: Any) -> None:
        assert isinstance(value, bytes), "stages store encoded states (no shared objects)"
        self.live[key] = value
        self.pending.append((key, value))

    def persist(self, count: int | None = None) -> None:
        count = len(self.pending) if count is None else count
        for key, value in self.pending[:count]:
            self.durable[key] = value
        del self.pending[:count]


class World:
    """The durable part: logs, tables, the online store."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.txns = [Log() for _ in range(N)]
        self.labels = [Log() for _ in range(N)]
        self.repartition = [Log() for _ in range(N)]
        for event in events_from_frame(frame):
            self.txns[part(event.card_id)].items.append(event)
        ordered = sorted(labels_from_frame(frame), key=lambda lb: (lb.label_ms,
                                                                   lb.transaction_id))
        for label in ordered:
            self.labels[part(label.card_id)].items.append(label)
        self.card_table: dict[str, Any] = {}
        self.terminal_table: dict[str, Any] = {}
        self.online: dict[str, tuple[float, ...]] = {}

    def logs(self) -> list[Log]:
        return self.txns + self.labels + self.repartition

    def done(self) -> bool:
        return all(log.committed == len(log.items) for log in self.logs())


class Incarnation:
    """One run of the worker process: stages, positions, tables' live views."""

    def __init__(self, world: World, rng: random.Random, crash_rate: float,
                 commit_rate: float) -> None:
        self.world, self.rng = world, rng
        self.crash_rate, self.commit_rate = crash_rate, commit_rate
        self.cards = CrashStore(world.card_table)
        self.terminals = CrashStore(world.terminal_table)
        self.card = CardStage(self.cards)
        self.terminal = TerminalStage(self.terminals, N)
        self.position = {id(log): log.committed for log in world.logs()}
        for log in world.logs():
            log.acked.clear()  # acknowledgements of the dead process are gone

    def maybe_crash(self) -> None:
        if self.rng.random() < self.crash_rate:
            for store in (self.cards, self.terminals):  # a random suffix is lost
                store.persist(self.rng.randint(0, len(store.pending)))
            raise Crash

    def read(self, log: Log, count: int) -> list[tuple[int, Any]]:
        start = self.position[id(log)]
        end = min(len(log.items), start + count)
        self.position[id(log)] = end
        return [(offset, log.items[offset]) for offset in range(start, end)]

    def caught_up(self, log: Log) -> bool:
        return self.position[id(log)] >= len(log.items)

    def emit(self, messages: list[Any], marks: list[bytes]) -> None:
        for key, value in messages:
            self.world.repartition[part(key.decode())].items.append(value)
        for mark in marks:
            for log in self.world.repartition:
                log.items.append(mark)

    def announce(self, partitions: list[int], messages: list[Any]) -> None:
        marks: list[bytes] = []
        handles = []
        for p in partitions:
            txn_idle = self.caught_up(self.world.txns[p])
            for message, handle in self.card.release_labels(p, txn_idle):
                if message is not None:
                    messages.append(message)
                handles.append(handle)
            marks += self.card.markers(p, txn_idle, self.caught_up(self.world.labels[p]))
        self.emit(messages, marks)
        self.maybe_crash()
        for handle in handles:
            handle.ack()

    def step_transactions(self, p: int) -> None:
        log = self.world.txns[p]
        batch = self.read(log, self.rng.randint(1, 40))
        out = []
        for offset, event in batch:
            record = {"card_id": event.card_id, "amount": event.amount}
            message = self.card.transaction(p, event, record, Handle(log, offset), offset)
            if message is not None:
                out.append(message)
        self.announce([p], out)
        self.card.flush()
        self.maybe_crash()
        for offset, _ in batch:
            log.acked.add(offset)

    def step_labels(self, p: int) -> None:
        log = self.world.labels[p]
        for offset, label in self.read(log, self.rng.randint(1, 20)):
            self.card.label(p, label, Handle(log, offset))
        self.announce([p], [])

    def step_terminals(self, k: int) -> None:
        log = self.world.repartition[k]
        batch = self.read(log, self.rng.randint(1, 60))
        handles = []
        for offset, raw in batch:
            handle = Handle(log, offset, refs=1)
            handle.refs += self.terminal.receive(k, json.loads(raw), handle)
            handles.append(handle)
        released = self.terminal.release(k)
        done = [r for r, _ in released if r is not None]
        for r in done:
            if not r.late or r.transaction_id not in self.world.online:
                self.world.online[r.transaction_id] = r.features
        self.maybe_crash()
        self.terminal.flush()
        self.maybe_crash()
        for _, handle in released:
            handle.ack()
        for handle in handles:
            handle.ack()  # the batch's own reference

    def commit(self) -> None:
        self.cards.persist()
        self.terminals.persist()
        for log in self.world.logs():
            log.commit()

    def step(self) -> None:
        choice = self.rng.random()
        p = self.rng.randrange(N)
        if choice < 0.3:
            self.step_transactions(p)
        elif choice < 0.45:
            self.step_labels(p)
        elif choice < 0.85:
            self.step_terminals(p)
        elif choice < 0.85 + self.commit_rate:
            self.commit()
        else:
            self.announce(list(range(N)), [])  # the idle timer


def run_with_crashes(frame: pd.DataFrame, seed: int, crashes: int,
                     commit_rate: float) -> tuple[dict[str, Any], int]:
    rng = random.Random(seed)  # noqa: S311 - a test schedule
    world = World(frame)
    crashed = 0
    incarnation = Incarnation(world, rng, 0.02, commit_rate)
    steps = 0
    while not world.done():
        steps += 1
        assert steps < 2_000_000, "no progress"
        if crashed >= crashes:
            incarnation.crash_rate = 0.0
        try:
            incarnation.step()
        except Crash:
            crashed += 1
            incarnation = Incarnation(world, rng, incarnation.crash_rate, commit_rate)
    return world.online, crashed


@pytest.mark.parametrize(("seed", "commit_rate"), [(1, 0.1), (2, 0.01), (3, 0.002)])
def test_crashes_anywhere_leave_every_vector_as_the_offline_core(seed: int,
                                                                 commit_rate: float) -> None:
    frame = simulate(SimulationConfig(n_customers=60, n_terminals=20, n_ecom_merchants=5,
                                      days=10, seed=seed, analyst_share=0.9,
                                      analyst_hours=(0.1, 3.0)))
    online, crashed = run_with_crashes(frame, seed, 25, commit_rate)
    assert crashed == 25
    offline = compute_features(frame)
    assert offline["term_fraud_count_30d"].max() > 0  # label-aware features exercised
    bad = []
    for tid, row in zip(frame["transaction_id"], offline.to_numpy().tolist(), strict=True):
        got = online.get(tid)
        if got is None or list(got) != pytest.approx(row, rel=1e-12, abs=1e-12):
            bad.append(tid)
    assert not bad, f"{len(bad)}/{len(frame)} vectors differ or are missing: {bad[:5]}"
