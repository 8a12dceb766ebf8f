"""The learner never crashes or loops on a bad record: labels go to labels.dlq with a reason.

Each hostile label of issue 12 (no ``label_time``, ``Infinity``, 5,000-deep nesting, a naive
time, an overflowing offset) is fed between good records; the learner must dead-letter each
one once with its reason and source position, keep learning from the good ones, and only
checkpoint offsets after the dead letters were confirmed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from features.core import FEATURE_NAMES
from infra.errors import InvalidInput, ServiceError
from infra.settings import Settings
from models.learner import Learner
from streams.dlq import parse_dead_letter
from streams.isolation import RecordGuard
from tests.fakes import FakeMessage


class FakeProducer:
    """Records what is produced; ``fail`` makes every delivery report an error."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []
        self.pending: list[Any] = []
        self.fail = fail

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                on_delivery: Any = None, **_: Any) -> None:
        self.records.append((topic, key, value))
        if on_delivery is not None:
            self.pending.append(on_delivery)

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def flush(self, timeout: float = 0.0) -> int:
        for callback in self.pending:
            callback("broker down" if self.fail else None, None)
        self.pending.clear()
        return 0


def label(tid: str, **changes: Any) -> dict[str, Any]:
    return {"transaction_id": tid, "card_id": "c", "label": "fraud", "source": "analyst",
            "label_time": "2025-01-10T12:00:00Z", **changes}


def score(tid: str) -> bytes:
    return json.dumps({"transaction_id": tid, "event_time": "2025-01-10T10:00:00Z",
                       "card_id": "c", "features": {n: 1.0 for n in FEATURE_NAMES}}).encode()


def without_time(tid: str) -> dict[str, Any]:
    record = label(tid)
    del record["label_time"]
    return record


HOSTILE: dict[str, bytes] = {
    "missing label_time": json.dumps(without_time("t9")).encode(),
    "Infinity": json.dumps(label("t9", label_time=float("inf"))).encode(),
    "deep nesting": b'{"transaction_id": "t9", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "naive time": json.dumps(label("t9", label_time="2025-01-10T12:00:00")).encode(),
    "overflowing offset": json.dumps(label("t9", label_time="9999-12-31T23:59:59-01:00")
                                     ).encode(),
    "1e300": json.dumps(label("t9", label_time=1e300)).encode(),
    "random bytes": bytes(range(256)),
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, online_negative_rate=1.0)


def test_hostile_labels_are_dead_lettered_and_good_ones_learned(settings: Settings) -> None:
    producer = FakeProducer()
    learner = Learner(settings, dlq_producer=producer)
    labels = settings.topic_labels
    messages = [FakeMessage(score("t1"), 0, topic=settings.topic_scores)]
    for i, raw in enumerate(HOSTILE.values()):
        messages.append(FakeMessage(raw, i, b"c", topic=labels))
    messages.append(FakeMessage(json.dumps(label("t1")).encode(), len(HOSTILE), b"c",
                                topic=labels))
    learner.process(messages)
    assert learner.core.model.frauds == 1  # the good label after them was learned
    letters = [parse_dead_letter(value) for topic, _, value in producer.records]
    assert all(topic == settings.topic_labels_dlq for topic, _, _ in producer.records)
    assert [lt.offset for lt in letters] == list(range(len(HOSTILE)))
    assert [lt.value for lt in letters] == list(HOSTILE.values())
    reasons = dict(zip(HOSTILE, (lt.reason for lt in letters), strict=True))
    assert "label_time: Field required" in reasons["missing label_time"]
    assert "label_time: must be a finite time" in reasons["Infinity"]
    assert "malformed JSON" in reasons["deep nesting"]
    assert "timezone" in reasons["naive time"]
    assert "range" in reasons["overflowing offset"] and "range" in reasons["1e300"]
    assert "UTF-8" in reasons["random bytes"]
    assert learner.maybe_snapshot(force=True) == 1
    assert learner.core.offsets[(labels, 0)] == len(HOSTILE) + 1
    text = learner.metrics.exposition().decode()
    assert f'fraudstream_online_join_total{{outcome="dead_lettered"}} {len(HOSTILE)}.0' in text


def test_a_checkpoint_waits_for_confirmed_dead_letters(settings: Settings) -> None:
    learner = Learner(settings, dlq_producer=FakeProducer(fail=True))
    learner.process([FakeMessage(b"{", 0, topic=settings.topic_labels)])
    with pytest.raises(ServiceError):
        learner.maybe_snapshot(force=True)
    assert learner.store.load_checkpoint() is None  # offsets past it were not stored


def test_a_bad_score_record_is_skipped_and_counted(settings: Settings) -> None:
    learner = Learner(settings, dlq_producer=FakeProducer())
    learner.process([FakeMessage(b'{"transaction_id": "t"}', 0, topic=settings.topic_scores),
                     FakeMessage(b"\x00", 1, topic=settings.topic_scores)])
    assert learner.score_guard.outcomes["invalid_skipped"] == 2
    assert learner.core.offsets[(settings.topic_scores, 0)] == 2


def test_guard_retries_unexpected_errors_a_bounded_number_of_times() -> None:
    producer = FakeProducer()
    from streams.dlq import DeadLetterRouter

    guard = RecordGuard(DeadLetterRouter(producer, "labels.dlq"), tries=3)
    calls = []

    def boom() -> None:
        calls.append(1)
        raise RecursionError("maximum recursion depth exceeded")

    assert guard.run(FakeMessage(b"x", 7, topic="labels"), boom) == (False, None)
    assert len(calls) == 3 and guard.outcomes["failed_dead_lettered"] == 1
    letter = parse_dead_letter(producer.records[0][2])
    assert letter.reason.startswith("RecursionError") and letter.source == "labels[0]@7"

    def invalid() -> None:
        calls.append(1)
        raise InvalidInput("bad")

    calls.clear()
    assert guard.run(FakeMessage(b"x", 8, topic="labels"), invalid) == (False, None)
    assert len(calls) == 1  # bad input is not retried

    def down() -> None:
        raise ServiceError("redis down")

    with pytest.raises(ServiceError):  # a dependency failure is not the record's fault
        guard.run(FakeMessage(b"x", 9, topic="labels"), down)
