"""Shared checks for the stream stage's integration and fault tests.

:func:`verdict` reads every committed ``scores`` record and compares it with the offline
core (:func:`features.backfill.compute_features` on the same transactions and labels):
missing and duplicated decisions, card features that differ (must be none; the label-derived
ones may differ only after a label that reached its card late, recorded), terminal
features that differ outside what the workers recorded as late (must be none).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from confluent_kafka import Message

from features.backfill import compute_features
from features.card import CARD_FEATURE_NAMES, terminal_key
from features.core import FEATURE_NAMES
from features.stream.redis_io import read_late
from features.stream.service import ensure_stream_topics
from infra.settings import Settings
from infra.workers import WorkerProcess
from models.topic_read import read_topic
from replay.history import label_records
from streams.clients import make_producer, produce_when_room
from tests.integration.deployed import drain, prepare

N_CARD = len(CARD_FEATURE_NAMES)
# card features that read labels (features.card.card_label): exact unless a label was late
LABEL_DERIVED = np.array([n.startswith("card_known_") for n in CARD_FEATURE_NAMES])


def deploy(settings: Settings, history: pd.DataFrame, tmp_path: Path) -> str:
    version = prepare(settings, history, tmp_path)
    ensure_stream_topics(settings)
    return version


def publish_labels(frame: pd.DataFrame, settings: Settings) -> None:
    producer = make_producer(settings)
    for record in label_records(frame):
        produce_when_room(producer, settings.topic_labels, json.dumps(record).encode(),
                          record["card_id"].encode())
        producer.poll(0)
    assert producer.flush(120) == 0


def stage(settings: Settings, instance: str = "0") -> WorkerProcess:
    return WorkerProcess(f"stream-{instance}", ["stream", "worker", "--instance", instance],
                         settings).start()


def count_scores(settings: Settings) -> int:
    """Committed ``scores`` records up to each partition's end when called
    (:func:`models.topic_read.read_topic`: a read_committed reader reaches an end taken
    while a transaction was open once that transaction ends. Waiting for an
    end-of-partition event on every partition instead took until a 30 s deadline while
    the stage kept a transaction open on most partitions most of the time)."""
    return len(read_topic(settings, settings.topic_scores, timeout=30))


@dataclass
class Verdict:
    expected: int
    decided: int
    missing: int
    duplicated: int
    card_differ: int
    terminal_differ: int  # outside the recorded late items
    late_items: int
    excluded: int
    max_gap_s: float  # longest pause between decisions of one partition (availability)
    # per kill: seconds until each of the killed worker's partitions was decided again
    takeover_s: list[float] = field(default_factory=list)

    def assert_exact(self) -> None:
        assert self.missing == 0, self
        assert self.duplicated == 0, self
        assert self.card_differ == 0, self
        assert self.terminal_differ == 0, self


def card_late_mask(frame: pd.DataFrame, late: list[dict[str, object]]) -> np.ndarray:
    """Rows whose label-derived card features a late card label may have changed."""
    mask = np.zeros(len(frame), dtype=bool)
    cards = np.array([f"card:{c}" for c in frame["card_id"]])
    ms = (frame["event_time"].astype("int64") // 1_000_000).to_numpy()
    for item in late:
        if item["kind"] == "card_label":
            mask |= (cards == item["terminal"]) & (ms >= int(str(item["from_ms"]))) & \
                    (ms <= int(str(item["to_ms"])))
    return mask


def late_mask(frame: pd.DataFrame, late: list[dict[str, object]]) -> np.ndarray:
    """Rows whose terminal features a recorded late item may have changed."""
    mask = np.zeros(len(frame), dtype=bool)
    late = [item for item in late if item["kind"] != "card_label"]
    if not late:
        return mask
    terms = np.array([terminal_key(t if isinstance(t, str) and t else None, m) for t, m in
                      zip(frame.get("terminal_id", pd.Series([None] * len(frame))),
                          frame["merchant_id"], strict=True)])
    ms = (frame["event_time"].astype("int64") // 1_000_000).to_numpy()
    ids = frame["transaction_id"].to_numpy()
    for item in late:
        hit = (terms == item["terminal"]) & (ms >= int(str(item["from_ms"]))) & \
              (ms <= int(str(item["to_ms"])))
        if item["kind"] == "transaction":
            hit |= ids == item["item_id"]
        mask |= hit
    return mask


def verdict(settings: Settings, frame: pd.DataFrame, timeout: float, settle: float = 5.0,
            kills: Sequence[tuple[float, list[int]]] = ()) -> Verdict:
    """Every committed decision against the core; ``kills`` (when, the partitions of the
    worker killed then) also measures how long those partitions went undecided: the
    takeover of each kill the next one did not cut short."""
    scores = drain(settings, settings.topic_scores, len(frame), timeout=timeout, settle=settle)
    records = [json.loads(m.value() or b"{}") for m in scores]
    counts = Counter(r["transaction_id"] for r in records)
    ids = frame["transaction_id"].tolist()
    missing = [t for t in ids if t not in counts]
    dup = sum(1 for n in counts.values() if n > 1)
    got = {r["transaction_id"]: [r["features"][n] for n in FEATURE_NAMES] for r in records}
    expected = compute_features(frame).to_numpy()
    online = np.array([got.get(t, [np.nan] * len(FEATURE_NAMES)) for t in ids], dtype=float)
    present = np.array([t in got for t in ids])
    close = np.isclose(online, expected, rtol=1e-9, atol=1e-9)
    from features.store import redis_client

    late = read_late(redis_client(settings), settings.feast_project)
    # card features are exact, but for the label-derived ones of rows after a late card label
    card_ok = close[:, :N_CARD] | (LABEL_DERIVED & card_late_mask(frame, late)[:, None])
    card_bad = present & ~card_ok.all(axis=1)
    excluded = late_mask(frame, late)
    term_bad = present & ~close[:, N_CARD:].all(axis=1) & ~excluded
    for i in np.flatnonzero(card_bad)[:8]:
        names = [n for n, ok in zip(FEATURE_NAMES[:N_CARD], card_ok[i], strict=True) if not ok]
        row = frame.iloc[i]
        print(f"card differs: {ids[i]} {row['card_id']} {row['event_time']} {names} online "
              f"{online[i, :N_CARD].tolist()} core {expected[i, :N_CARD].tolist()}")
    for i in np.flatnonzero(term_bad)[:8]:  # what differs, to tell a cause from the data
        names = [n for n, ok in zip(FEATURE_NAMES[N_CARD:], close[i, N_CARD:], strict=True)
                 if not ok]
        row = frame.iloc[i]
        print(f"differs: {ids[i]} {row['terminal_id']}/{row['merchant_id']} "
              f"{row['event_time']} {names} online {online[i, N_CARD:].tolist()} "
              f"core {expected[i, N_CARD:].tolist()}")
    return Verdict(len(ids), len(records), len(missing), dup, int(card_bad.sum()),
                   int(term_bad.sum()), len(late), int(excluded.sum()), max_gap(scores),
                   takeovers(scores, kills))


def takeover(scores: list[Message], killed_at: float, partitions: list[int]) -> float:
    """Seconds from ``killed_at`` (epoch s) until every one of ``partitions`` had a
    decision again (``inf`` if one never had)."""
    at_ms = killed_at * 1000
    first: dict[int, float] = {}
    for m in scores:
        p, ts = m.partition() or 0, m.timestamp()[1]
        if p in partitions and ts >= at_ms:
            first[p] = min(first.get(p, float("inf")), ts)
    return max((first.get(p, float("inf")) - at_ms) / 1000 for p in partitions)


def takeovers(scores: list[Message], kills: Sequence[tuple[float, list[int]]]) -> list[float]:
    """:func:`takeover` of each kill, but of those whose partitions were served again
    before the next kill (a worker killed while it starts has no takeover of its own)."""
    out = []
    for i, (at, partitions) in enumerate(kills):
        took = takeover(scores, at, partitions)
        if i + 1 == len(kills) or at + took < kills[i + 1][0]:
            out.append(round(took, 2))
    return out


def max_gap(scores: list[Message]) -> float:
    """The longest time between consecutive decisions of a partition (seconds)."""
    by_part: dict[int, list[int]] = {}
    for m in scores:
        by_part.setdefault(m.partition() or 0, []).append(m.timestamp()[1])
    gaps = [float(np.diff(sorted(ts)).max()) for ts in by_part.values() if len(ts) > 1]
    return max(gaps, default=0.0) / 1000.0
