"""Fuzz the running pipeline: thousands of hostile messages mixed with valid ones.

Real Kafka and Redis; the feature worker, the scorer and the learner run as processes
(``infra.workers``), started once for the module. Valid simulated transactions are published
with hostile ones interleaved (:mod:`tests.fuzz.generator`), then hostile and valid labels.
Each test asserts one promise of ``DESIGN.md`` ("Guarantees") per category, and the module
prints a table of per-category counts. Size: ``FRAUDSTREAM_FUZZ_CASES`` (``make fuzz``).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from infra.settings import Settings
from infra.workers import WorkerProcess
from replay.history import iter_transactions, label_records
from replay.simulator import SimulationConfig, simulate
from streams.dlq import DeadLetter, parse_dead_letter
from streams.producer import TransactionProducer
from tests.fuzz.conftest import fuzz_cases
from tests.fuzz.generator import DEAD, ONCE_AND_DEAD, SCORED, SCORED_OR_DEAD, Case, Generator
from tests.integration.deployed import drain, prepare, running_workers, split_days


@dataclass
class Outcome:
    valid_ids: list[str]
    cases: list[Case]
    labels: list[Case]
    scored: Counter[str]
    letters: dict[bytes, list[DeadLetter]]  # transactions.dlq by original value
    label_letters: dict[bytes, list[DeadLetter]]  # labels.dlq by original value
    alive: dict[str, bool]
    learner_lag: dict[int, int]
    logs: str
    table: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def _by_value(letters: list[DeadLetter]) -> dict[bytes, list[DeadLetter]]:
    out: dict[bytes, list[DeadLetter]] = defaultdict(list)
    for letter in letters:
        out[letter.value or b""].append(letter)
    return out


def _learner_lag(s: Settings, timeout: float) -> dict[int, int]:
    """Per labels partition: high watermark minus the learner's committed offset (0 = done)."""
    consumer = Consumer({"bootstrap.servers": s.bootstrap_servers,
                         "group.id": s.consumer_group_learner, "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(s.topic_labels, timeout=10).topics[s.topic_labels]
        parts = [TopicPartition(s.topic_labels, p) for p in meta.partitions]
        deadline = time.monotonic() + timeout
        while True:
            committed = consumer.committed(parts, timeout=10)
            lag = {}
            for tp in committed:
                _, high = consumer.get_watermark_offsets(tp, timeout=10)
                lag[tp.partition] = high - max(tp.offset, 0)
            if not any(lag.values()) or time.monotonic() > deadline:
                return lag
            time.sleep(1.0)
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def outcome(fuzz_settings: Settings, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Outcome]:
    s = fuzz_settings
    n = fuzz_cases()
    frame = simulate(SimulationConfig(n_customers=300, n_terminals=150, days=24, seed=11))
    history, live = split_days(frame, 20)
    prepare(s, history, Path(tmp_path_factory.mktemp("history")))
    valid = list(iter_transactions(live.head(max(50, n // 2))))
    gen = Generator(seed=20_251_202, event_time=valid[0]["event_time"])
    cases = gen.transactions(n)
    valid_labels = list(label_records(live.head(max(50, n // 2))))[: max(20, n // 3)]
    labels = gen.labels(max(30, n // 3), valid_labels)
    rng = random.Random(7)  # noqa: S311 - seeded interleaving
    with running_workers(s) as procs:
        procs["learner"] = WorkerProcess("learner", ["learner"], s).start()
        try:
            with TransactionProducer(s) as producer:
                pending = list(cases)
                for record in valid:
                    producer.send(record)
                    while pending and rng.random() < len(cases) / len(valid):
                        case = pending.pop(0)
                        producer.send_raw(case.key, case.value)
                for case in pending:
                    producer.send_raw(case.key, case.value)
                for case in labels:
                    producer.send_raw(case.key, case.value, topic=s.topic_labels)
            scored_ids = {c.transaction_id for c in cases if c.expect in (SCORED, ONCE_AND_DEAD)}
            want = len(valid) + len(scored_ids)
            scores = drain(s, s.topic_scores, want, timeout=180 + 0.2 * want, settle=15)
            dead_want = sum(c.expect in (DEAD, ONCE_AND_DEAD) for c in cases)
            dead = drain(s, s.topic_dlq, dead_want, timeout=120, settle=10)
            label_dead = drain(s, s.topic_labels_dlq, sum(c.expect == DEAD for c in labels),
                               timeout=120, settle=5)
            lag = _learner_lag(s, timeout=60)
            alive = {name: p.alive() for name, p in procs.items()}
            logs = "\n".join(f"--- {name}:\n{p.log_tail(25)}" for name, p in procs.items())
        finally:
            procs["learner"].stop()
    scored = Counter(json.loads(m.value() or b"{}")["transaction_id"] for m in scores)
    result = Outcome([r["transaction_id"] for r in valid], cases, labels, scored,
                     _by_value([parse_dead_letter(m.value()) for m in dead]),
                     _by_value([parse_dead_letter(m.value()) for m in label_dead]),
                     alive, lag, logs)
    _tabulate(result)
    yield result


def _verdict(case: Case, o: Outcome) -> str:
    """'ok', or what went wrong with this transaction case."""
    n = o.scored.get(case.transaction_id, 0) if case.transaction_id else 0
    letters = [lt for lt in o.letters.get(case.value, []) if case.word.lower() in
               lt.reason.lower()]
    if case.expect == SCORED:
        return "ok" if n == 1 and not o.letters.get(case.value) else f"scored {n}x"
    if case.expect == DEAD:
        if n:
            return f"scored {n}x"
        return "ok" if letters else ("no dead letter" if case.value not in o.letters else
                                     f"reason lacks {case.word!r}: "
                                     f"{o.letters[case.value][0].reason[:80]}")
    if case.expect == SCORED_OR_DEAD:
        return "ok" if (n == 1) != bool(o.letters.get(case.value)) else (
            f"scored {n}x, {len(o.letters.get(case.value, []))} dead letters")
    # ONCE_AND_DEAD: the id decided once, the conflicting record dead-lettered as such
    return "ok" if n == 1 and letters else f"scored {n}x, conflict letter: {bool(letters)}"


def _label_verdict(case: Case, o: Outcome) -> str:
    letters = [lt for lt in o.label_letters.get(case.value, []) if lt.worker == "learner"]
    if case.expect == SCORED:  # a valid label: learned or parked, never dead-lettered
        return "ok" if not letters else f"dead-lettered: {letters[0].reason[:80]}"
    if not letters:
        return "no dead letter from the learner"
    return "ok" if case.word.lower() in letters[0].reason.lower() else (
        f"reason lacks {case.word!r}: {letters[0].reason[:80]}")


def _tabulate(o: Outcome) -> None:
    for case in o.cases:
        verdict = _verdict(case, o)
        row = o.table[case.category]
        row["published"] += 1
        row["ok" if verdict == "ok" else "failed"] += 1
        row["scored"] += int(bool(case.transaction_id and o.scored.get(case.transaction_id)))
        row["dead_lettered"] += int(bool(o.letters.get(case.value)))
    for case in o.labels:
        verdict = _label_verdict(case, o)
        row = o.table[case.category]
        row["published"] += 1
        row["ok" if verdict == "ok" else "failed"] += 1
        row["dead_lettered"] += int(bool(o.label_letters.get(case.value)))
    row = o.table["valid_transactions"]
    row["published"] = len(o.valid_ids)
    row["ok"] = sum(o.scored.get(t, 0) == 1 for t in o.valid_ids)
    row["failed"] = row["published"] - row["ok"]
    row["scored"] = sum(bool(o.scored.get(t)) for t in o.valid_ids)
    print("\nfuzz: category                   published     ok failed scored dead")
    for name in sorted(o.table):
        r = o.table[name]
        print(f"fuzz: {name:<26} {r['published']:>9} {r['ok']:>6} {r['failed']:>6} "
              f"{r['scored']:>6} {r['dead_lettered']:>4}")
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "fuzz.json").write_text(json.dumps(
        {"cases": fuzz_cases(), "run": uuid.uuid4().hex[:8],
         "categories": {k: dict(v) for k, v in sorted(o.table.items())}}, indent=2))


def _failures(o: Outcome, categories: set[str] | None = None, *,
              exclude: tuple[str, ...] = ()) -> list[str]:
    out = []
    for case in o.cases:
        if (categories is None or case.category in categories) and not case.category.startswith(
                exclude):
            verdict = _verdict(case, o)
            if verdict != "ok":
                out.append(f"{case.category} {case.value[:60]!r}: {verdict}")
    return out


def test_every_valid_transaction_is_scored_exactly_once(outcome: Outcome) -> None:
    wrong = {t: outcome.scored.get(t, 0) for t in outcome.valid_ids if outcome.scored.get(t) != 1}
    assert not wrong, f"{len(wrong)} valid transactions not scored once: {list(wrong.items())[:5]}"


def test_every_hostile_transaction_is_dead_lettered_with_a_reason(outcome: Outcome) -> None:
    failed = _failures(outcome, exclude=("reused_id", "key_mismatch"))
    assert not failed, f"{len(failed)} cases: " + "\n".join(failed[:15]) + "\n" + outcome.logs


def test_documented_valid_inputs_are_scored(outcome: Outcome) -> None:
    """Zero, smallest and largest amounts, unicode ids, a payload at the limit, a repeat."""
    cats = {"amount_documented_valid", "id_unicode_valid", "payload_at_limit",
            "reused_id_identical"}
    assert {c.category for c in outcome.cases} >= cats - {"reused_id_identical"}
    assert not _failures(outcome, cats)


def _pair_failures(o: Outcome, category: str) -> list[str]:
    """Each id of ``category`` decided once and all but one of its records dead-lettered as
    a conflict. For an id reused on another card the two records sit in two partitions,
    which Kafka does not order: whichever the stage reads second is the conflict."""
    by_id: dict[str, list[Case]] = {}
    for case in o.cases:
        if case.category == category and case.transaction_id:
            by_id.setdefault(case.transaction_id, []).append(case)
    out = []
    for tid, cases in by_id.items():
        word = cases[-1].word.lower()
        lettered = [c for c in cases
                    if any(word in lt.reason.lower() for lt in o.letters.get(c.value, []))]
        n = o.scored.get(tid, 0)
        if n != 1 or len(lettered) != len(cases) - 1:
            out.append(f"{category} {tid}: scored {n}x, {len(lettered)} of {len(cases)} "
                       "records dead-lettered as a conflict")
    return out


def test_conflicting_reused_ids_are_decided_once_and_dead_lettered(outcome: Outcome) -> None:
    """Needs the one-hop stream worker (id semantics of DESIGN.md)."""
    failed = [*_failures(outcome, {"reused_id_other_content"}),
              *_pair_failures(outcome, "reused_id_other_card")]
    twice = {t: n for t, n in outcome.scored.items() if n > 1}
    assert not twice, f"decided more than once: {list(twice.items())[:5]}"
    assert not failed, f"{len(failed)} conflicts: " + "\n".join(failed[:10])


def test_odd_keys_are_scored_once_or_dead_lettered(outcome: Outcome) -> None:
    """Null, empty, non-UTF-8 or another card's key: never dropped, never decided twice."""
    failed = _failures(outcome, {"key_mismatch"})
    assert not failed, f"{len(failed)} cases: " + "\n".join(failed[:10])


def test_hostile_labels_are_dead_lettered_by_the_learner(outcome: Outcome) -> None:
    failed = [f"{c.category} {c.value[:60]!r}: {v}" for c in outcome.labels
              if (v := _label_verdict(c, outcome)) != "ok"]
    assert not failed, f"{len(failed)} labels: " + "\n".join(failed[:15]) + "\n" + outcome.logs


def test_no_worker_died_and_every_consumer_kept_up(outcome: Outcome) -> None:
    assert all(outcome.alive.values()), f"{outcome.alive}\n{outcome.logs}"
    assert not any(outcome.learner_lag.values()), (
        f"learner stopped before the end of labels: {outcome.learner_lag}\n{outcome.logs}")


def test_generator_is_pure_and_covers_every_category() -> None:
    a, b = Generator(3), Generator(3)
    first, second = a.transactions(300), b.transactions(300)
    assert [(c.key, c.value) for c in first] == [(c.key, c.value) for c in second]
    cats = {c.category for c in first}
    assert {"random_bytes", "truncated_json", "deep_nesting", "huge_string", "wrong_type",
            "amount_absurd", "amount_documented_valid", "time_absurd", "id_control_chars",
            "id_unicode_valid", "key_mismatch", "payload_at_limit",
            "payload_over_limit"} <= cats, cats
    assert any(c.startswith("reused_id") for c in cats)
    labels = Generator(3).labels(200, [])
    assert {"label_missing_time", "label_infinity", "label_deep_nesting",
            "label_naive_time"} <= {c.category for c in labels}

