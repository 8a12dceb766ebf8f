"""The console's case store (pure, in-process, bounded): alerts, claims, verdicts, card history.

Fed by :class:`scoring.console.feed.AlertFeed` from topics ``alerts`` (one case per alerted
transaction), ``scores`` (every decision: the card's recent transactions and the alerted
transaction's full feature vector as at alert time) and ``labels`` (verdicts, also those
given elsewhere, so a restarted console knows which cases are decided).

Contract:

- at most ``capacity`` cases, the oldest dropped first; a repeated alert for the same
  transaction id is ignored (the stream decides a transaction once);
- a case is *claimed* by one analyst while they work it: opening it claims it for
  ``claim_seconds`` (renewed on each open); another analyst cannot claim it or give it a
  verdict until it is released or the claim expires (:class:`Claimed`);
- a verdict (fraud / genuine / unsure) is final for the console; fraud and genuine become
  a ``labels`` record, unsure stays in the audit trail only (``labels`` knows two labels);
- all methods are thread-safe (the feed thread writes while requests read).

The clock is injected (tests, benchmarks).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("fraud", "genuine", "unsure")
STATES = ("open", "claimed", *VERDICTS)
HISTORY_PER_CARD = 10


class Claimed(Exception):
    """The case is claimed by another analyst (or already has a verdict)."""

    def __init__(self, message: str, owner: str | None) -> None:
        super().__init__(message)
        self.owner = owner


@dataclass(slots=True)
class Case:
    seq: int
    alert: dict[str, Any]
    received: float
    claimed_by: str | None = None
    claimed_until: float = 0.0
    verdict: str | None = None
    verdict_by: str | None = None
    verdict_at: str | None = None
    note: str | None = None
    features: dict[str, float] | None = None
    # read once from the alert: the queue filters 10,000s of cases per page
    transaction_id: str = ""
    score: float = 0.0
    amount: float = 0.0
    decision: str = ""
    channel: str = ""
    country: str = ""
    model: str = ""

    def __post_init__(self) -> None:
        txn = self.txn
        amount, versions = txn.get("amount"), self.alert.get("model_version")
        self.transaction_id = str(self.alert["transaction_id"])
        self.score = float(self.alert.get("score") or 0.0)
        self.amount = float(amount) if isinstance(amount, int | float) else 0.0
        self.decision = str(self.alert.get("decision"))
        self.channel, self.country = str(txn.get("channel")), str(txn.get("country"))
        self.model = str(versions.get("batch")) if isinstance(versions, dict) else ""

    @property
    def txn(self) -> dict[str, Any]:
        summary = self.alert.get("transaction")
        return summary if isinstance(summary, dict) else {}

    def state(self, now: float) -> str:
        if self.verdict is not None:
            return self.verdict
        return "claimed" if self.claimed_by and self.claimed_until > now else "open"

    def owner(self, now: float) -> str | None:
        return self.claimed_by if self.state(now) == "claimed" else None


@dataclass(frozen=True)
class Filters:
    """Queue filters; ``None`` = no condition. ``state`` ``undecided`` = open or claimed."""

    decision: str | None = None
    state: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    min_amount: float | None = None
    max_amount: float | None = None
    channel: str | None = None
    country: str | None = None
    model: str | None = None
    sort: str = "newest"

    def predicates(self, now: float) -> list[Callable[[Case], bool]]:
        """One check per active filter (none at all for the unfiltered queue)."""
        checks: list[Callable[[Case], bool]] = []
        if self.decision:
            checks.append(lambda c: c.decision == self.decision)
        if self.state == "undecided":
            checks.append(lambda c: c.verdict is None)
        elif self.state:
            checks.append(lambda c: c.state(now) == self.state)
        if self.min_score is not None:
            checks.append(lambda c: c.score >= self.min_score)  # type: ignore[operator]
        if self.max_score is not None:
            checks.append(lambda c: c.score <= self.max_score)  # type: ignore[operator]
        if self.min_amount is not None:
            checks.append(lambda c: c.amount >= self.min_amount)  # type: ignore[operator]
        if self.max_amount is not None:
            checks.append(lambda c: c.amount <= self.max_amount)  # type: ignore[operator]
        if self.channel:
            checks.append(lambda c: c.channel == self.channel)
        if self.country:
            checks.append(lambda c: c.country == self.country)
        if self.model:
            checks.append(lambda c: c.model == self.model)
        return checks


@dataclass
class AlertStore:
    capacity: int = 50_000
    claim_seconds: float = 900.0
    clock: Callable[[], float] = time.time
    cards_capacity: int = 20_000
    features_capacity: int = 20_000
    _cases: OrderedDict[str, Case] = field(default_factory=OrderedDict)
    _cards: OrderedDict[str, deque[dict[str, Any]]] = field(default_factory=OrderedDict)
    _features: OrderedDict[str, dict[str, float]] = field(default_factory=OrderedDict)
    _seq: int = 0
    _claims: set[str] = field(default_factory=set)
    _deciding: set[str] = field(default_factory=set)
    _decided: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    counters: Counter[str] = field(default_factory=Counter)

    # -- feed side ---------------------------------------------------------------------
    def add_alert(self, alert: dict[str, Any]) -> Case | None:
        tid = alert.get("transaction_id")
        if not isinstance(tid, str) or not isinstance(alert.get("score"), int | float):
            self.counters["malformed"] += 1
            return None
        with self._lock:
            if tid in self._cases:
                self.counters["repeated"] += 1
                return None
            self._seq += 1
            case = Case(self._seq, alert, self.clock(), features=self._features.get(tid))
            self._cases[tid] = case
            while len(self._cases) > self.capacity:
                _, old = self._cases.popitem(last=False)
                self._claims.discard(old.transaction_id)
                if old.verdict is not None:
                    self._decided[old.verdict] -= 1
                self.counters["dropped"] += 1
            self.counters["alerts"] += 1
            return case

    def add_score(self, record: dict[str, Any]) -> None:
        tid, card = record.get("transaction_id"), record.get("card_id")
        if not isinstance(tid, str) or not isinstance(card, str):
            self.counters["malformed"] += 1
            return
        raw = record.get("features")
        features: dict[str, float] = {k: v for k, v in raw.items() if isinstance(
            v, int | float) and not isinstance(v, bool)} if isinstance(raw, dict) else {}
        score, amount = record.get("score"), features.get("amount")
        row = {"transaction_id": tid, "event_time": str(record.get("event_time")),
               "amount": amount if isinstance(amount, int | float) else None,
               "score": score if isinstance(score, int | float) else None,
               "decision": str(record.get("decision"))}
        with self._lock:
            history = self._cards.pop(card, None) or deque(maxlen=HISTORY_PER_CARD)
            history.append(row)
            self._cards[card] = history
            if len(self._cards) > self.cards_capacity:
                self._cards.popitem(last=False)
            if features:
                case = self._cases.get(tid)
                if case is not None:
                    case.features = features
                self._features[tid] = features
                if len(self._features) > self.features_capacity:
                    self._features.popitem(last=False)

    def add_label(self, label: dict[str, Any]) -> None:
        """A verdict seen on ``labels`` (ours or from elsewhere) decides its open case."""
        with self._lock:
            case = self._cases.get(str(label.get("transaction_id")))
            if case is None or case.verdict is not None:
                return
            if label.get("label") in ("fraud", "genuine"):
                case.verdict = str(label["label"])
                self._decided[case.verdict] += 1
                self._claims.discard(case.transaction_id)
                case.verdict_by = str(label.get("actor") or label.get("source") or "?")
                case.verdict_at = str(label.get("label_time") or "")
                case.note = label.get("note") if isinstance(label.get("note"), str) else None

    # -- analyst side ------------------------------------------------------------------
    def get(self, tid: str) -> Case | None:
        return self._cases.get(tid)

    def card_history(self, card_id: str) -> list[dict[str, Any]]:
        """The card's last decisions, latest event first (``scores`` may arrive out of
        event-time order; ISO-8601 UTC strings of one format sort as times)."""
        with self._lock:
            rows = list(self._cards.get(card_id, ()))
        return sorted(rows, key=lambda r: r["event_time"], reverse=True)

    def features_of(self, case: Case) -> dict[str, float] | None:
        return case.features or self._features.get(case.transaction_id)

    def query(self, filters: Filters, limit: int = 100, offset: int = 0
              ) -> tuple[list[Case], int]:
        """Matching cases (newest or riskiest first) and how many match in all."""
        checks = filters.predicates(self.clock())
        want = offset + limit
        with self._lock:
            matched = list(self._cases.values())
        for check in checks:  # each pass narrows the list: cheaper than all() per case
            matched = [c for c in matched if check(c)]
        total = len(matched)
        if filters.sort == "riskiest":
            top = heapq.nlargest(want, matched, key=lambda c: (c.score, c.seq))
        else:
            top = matched[::-1][:want]
        return top[offset:], total

    def counts(self) -> dict[str, int]:
        """Cases per state: verdicts are counted as they are given, claims checked live."""
        now = self.clock()
        with self._lock:
            claimed = sum(1 for tid in self._claims
                          if (c := self._cases.get(tid)) is not None and c.state(now) == "claimed")
            decided = dict(self._decided)
            total = len(self._cases)
        out = {"open": total - claimed - sum(decided.values()), "claimed": claimed}
        return out | {v: decided.get(v, 0) for v in VERDICTS}

    def claim(self, tid: str, analyst: str) -> Case:
        """Claim (or renew) ``tid`` for ``analyst``; :class:`Claimed` if someone else holds it."""
        now = self.clock()
        with self._lock:
            case = self._require(tid)
            owner = case.owner(now)
            if case.verdict is None and owner not in (None, analyst):
                raise Claimed(f"claimed by {owner}", owner)
            if case.verdict is None:
                case.claimed_by, case.claimed_until = analyst, now + self.claim_seconds
                self._claims.add(tid)
            return case

    def release(self, tid: str, analyst: str) -> None:
        with self._lock:
            case = self._require(tid)
            if case.claimed_by == analyst:
                case.claimed_by, case.claimed_until = None, 0.0
                self._claims.discard(tid)

    def reserve(self, tid: str, analyst: str) -> Case:
        """Claim ``tid`` for a verdict in progress: a second verdict (a double click, another
        tab) is refused until :meth:`decide` or :meth:`unreserve`, so one label is sent."""
        with self._lock:
            if tid in self._deciding:
                raise Claimed("a verdict on this case is being recorded", None)
            case = self._cases.get(tid)
            if case is not None and case.verdict is not None:
                raise Claimed(f"already decided: {case.verdict} by {case.verdict_by}",
                              case.verdict_by)
            self._deciding.add(tid)
        try:
            return self.claim(tid, analyst)
        except (Claimed, KeyError):
            self.unreserve(tid)
            raise

    def unreserve(self, tid: str) -> None:
        with self._lock:
            self._deciding.discard(tid)

    def decide(self, tid: str, analyst: str, verdict: str, note: str | None,
               at: str) -> Case:
        """Record ``verdict``; the analyst must hold the claim (or the case must be open)."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}")
        now = self.clock()
        with self._lock:
            case = self._require(tid)
            if case.verdict is not None:
                raise Claimed(f"already decided: {case.verdict} by {case.verdict_by}",
                              case.verdict_by)
            owner = case.owner(now)
            if owner not in (None, analyst):
                raise Claimed(f"claimed by {owner}", owner)
            case.verdict, case.verdict_by, case.verdict_at = verdict, analyst, at
            case.note = note or None
            case.claimed_by, case.claimed_until = None, 0.0
            self._claims.discard(tid)
            self._deciding.discard(tid)
            self._decided[verdict] += 1
            return case

    def next_open(self, after_seq: int | None = None) -> Case | None:
        """The newest open case (older than ``after_seq`` if given): "next" after a verdict."""
        now = self.clock()
        with self._lock:
            for case in reversed(self._cases.values()):
                if (after_seq is None or case.seq < after_seq) and case.state(now) == "open":
                    return case
        return None

    def __len__(self) -> int:
        return len(self._cases)

    def _require(self, tid: str) -> Case:
        case = self._cases.get(tid)
        if case is None:
            raise KeyError(tid)
        return case
