"""Hostile ``transactions`` and ``labels`` messages, by category (pure, seeded).

Each :class:`Case` is one message (key and value bytes as published) with what the pipeline
must do with it (:data:`SCORED`, :data:`DEAD`, :data:`SCORED_OR_DEAD`, :data:`ONCE_AND_DEAD`)
and a word its dead-letter reason must contain. The categories follow issue 12: random bytes,
truncated and deeply nested JSON, huge strings, wrong types per field, NaN/Infinity/subnormal/
1e308/zero amounts, far-past/far-future/naive times, unicode and control characters in ids,
reused ids, mismatched/null keys, payloads at and over the limit. Every transaction id is
unique to its case (``fz-<n>``) and every case has its own card, so the expectations of one
case never depend on another's outcome; the values are unique bytes, which is how the test
finds each case's dead letter.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

SCORED = "scored"  # valid (or documented valid): exactly one decision
DEAD = "dead"  # invalid: dead-lettered with a reason, never scored
SCORED_OR_DEAD = "scored_or_dead"  # valid value, odd key: one decision or one dead letter
ONCE_AND_DEAD = "once_and_dead"  # the second of a conflicting pair: dead, the id scored once
LIMIT = 16 * 1024
EVENT_TIME = "2025-03-01T12:00:00Z"


@dataclass(frozen=True)
class Case:
    category: str
    key: bytes | None
    value: bytes
    expect: str
    word: str = ""  # the dead-letter reason contains it (case-insensitive)
    transaction_id: str | None = None  # for cases that must (or may) be scored


def _dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, allow_nan=True).encode()  # \uXXXX escapes: always UTF-8


class Generator:
    """Seeded source of cases; ``base_ms`` is the event time of the valid ones."""

    def __init__(self, seed: int, event_time: str = EVENT_TIME) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - seeded test data, not secrets
        self.event_time = event_time
        self.n = 0

    def _record(self, **changes: Any) -> dict[str, Any]:
        self.n += 1
        record: dict[str, Any] = {
            "transaction_id": f"fz-{self.n}", "event_time": self.event_time,
            "card_id": f"fz-card-{self.n}", "merchant_id": f"fz-m-{self.rng.randint(1, 50)}",
            "terminal_id": f"fz-t-{self.rng.randint(1, 80)}",
            "amount": round(self.rng.uniform(1, 300), 2), "currency": "EUR",
            "channel": self.rng.choice(["pos", "ecom"]), "country": "FR", "mcc": "5411",
        }
        record.update(changes)
        return {k: v for k, v in record.items() if v is not _DROP}

    def _case(self, category: str, record: dict[str, Any], expect: str, word: str = "",
              key: bytes | None | object = ..., value: bytes | None = None) -> Case:
        raw = value if value is not None else _dumps(record)
        card = record.get("card_id")
        k = (str(card).encode("utf-8", "surrogatepass") if isinstance(card, str) else b"x"
             ) if key is ... else key
        tid = record.get("transaction_id")
        return Case(category, k if isinstance(k, bytes | None) else None, raw, expect, word,
                    tid if isinstance(tid, str) else None)

    # -- transactions -----------------------------------------------------------------------
    def random_bytes(self) -> Case:
        while True:
            raw = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 300)))
            try:
                json.loads(raw)
            except ValueError:
                return self._case("random_bytes", {}, DEAD, "", key=b"rb", value=raw +
                                  f"#{self.n}".encode())
            self.n += 1

    def truncated(self) -> Case:
        raw = _dumps(self._record())
        cut = self.rng.randint(1, len(raw) - 1)
        return self._case("truncated_json", {}, DEAD, "JSON", key=b"tr", value=raw[:cut])

    def deep(self) -> Case:
        depth = self.rng.randint(3000, 7000)
        record = self._record()
        raw = _dumps(record)[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
        return self._case("deep_nesting", record, DEAD, "JSON", value=raw)

    def huge_string(self) -> Case:
        if self.rng.random() < 0.5:
            record = self._record(note="x" * self.rng.randint(LIMIT, 3 * LIMIT))
            return self._case("huge_string", record, DEAD, "too large")
        field = self.rng.choice(["transaction_id", "merchant_id", "device_id"])
        record = self._record(**{field: "y" * self.rng.randint(129, 5000)})
        return self._case("huge_string", record, DEAD, field)

    WRONG: tuple[tuple[str, Any], ...] = (
        ("amount", "12.50"), ("amount", True), ("amount", None), ("amount", [1]),
        ("amount", {"v": 1}), ("card_id", 123), ("transaction_id", 5.5),
        ("event_time", [2025, 3, 1]), ("event_time", True), ("mcc", True), ("mcc", 12345),
        ("channel", 5), ("channel", "telepathy"), ("schema_version", "1"),
        ("schema_version", 1.0), ("country", 12), ("currency", "eur"), ("terminal_id", 7),
    )

    def wrong_type(self) -> Case:
        field, value = self.rng.choice(self.WRONG)
        record = self._record(**{field: value})
        if field == "card_id":  # keyed by a card id the record does not carry
            return self._case("wrong_type", record, DEAD, field, key=b"123")
        return self._case("wrong_type", record, DEAD, field)

    BAD_AMOUNTS: tuple[Any, ...] = (float("nan"), float("inf"), float("-inf"), 5e-324,
                                    1e-300, 1e308, -1.0, -0.01, 1e12, 10**30)
    GOOD_AMOUNTS: tuple[float, ...] = (0, 0.0, 0.0001, 1_000_000)

    def amount(self) -> Case:
        if self.rng.random() < 0.3:
            record = self._record(amount=self.rng.choice(self.GOOD_AMOUNTS))
            return self._case("amount_documented_valid", record, SCORED)
        record = self._record(amount=self.rng.choice(self.BAD_AMOUNTS))
        return self._case("amount_absurd", record, DEAD, "amount")

    BAD_TIMES: tuple[Any, ...] = (
        "1970-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00", "2150-01-01T00:00:00Z", 1e300, 10**30, -1,
        1_740_830_400, "2025-03-01T12:00:00", "2025-03-01", "yesterday", float("nan"),
        1_740_830_400_000.5,
    )

    def time(self) -> Case:
        record = self._record(event_time=self.rng.choice(self.BAD_TIMES))
        return self._case("time_absurd", record, DEAD, "event_time")

    GOOD_IDS = ("Café ☕ 東京, no 5", "fraud_Kutch, Hermiston and Farrell", "Ñandú-ü")
    BAD_IDS = ("a\x00b", "line\nbreak", "tab\there", "zero\u200bwidth", "\ud800", "",
               "  ", "bell\x07", "\x7f", "nbsp\u00a0x")

    def ids(self) -> Case:
        field = self.rng.choice(["merchant_id", "terminal_id", "device_id", "card_id"])
        if self.rng.random() < 0.3:
            record = self._record(**{field: self.rng.choice(self.GOOD_IDS) + f" {self.n}"})
            return self._case("id_unicode_valid", record, SCORED)
        record = self._record(**{field: self.rng.choice(self.BAD_IDS)})
        return self._case("id_control_chars", record, DEAD, field, key=b"bad-id")

    def keys(self) -> Case:
        record = self._record()
        key = self.rng.choice([None, b"", b"\xff\xfe\x00", b"another-card",
                               record["card_id"].upper().encode()])
        return self._case("key_mismatch", record, SCORED_OR_DEAD, "key", key=key)

    def limit(self) -> list[Case]:
        """A valid record padded to exactly the limit (scored) and one byte over (dead)."""
        out = []
        for extra, expect in ((0, SCORED), (1, DEAD)):
            record = self._record(note="")
            pad = LIMIT + extra - len(_dumps(record))
            record["note"] = "p" * pad
            assert len(_dumps(record)) == LIMIT + extra  # noqa: S101 - generator invariant
            out.append(self._case("payload_at_limit" if not extra else "payload_over_limit",
                                  record, expect, "too large"))
        return out

    def reused(self) -> list[Case]:
        """An identical repeat (one decision) or a conflicting one (the second dead)."""
        record = self._record()
        kind = self.rng.choice(["identical", "other_content", "other_card"])
        first = self._case("reused_id_" + kind, record, SCORED)
        if kind == "identical":
            return [first, self._case("reused_id_identical", record, SCORED)]
        changes = ({"amount": record["amount"] + 1} if kind == "other_content"
                   else {"card_id": record["card_id"] + "-other"})
        again = {**record, **changes}
        return [first, self._case("reused_id_" + kind, again, ONCE_AND_DEAD, "conflict")]

    def transactions(self, n: int) -> list[Case]:
        """About ``n`` hostile transactions, every category represented."""
        makers = [self.random_bytes, self.truncated, self.deep, self.huge_string,
                  self.wrong_type, self.amount, self.time, self.ids, self.keys]
        cases: list[Case] = [*self.limit()]
        while len(cases) < n:
            if self.rng.random() < 0.08:
                cases += self.reused()
            else:
                cases.append(self.rng.choice(makers)())
        return cases

    # -- labels -----------------------------------------------------------------------------
    def labels(self, n: int, valid: list[dict[str, Any]]) -> list[Case]:
        """``n`` hostile labels plus the ``valid`` label records, shuffled (valid ones keep
        their order)."""
        def label(**changes: Any) -> dict[str, Any]:
            self.n += 1
            record = {"transaction_id": f"fzl-{self.n}", "card_id": f"fz-card-{self.n}",
                      "label": "fraud", "source": "chargeback",
                      "label_time": "2025-03-05T00:00:00Z", **changes}
            return {k: v for k, v in record.items() if v is not _DROP}

        bad: list[tuple[str, dict[str, Any] | bytes, str]] = [
            ("label_missing_time", label(label_time=_DROP), "label_time"),
            ("label_infinity", label(label_time=float("inf")), "label_time"),
            ("label_1e300", label(label_time=1e300), "label_time"),
            ("label_10e30", label(label_time=10**30), "label_time"),
            ("label_overflow_offset", label(label_time="9999-12-31T23:59:59-01:00"),
             "label_time"),
            ("label_overflow_offset", label(label_time="0001-01-01T00:00:00+01:00"),
             "label_time"),
            ("label_naive_time", label(label_time="2025-03-05T00:00:00"), "label_time"),
            ("label_wrong_type", label(label=1), "label"),
            ("label_wrong_type", label(label="maybe"), "label"),
            ("label_wrong_type", label(transaction_id=5), "transaction_id"),
            ("label_control_chars", label(card_id="c\x00d"), "card_id"),
            ("label_huge", label(source="s" * (LIMIT + 10)), "too large"),
        ]
        cases: list[Case] = []
        while len(cases) < n:
            roll = self.rng.random()
            if roll < 0.15:
                raw = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 200)))
                cases.append(Case("label_random_bytes", b"rb", raw + f"#{self.n}".encode(),
                                  DEAD))
                self.n += 1
            elif roll < 0.3:
                raw = _dumps(label())
                cases.append(Case("label_truncated", b"tr",
                                  raw[: self.rng.randint(1, len(raw) - 1)], DEAD, "JSON"))
            elif roll < 0.4:
                depth = self.rng.randint(3000, 7000)
                raw = _dumps(label())[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
                cases.append(Case("label_deep_nesting", b"dn", raw, DEAD, "JSON"))
            else:
                category, record, word = self.rng.choice(bad)
                record = {**record, "transaction_id": f"fzl-{self.n}"} if isinstance(
                    record, dict) and isinstance(record.get("transaction_id"), str) else record
                self.n += 1
                raw = record if isinstance(record, bytes) else _dumps(record)
                cases.append(Case(category, b"lbl", raw, DEAD, word))
        good = [Case("label_valid", str(r["card_id"]).encode(), _dumps(r), SCORED)
                for r in valid]
        merged: list[Case] = []
        bad_iter, good_iter = iter(cases), iter(good)
        pending_bad, pending_good = len(cases), len(good)
        while pending_bad or pending_good:
            if pending_bad and (not pending_good or self.rng.random() < pending_bad / (
                    pending_bad + pending_good)):
                merged.append(next(bad_iter))
                pending_bad -= 1
            else:
                merged.append(next(good_iter))
                pending_good -= 1
        return merged


class _Drop:
    """Marks a field to leave out of a record."""


_DROP: Any = _Drop()
