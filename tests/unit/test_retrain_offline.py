"""Pure parts of the offline training set: label parsing (latest wins) and the label join."""

from __future__ import annotations

import json

import pandas as pd

from models.retrain_offline import join_labels, labels_frame

BASE_MS = 1_735_689_600_000  # 2025-01-01: label times must lie in 2000..2100


def _label(tid: str, label: str, ms: int) -> bytes:
    return json.dumps({"transaction_id": tid, "card_id": "c", "label": label,
                       "label_time": BASE_MS + ms}).encode()


def test_latest_label_wins_and_invalid_records_are_counted() -> None:
    raw = [_label("t1", "genuine", 2_000), _label("t1", "fraud", 3_000),
           _label("t2", "fraud", 5_000), _label("t2", "genuine", 4_000),
           b"{broken", json.dumps({"transaction_id": "t3"}).encode()]
    read = labels_frame(raw, max_bytes=4096)
    assert read.invalid == 2
    by_id = read.labels.set_index("transaction_id")
    assert bool(by_id.loc["t1", "is_fraud"]) and bool(by_id.loc["t2", "is_fraud"])
    assert by_id.loc["t2", "label_time"] == pd.Timestamp(BASE_MS + 5_000, unit="ms", tz="UTC")


def test_unlabeled_transactions_are_genuine_without_a_label_time() -> None:
    entities = pd.DataFrame({"transaction_id": ["t1", "t2"], "card_id": ["a", "b"],
                             "event_time": pd.to_datetime([0, 1], unit="s", utc=True)})
    read = labels_frame([_label("t2", "fraud", 9_000)], max_bytes=4096)
    out = join_labels(entities, read.labels)
    assert out["is_fraud"].tolist() == [False, True]
    assert pd.isna(out.loc[0, "label_time"]) and out.loc[1, "label_time"].value > 0
    assert out.columns.tolist()[:3] == ["transaction_id", "card_id", "event_time"]
