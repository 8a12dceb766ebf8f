"""Bounded join of decisions (topic ``scores``) and labels (topic ``labels``), pure.

A label names a transaction; what the online model learns from is that transaction's
feature vector, which only its decision carries. :class:`LabelJoin` keeps both sides in
bounded state, keyed by ``transaction_id``:

- **pending decisions** (insertion order ~ event time): a decision waits for its label at
  most ``ttl_ms`` of *event time* (the watermark is the latest decision event time seen, so
  replays and tests behave like live traffic) and at most ``capacity`` entries. A decision
  that leaves without a label is taken as genuine (sampled, as below): the production
  convention also used in training (``unknown_labels="genuine"``) — a genuine transaction
  never gets a fast verdict, it only "matures" weeks later.
- **parked labels**: a label whose decision is not (yet) known waits until the decision
  watermark passes ``label_ms + grace_ms`` (the decision, older than its label, would have
  been seen by then) or the park overflows; then it is dropped and counted ``unmatched``.
  This covers the two input topics being consumed at different speeds.

Genuine examples (explicit or implicit) are kept with probability ``negative_rate``,
decided by a hash of the transaction id and ``seed`` (deterministic across restarts);
frauds are always kept. :meth:`add_decision` and :meth:`add_label` return the examples to
learn, in order; :attr:`counts` says what happened to every input (for metrics).
"""

from __future__ import annotations

import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


class Example(NamedTuple):
    """One training example: a decision's features and its (explicit or implicit) label."""

    transaction_id: str
    vector: Vector
    fraud: bool
    explicit: bool  # False: no label came within the join window (taken as genuine)


class _Pending(NamedTuple):
    vector: Vector
    event_ms: int


class _Parked(NamedTuple):
    fraud: bool
    label_ms: int


@dataclass
class LabelJoin:
    """Both sides of the join, bounded by count and by event time (see module doc)."""

    capacity: int = 500_000
    ttl_ms: int = 168 * 3_600_000
    negative_rate: float = 0.05
    seed: int = 7
    park_capacity: int = 50_000
    grace_ms: int = 3_600_000
    watermark_ms: int = -(2**62)
    counts: Counter[str] = field(default_factory=Counter)
    _pending: OrderedDict[str, _Pending] = field(default_factory=OrderedDict)
    _parked: OrderedDict[str, _Parked] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def parked(self) -> int:
        return len(self._parked)

    def keep_negative(self, transaction_id: str) -> bool:
        """Deterministic Bernoulli(``negative_rate``) draw for a genuine example."""
        draw = zlib.crc32(f"{self.seed}:{transaction_id}".encode()) / 2**32
        return draw < self.negative_rate

    def _example(self, tid: str, vector: Vector, fraud: bool, explicit: bool) -> list[Example]:
        if not fraud and not self.keep_negative(tid):
            self.counts["sampled_out"] += 1
            return []
        kind = "explicit" if explicit else "implicit"
        self.counts[f"learned_{'fraud' if fraud else 'genuine'}_{kind}"] += 1
        return [Example(tid, vector, fraud, explicit)]

    def add_decision(self, transaction_id: str, vector: Vector, event_ms: int) -> list[Example]:
        """Hold a decision for its label; returns examples from a parked label or expiries."""
        self.counts["decisions"] += 1
        out: list[Example] = []
        parked = self._parked.pop(transaction_id, None)
        if parked is not None:
            self.counts["joined"] += 1
            out += self._example(transaction_id, vector, parked.fraud, explicit=True)
        else:
            self._pending[transaction_id] = _Pending(vector, event_ms)
            self._pending.move_to_end(transaction_id)
        self.watermark_ms = max(self.watermark_ms, event_ms)
        out += self._expire()
        return out

    def add_label(self, transaction_id: str, fraud: bool, label_ms: int) -> list[Example]:
        """Join a label to its pending decision, or park it (see module doc)."""
        self.counts["labels"] += 1
        pending = self._pending.pop(transaction_id, None)
        if pending is not None:
            self.counts["joined"] += 1
            return self._example(transaction_id, pending.vector, fraud, explicit=True)
        if label_ms + self.grace_ms < self.watermark_ms:
            self.counts["unmatched"] += 1  # its decision was seen long ago, or never existed
            return []
        self._parked[transaction_id] = _Parked(fraud, label_ms)
        self._parked.move_to_end(transaction_id)
        while len(self._parked) > self.park_capacity:
            self._parked.popitem(last=False)
            self.counts["unmatched"] += 1
        return []

    def _expire(self) -> list[Example]:
        out: list[Example] = []
        horizon = self.watermark_ms - self.ttl_ms
        while self._pending:
            tid, oldest = next(iter(self._pending.items()))
            if len(self._pending) <= self.capacity and oldest.event_ms >= horizon:
                break
            del self._pending[tid]
            self.counts["expired"] += 1
            out += self._example(tid, oldest.vector, False, explicit=False)
        parked_horizon = self.watermark_ms - self.grace_ms
        while self._parked:
            tid, label = next(iter(self._parked.items()))
            if label.label_ms >= parked_horizon:
                break
            del self._parked[tid]
            self.counts["unmatched"] += 1
        return out
