"""End to end on real Kafka, Redis, Feast and MLflow: publish -> features -> score.

A few thousand simulated transactions are published together with malformed messages of
every kind; every valid transaction must get exactly one record in ``scores`` and every
malformed one must land in ``transactions.dlq`` with a reason, while both workers keep running.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from infra.settings import Settings
from infra.workers import WorkerProcess
from replay.history import iter_transactions
from replay.simulator import SimulationConfig, simulate
from streams.dlq import parse_dead_letter
from streams.producer import TransactionProducer
from tests.integration.deployed import drain, prepare, running_workers, split_days

GOOD = {
    "transaction_id": "x",
    "event_time": "2025-02-01T10:00:00Z",
    "card_id": "card-x",
    "merchant_id": "m-1",
    "amount": 12.5,
    "currency": "EUR",
    "channel": "pos",
    "country": "FR",
    "mcc": "5411",
}


def _bad(**changes: object) -> bytes:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not None}).encode()


# key -> (payload, a word the dead-letter reason must contain)
MALFORMED: dict[str, tuple[bytes, str]] = {
    "bad-json": (b'{"transaction_id": "t1", "amount": 3', "JSON"),
    "bad-not-object": (b"[1, 2, 3]", "object"),
    "bad-missing-card": (_bad(card_id=None), "card_id"),
    "bad-missing-time": (_bad(event_time=None), "event_time"),
    "bad-amount-type": (_bad(amount="twelve"), "amount"),
    "bad-negative-amount": (_bad(amount=-40.0), "amount"),
    "bad-absurd-amount": (_bad(amount=5e12), "amount"),
    "bad-tiny-amount": (_bad(amount=5e-324), "amount"),  # zero is valid (card verification)
    "bad-naive-time": (_bad(event_time="2025-02-01T10:00:00"), "event_time"),
    "bad-absurd-time": (_bad(event_time=99_999_999_999_999), "event_time"),
    "bad-country": (_bad(country="France"), "country"),
    "bad-oversized": (_bad(note="x" * 40_000), "too large"),
    "bad-empty": (b"", "JSON"),
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate(SimulationConfig(n_customers=400, n_terminals=200, days=24, seed=11))


@pytest.fixture
def workers(
    settings: Settings, frame: pd.DataFrame, tmp_path: Path
) -> Iterator[dict[str, WorkerProcess]]:
    prepare(settings, split_days(frame, 20)[0], tmp_path)
    with running_workers(settings) as procs:
        yield procs


def test_each_valid_transaction_scored_exactly_once_and_bad_input_dead_lettered(
    settings: Settings, frame: pd.DataFrame, workers: dict[str, WorkerProcess]
) -> None:
    s = settings
    records = list(iter_transactions(split_days(frame, 20)[1].head(3000)))
    bad = list(MALFORMED.items())
    with TransactionProducer(s) as producer:
        for i, record in enumerate(records):
            producer.send(record)
            if i % 200 == 0 and bad:
                key, (payload, _) = bad.pop()
                producer.send_raw(key, payload)
        for key, (payload, _) in bad:
            producer.send_raw(key, payload)

    scores = drain(s, s.topic_scores, len(records), timeout=240, settle=5)
    counts = Counter(json.loads(m.value() or b"{}")["transaction_id"] for m in scores)
    valid_ids = {r["transaction_id"] for r in records}
    missing = valid_ids - set(counts)
    duplicated = {t: n for t, n in counts.items() if n > 1}
    logs = "\n".join(f"--- {n}:\n{p.log_tail(40)}" for n, p in workers.items())
    assert not missing, f"{len(missing)} valid transactions were never scored\n{logs}"
    assert not duplicated, f"scored more than once: {list(duplicated.items())[:5]}"
    assert set(counts) == valid_ids

    one = json.loads(scores[0].value() or b"{}")
    assert 0.0 <= one["score"] <= 1.0
    assert one["decision"] in {"approve", "review", "decline"}
    assert one["model_version"]["batch"] == "1"
    assert len(one["features"]) >= 10

    dead = drain(s, s.topic_dlq, len(MALFORMED), timeout=60, settle=3)
    letters = [parse_dead_letter(m.value()) for m in dead]
    by_key = {(letter.key or b"").decode(): letter for letter in letters}
    assert sorted(by_key) == sorted(MALFORMED)
    assert len(letters) == len(MALFORMED)
    for key, (payload, word) in MALFORMED.items():
        letter = by_key[key]
        assert word.lower() in letter.reason.lower(), (key, letter.reason)
        assert letter.topic == s.topic_transactions
        assert letter.partition >= 0 and letter.offset >= 0
        if not letter.value_truncated:
            assert letter.value == payload

    assert workers["stream"].alive(), workers["stream"].log_tail()
