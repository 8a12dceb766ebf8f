"""The stream stage's pure parts: release order, id verdicts, terminal pass and lateness."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

from features.card import Event, terminal_key
from features.core import N_CARD, FeatureCore, Label, LabelEvent
from features.stream.cards import CardStates
from features.stream.ids import CONFLICT, NEW, REDELIVERED, REPEAT, entry, judge_batch
from features.stream.items import (
    LabelItem,
    Rejected,
    TxnItem,
    content_hash,
    parse_label_message,
    parse_txn_message,
)
from features.stream.release import Buffers, card_order
from features.stream.terminals import apply_items, label_item, txn_item

T0 = 1_714_000_000_000
MIN = 60_000


def txn(tid: str, ms: int, card: str = "c1", amount: float = 10.0, terminal: str = "t1",
        offset: int = 0, partition: int = 0) -> TxnItem:
    event = Event(tid, ms, card, "m1", amount, "pos", "FR", None, terminal)
    record = {"transaction_id": tid, "card_id": card, "amount": amount, "ms": ms}
    return TxnItem(event, record, content_hash(record), ("tx", partition, offset), 0)


def lab(tid: str, ms: int, card: str = "c1", offset: int = 0) -> LabelItem:
    return LabelItem(Label(tid, card, ms, True), ("lb", 0, offset))


# -- release ----------------------------------------------------------------------------------
def test_release_waits_for_every_partition_to_pass_the_time() -> None:
    b = Buffers()
    b.assign([("tx", 0), ("tx", 1), ("lb", 0)], 0)
    b.add(("tx", 0), txn("a", T0 + 10, offset=0), 0)
    b.add(("tx", 0), txn("b", T0 + 30, offset=1), 0)
    b.add(("tx", 1), txn("c", T0 + 20, partition=1), 0)
    assert b.release(0) == {}  # lb[0] has not been read at all yet
    b.end(("lb", 0))
    out = b.release(0)
    assert [i.event.transaction_id for i in out[("tx", 0)]] == ["a"]  # b waits for tx[1]
    assert [i.event.transaction_id for i in out[("tx", 1)]] == ["c"]
    b.end(("tx", 1))
    assert [i.event.transaction_id for i in b.release(0)[("tx", 0)]] == ["b"]


def test_release_is_a_prefix_per_partition_and_rejects_travel_with_it() -> None:
    b = Buffers()
    b.assign([("tx", 0), ("tx", 1)], 0)
    b.add(("tx", 0), txn("a", T0 + 50, offset=0), 0)
    b.add(("tx", 0), Rejected("bad", "invalid", None, b"x", ("tx", 0, 1)), 0)
    b.add(("tx", 0), txn("b", T0 + 5, offset=2), 0)  # earlier time, but behind "a"
    b.add(("tx", 1), txn("c", T0 + 40, partition=1), 0)
    assert b.release(0) == {("tx", 1): [txn("c", T0 + 40, partition=1)]}
    b.end(("tx", 1))
    assert [i.position[2] for i in b.release(0)[("tx", 0)]] == [0, 1, 2]


def test_a_label_waits_until_a_later_time_was_read() -> None:
    b = Buffers()
    b.assign([("tx", 0), ("lb", 0)], 0)
    b.add(("tx", 0), txn("a", T0 + 10), 0)
    b.add(("lb", 0), lab("a", T0 + 10), 0)
    out = b.release(0)
    assert ("lb", 0) not in out and len(out[("tx", 0)]) == 1
    b.add(("tx", 0), txn("b", T0 + 11, offset=1), 0)
    assert ("lb", 0) not in b.release(0)  # lb[0] itself may still bring earlier labels
    b.end(("lb", 0))
    assert len(b.release(0)[("lb", 0)]) == 1


def test_card_order_places_labels_like_the_core() -> None:
    items = card_order([txn("a", 10), txn("b", 20)], [lab("x", 20), lab("y", 5)])
    assert [i.time_ms for i in items] == [5, 10, 20, 20]
    assert isinstance(items[2], TxnItem) and isinstance(items[3], LabelItem)


# -- ids ----------------------------------------------------------------------------------------
def test_id_verdicts() -> None:
    a = txn("t", T0, offset=3)
    same_place = txn("t", T0, offset=3)
    repeat = txn("t", T0, offset=9)
    other = txn("t", T0, amount=11.0, offset=9)
    other_card = txn("t", T0, card="c2", offset=9)
    stored = entry(a)
    assert judge_batch([a], [None]) == [NEW]
    assert judge_batch([same_place, repeat, other, other_card], [stored] * 4) == [
        REDELIVERED, REPEAT, CONFLICT, CONFLICT]
    assert judge_batch([a, repeat, other], [None] * 3) == [NEW, REPEAT, CONFLICT]


def test_messages_keyed_by_another_card_or_null_are_rejected() -> None:
    value = (b'{"transaction_id":"t1","event_time":"2024-05-01T12:00:00Z","card_id":"c1",'
             b'"merchant_id":"m1","amount":5.0,"country":"FR"}')
    assert isinstance(parse_txn_message(b"c1", value, ("tx", 0, 0), 0, 16384), TxnItem)
    for key in (None, b"c2", b"\xff\xfe"):
        got = parse_txn_message(key, value, ("tx", 0, 0), 0, 16384)
        assert isinstance(got, Rejected) and got.kind == "key"
    bad = parse_label_message(b"c1", b'{"transaction_id":"t1"}', ("lb", 0, 0), 0, 16384)
    assert isinstance(bad, Rejected) and bad.kind == "invalid"


# -- terminal pass ------------------------------------------------------------------------------
def _stream(n: int, seed: int) -> list[TxnItem]:
    rng = random.Random(seed)  # noqa: S311 - test data
    ms = T0
    out = []
    for i in range(n):
        ms += rng.randint(1, 20) * MIN
        out.append(txn(f"t{i:04d}", ms, card=f"c{rng.randint(0, 5)}",
                       amount=round(rng.uniform(1, 300), 2), terminal=f"k{rng.randint(0, 2)}"))
    return out


def _core_terminal(items: list[TxnItem]) -> dict[str, tuple[float, ...]]:
    core = FeatureCore()
    events = [i.event for i in items]
    return {t: v[N_CARD:] for t, v in core.run(events, []).items()}


def test_in_order_terminal_pass_equals_the_core_and_redo_reuses_rows() -> None:
    items = _stream(300, 1)
    states: dict = {}
    marks: dict = {}
    result = apply_items(states, [txn_item(i, ()) for i in items], {}, marks)
    assert not result.late
    assert result.vectors == _core_terminal(items)
    again = apply_items(states, [txn_item(i, ()) for i in items[-10:]], result.vectors, marks)
    assert not again.late and not again.changed  # stored rows reused, terminals untouched


def test_late_transactions_are_counted_and_later_vectors_match_again() -> None:
    items = _stream(400, 2)
    order = list(items)
    order[100], order[110] = order[110], order[100]  # one pair arrives swapped
    states: dict = {}
    marks: dict = {}
    got: dict = {}
    late = []
    for chunk in range(0, len(order), 5):  # batches of 5, each applied on its own
        res = apply_items(states, [txn_item(i, ()) for i in order[chunk: chunk + 5]], {}, marks)
        got.update(res.vectors)
        late += res.late
    expected = _core_terminal(items)
    assert items[100].event.transaction_id in {lt.item_id for lt in late}
    differ = {t for t in expected if abs(sum(expected[t]) - sum(got[t])) > 1e-6}
    allowed = {lt.item_id for lt in late}
    for lt in late:
        allowed |= {i.event.transaction_id for i in items
                    if terminal_key(i.event.terminal_id, "m1") == lt.terminal
                    and lt.from_ms <= i.event.event_ms <= lt.to_ms}
    assert differ and differ <= allowed
    assert all(got[t] == expected[t] for t in expected if t > "t0120")  # exact again


def test_a_label_applied_ahead_of_a_transaction_marks_that_transaction_late() -> None:
    a, b = txn("a", T0), txn("b", T0 + 10 * MIN)
    states: dict = {}
    marks: dict = {}
    apply_items(states, [txn_item(a, ())], {}, marks)
    label = LabelEvent("a", "t:t1", T0, T0 + 20 * MIN, True)
    assert not apply_items(states, [label_item(label)], {}, marks).late
    late = apply_items(states, [txn_item(b, ())], {}, marks).late
    assert [(x.item_id, x.kind) for x in late] == [("b", "transaction")]


def test_card_states_roll_back_to_the_committed_json() -> None:
    cards = CardStates()
    cards.load_partition(0, {})
    from features.card import card_update

    state, _ = card_update(None, txn("a", T0).event)
    cards.put("c1", state, 0)
    cards.commit(cards.encode_changed())
    state2, _ = card_update(cards.get("c1", 0), txn("b", T0 + MIN).event)
    cards.put("c1", state2, 0)
    cards.rollback()
    assert cards.get("c1", 0).recent == ["a"]  # type: ignore[union-attr]


def test_the_stage_serves_the_feature_service_without_importing_feast(tmp_path: Path) -> None:
    from features import definitions, redis_layout
    from features.core import FEATURE_NAMES

    assert redis_layout.TRANSACTION_VIEW == definitions.TRANSACTION_VIEW
    assert redis_layout.ENTITY_JOIN_KEY == definitions.ENTITY_JOIN_KEY
    (service,) = [d for d in definitions.build_definitions(tmp_path, timedelta(days=1))
                  if type(d).__name__ == "FeatureService"]
    served = [f.name for p in service.feature_view_projections for f in p.features]
    assert served == list(FEATURE_NAMES)


def test_a_capped_release_takes_the_earliest_records_across_partitions() -> None:
    b = Buffers()
    b.assign([("tx", 0), ("tx", 1)], 0)
    for i in range(5):
        b.add(("tx", 0), txn(f"a{i}", T0 + 10 * i, offset=i), 0)
        b.add(("tx", 1), txn(f"b{i}", T0 + 10 * i + 5, offset=i, partition=1), 0)
    b.end(("tx", 0))
    b.end(("tx", 1))
    first = b.release(0, limit=3)
    assert [i.event.transaction_id for i in first[("tx", 0)]] == ["a0", "a1"]
    assert [i.event.transaction_id for i in first[("tx", 1)]] == ["b0"]
    rest = b.release(0)
    assert sum(len(v) for v in rest.values()) == 7


# -- one batch, end to end (in-memory Redis and model) ------------------------------------------
class _Redis:
    """StageRedis without a server: an empty registry, writes kept."""

    def __init__(self) -> None:
        self.writes: list = []

    def read_ids(self, tids: list[str]) -> tuple[list, dict]:
        return [None] * len(tids), {}

    def write(self, terminals: list[str], compute, overlap=lambda: None) -> object:  # noqa: ANN001
        writes, _ = compute({t: None for t in terminals}, {})
        overlap()
        self.writes.append(writes)
        return writes


class _Decider:
    """Records what it was asked to decide (item, vector)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, tuple[float, ...]]] = []

    def decide(self, items: list[TxnItem], vectors: list, now_ms: int) -> tuple[list, list]:
        self.asked += [(t.event.transaction_id, v) for t, v in zip(items, vectors, strict=True)]
        return [t.event.transaction_id for t in items], []


def test_a_repeat_or_conflict_in_the_same_batch_is_never_decided() -> None:
    from features.stream.batch import process

    first = txn("dup", T0, card="c1", amount=10.0, offset=0)
    repeat = txn("dup", T0, card="c1", amount=10.0, offset=1)  # identical, another position
    other = txn("dup", T0 + MIN, card="c2", amount=99.0, offset=2)  # same id, another card
    plain = txn("solo", T0 + 2 * MIN, card="c3", offset=3)
    cards = CardStates()
    cards.load_partition(0, {})
    decider = _Decider()
    out = process({("tx", 0): [first, repeat, other, plain]}, "tx", cards, _Redis(),
                  decider, T0)  # type: ignore[arg-type]
    assert [tid for tid, _ in decider.asked] == ["dup", "solo"]  # one decision per id
    assert decider.asked[0][1][0] == 10.0  # scored with its own amount, not the conflict's
    assert [r.kind for _, r in out.rejected] == ["conflict"]
    assert out.verdicts == {"new": 2, "repeat": 1, "conflict": 1}


def test_a_partition_without_restored_states_aborts_the_batch() -> None:
    """Reading an unrestored partition as empty would start its cards afresh (wrong card
    features, nothing missing): the batch fails instead, and no record is dead-lettered."""
    import pytest

    from features.stream.batch import process
    from features.stream.cards import StateNotRestored

    cards = CardStates()
    cards.load_partition(0, {})
    with pytest.raises(StateNotRestored):
        cards.get("c1", 1)
    decider = _Decider()
    for records in ([txn("a", T0, partition=1)], [lab("a", T0, offset=0)]):
        with pytest.raises(StateNotRestored):
            process({("tx" if records[0].__class__ is TxnItem else "lb", 1): records}, "tx",
                    cards, _Redis(), decider, T0)  # type: ignore[arg-type]
    assert decider.asked == []


def test_a_failed_assignment_forgets_the_offsets_and_resets_the_clients(
        monkeypatch) -> None:  # noqa: ANN001
    """A restore that fails inside the assignment callback leaves no partition half-owned:
    every offset is forgotten (the reopened clients restore every partition they get) and
    the error is not a ServiceError (so the loop resets the clients rather than rewinding
    with an assignment that has no restored states)."""
    import pytest

    from features.stream import stage as stage_module
    from infra.errors import ServiceError

    class _Consumer:
        def committed(self, tps, timeout):  # noqa: ANN001, ANN202
            return tps

    def fail(settings, partitions):  # noqa: ANN001, ANN202
        raise ServiceError("changelog restore incomplete before the deadline")

    monkeypatch.setattr(stage_module.changelog, "restore", fail)
    s = stage_module.StreamStage.__new__(stage_module.StreamStage)
    from types import SimpleNamespace

    s.s, s.cards, s.offsets = SimpleNamespace(stream_call_timeout_s=1.0), CardStates(), {
        ("tx", 1): 5}
    s.cards.load_partition(0, {})
    with pytest.raises(stage_module.AssignmentFailed) as info:
        s._on_assign(_Consumer(), [stage_module.TopicPartition("tx", 1, 7)])  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, ServiceError)  # the restore's failure, kept
    assert not isinstance(info.value, ServiceError) and s.offsets == {}


class _Msg:
    """A consumed record (``eof``: an end-of-partition event instead)."""

    def __init__(self, eof: bool = False) -> None:
        self.eof = eof

    def error(self) -> object | None:
        return "end of partition" if self.eof else None


class _ScriptedConsumer:
    """Answers ``consume(n, timeout)`` from a script; records each call's arguments."""

    def __init__(self, *answers: list[_Msg]) -> None:
        self.answers, self.calls = list(answers), []  # type: list[list[_Msg]], list[tuple[int, float]]

    def consume(self, n: int, timeout: float) -> list[_Msg]:
        self.calls.append((n, timeout))
        return self.answers.pop(0) if self.answers else []


def _gathering_stage(records: int, ms: int) -> object:
    import time
    from types import SimpleNamespace

    from features.stream.stage import StreamStage

    st = StreamStage.__new__(StreamStage)
    st.s = SimpleNamespace(stream_batch_records=records, stream_batch_ms=ms,  # type: ignore[assignment]
                           stream_batch_size=1000)
    st._closed = time.perf_counter()
    return st


def test_a_batch_closes_on_its_record_count_then_takes_what_is_already_fetched() -> None:
    st = _gathering_stage(records=3, ms=60_000)
    consumer = _ScriptedConsumer([_Msg(), _Msg(eof=True)], [_Msg(), _Msg()], [_Msg()] * 5)
    got = st._gather(consumer)  # type: ignore[attr-defined]
    assert len(got) == 9
    # 3 records asked; an end-of-partition event is not a record, so 2 more; then no wait
    assert [n for n, _ in consumer.calls] == [3, 2, 997]
    assert consumer.calls[-1][1] == 0 and all(t > 50 for _, t in consumer.calls[:2])


def test_a_batch_closes_on_its_age_counted_from_the_previous_close() -> None:
    import time

    st = _gathering_stage(records=1000, ms=30)
    st._closed -= 0.030  # the previous batch's processing and commit used the whole window
    consumer = _ScriptedConsumer([_Msg()])
    assert len(st._gather(consumer)) == 1  # type: ignore[attr-defined]
    assert consumer.calls == [(1000, 0)]  # no wait left: only what is already fetched
    closed = st._closed  # type: ignore[attr-defined]
    consumer = _ScriptedConsumer()
    st._gather(consumer)  # type: ignore[attr-defined]
    assert consumer.calls[0][0] == 1000 and 0 < consumer.calls[0][1] <= 0.030
    assert st._closed > closed and time.perf_counter() >= st._closed  # type: ignore[attr-defined]


def test_garbage_collection_pauses_are_counted_by_generation() -> None:
    import gc

    from prometheus_client import CollectorRegistry, Counter

    from features.stream.service import gc_timer

    seconds = Counter("gc_seconds", "", ["generation"], registry=(r := CollectorRegistry()))
    gc.callbacks.append(hook := gc_timer(seconds))
    try:
        gc.collect(1)
    finally:
        gc.callbacks.remove(hook)
    assert r.get_sample_value("gc_seconds_total", {"generation": "1"}) > 0
    assert r.get_sample_value("gc_seconds_total", {"generation": "2"}) is None
