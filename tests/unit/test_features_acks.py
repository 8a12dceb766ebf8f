"""Held messages and faust's commit bookkeeping: a commit never passes a held message.

Runs faust's own ``Consumer.ack`` / ``Consumer._new_offset`` (the offsets it commits) on
real ``faust`` messages, holding and releasing them in random order as the feature worker's
label and terminal stages do.
"""

from __future__ import annotations

import random
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from features.acks import InOrderAcks, OffsetGuard

TOPIC_PARTITION = TP("repartition", 0)


class Ledger:
    """faust's per-partition ack bookkeeping (no Kafka): what it would commit."""

    def __init__(self) -> None:
        self.consumer: Any = SimpleNamespace(
            app=SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True)),
            _committed_offset=defaultdict(lambda: None), _acked=defaultdict(list),
            _acked_index=defaultdict(set), _gap=defaultdict(_interval_tree),
            _unacked_messages=set(), _n_acked=0, _waiting_for_ack=None,
        )
        self.consumer.ack = Consumer.ack.__get__(self.consumer)
        self.committed: int | None = None

    def commit(self) -> int | None:
        offset = Consumer._new_offset(self.consumer, TOPIC_PARTITION)
        if offset is not None and (self.committed is None or offset > self.committed):
            self.committed = self.consumer._committed_offset[TOPIC_PARTITION] = offset
        return self.committed


def _interval_tree() -> Any:
    from intervaltree import IntervalTree

    return IntervalTree()


class Event:
    """A stream event as faust's ``take_events`` hands it over (one reference)."""

    def __init__(self, ledger: Ledger, offset: int) -> None:
        self.ledger = ledger
        self.message = ConsumerMessage(TOPIC_PARTITION.topic, TOPIC_PARTITION.partition,
                                       offset, 0.0, 0, None, None, None, None,
                                       tp=TOPIC_PARTITION)
        self.message.refcount = 1

    def ack(self) -> bool:
        return self.message.ack(self.ledger.consumer)


def run(seed: int, in_order: bool, messages: int = 60) -> list[str]:
    """Messages arrive in batches; some hold items released batches later. Returns the
    commits that passed a message still held (empty when correct)."""
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation
    ledger, acks = Ledger(), InOrderAcks()
    held: dict[int, Any] = {}  # offset -> what releases it
    violations: list[str] = []
    offset = 0
    while offset < messages or held:
        batch = [Event(ledger, o) for o in range(offset, min(offset + rng.randint(1, 5),
                                                             messages))]
        offset += len(batch)
        for event in batch:
            items = rng.choice([0, 0, 1, 2])  # a marks-only message holds nothing
            if in_order:
                hold = acks.hold(event, pending=items)
                if items:
                    held[event.message.offset] = hold
            elif items:  # the old way: one reference more per held item, ack on release
                event.message.incref(items)
                held[event.message.offset] = (event, items)
        for key in rng.sample(sorted(held), k=rng.randint(0, len(held))):
            if in_order:
                hold = held.pop(key)
                hold.ack(hold.pending)  # all of its items released
            else:
                event, items = held.pop(key)
                for _ in range(items):
                    event.ack()
        if in_order:
            acks.flush()
        for event in batch:  # take_events acks its batch after the agent's body
            event.ack()
        committed = ledger.commit()
        if committed is not None and held and min(held) < committed:
            violations.append(f"committed {committed} with {min(held)} held")
    return violations


def test_commits_never_pass_a_held_message() -> None:
    for seed in range(200):
        assert run(seed, in_order=True) == [], f"seed {seed}"


def test_the_old_way_lets_faust_commit_past_held_messages() -> None:
    """What the restart test lost items to: acknowledging a message as soon as its items
    are released, while an earlier one is still held (faust-streaming 0.15)."""
    assert any(run(seed, in_order=False) for seed in range(200))


def test_revoked_partition_is_forgotten_unacknowledged() -> None:
    ledger, acks = Ledger(), InOrderAcks()
    event = Event(ledger, 0)
    acks.hold(event, pending=1)
    acks.revoke(TOPIC_PARTITION)
    assert acks.flush() == 0 and acks.held() == 0
    assert event.message.refcount == 2  # never acknowledged here: redelivered to the new owner


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_guard_reads_skipped_messages_again_and_processes_each_offset_once() -> None:
    """A consumer that drops a run of messages, then delivers what it had fetched before the
    seek back, then everything from the sought offset: each offset is processed once, in
    order."""
    clock = Clock()
    guard = OffsetGuard(clock=clock)
    delivered = [*range(12, 16), *range(20, 24)]  # 16-19 dropped by the consumer
    processed, seeks = [], []
    for offset in delivered:
        ok, seek_to = guard.check("p", offset, committed=12)
        processed += [offset] if ok else []
        seeks += [seek_to] if seek_to is not None else []
    assert processed == [12, 13, 14, 15] and seeks == [16]
    for offset in range(16, 30):  # after the seek
        clock.now += 0.01
        ok, seek_to = guard.check("p", offset, committed=12)
        assert ok and seek_to is None
    for offset in (14, 29):  # copies of messages already processed
        assert guard.check("p", offset, committed=12) == (False, None)


def test_guard_seeks_to_the_committed_offset_when_the_first_message_is_beyond_it() -> None:
    guard = OffsetGuard()
    assert guard.check("p", 40, committed=31) == (False, 31)
    assert guard.check("p", 31, committed=31) == (True, None)
    fresh = OffsetGuard()
    assert fresh.check("p", 40, committed=None) == (True, None)  # nothing committed yet


def test_guard_accepts_a_real_gap_after_its_seeks() -> None:
    """Offsets without a message (transaction markers): after ``tries`` seeks, each given
    ``settle_s`` to bring the offset, the gap is accepted."""
    clock = Clock()
    guard = OffsetGuard(settle_s=1.0, tries=3, clock=clock)
    assert guard.check("p", 5, committed=5) == (True, None)
    assert guard.check("p", 7, committed=5) == (False, 6)  # 6 is a marker
    seeks = 1
    for _ in range(10):
        clock.now += 0.4
        ok, seek_to = guard.check("p", 7, committed=5)
        seeks += seek_to is not None
        if ok:
            break
    assert ok and seeks == 3
    assert guard.check("p", 8, committed=5) == (True, None)


def test_guard_forgets_a_revoked_partition() -> None:
    guard = OffsetGuard()
    guard.check("p", 5, committed=5)
    guard.revoke("p")
    assert guard.check("p", 9, committed=9) == (True, None)


def test_guard_without_tries_waits_for_the_offset() -> None:
    clock = Clock()
    guard = OffsetGuard(settle_s=1.0, tries=None, clock=clock)
    assert guard.check("p", 0, committed=0) == (True, None)
    for _ in range(20):
        clock.now += 1.5
        ok, seek_to = guard.check("p", 2, committed=0)
        assert not ok and seek_to == 1  # seeks again, never gives offset 1 up
    assert guard.check("p", 1, committed=0) == (True, None)
