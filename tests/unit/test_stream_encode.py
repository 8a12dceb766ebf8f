"""The stage's output encoding (orjson) says what streams.serde would, faster."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from features.stream.stage import encode_record
from scoring.records import score_record
from streams.serde import dumps


def test_score_record_reads_back_as_serde_writes_it() -> None:
    vector = (0.1, math.nan, 1e-7, 3.0, math.inf, -2.5)
    record = score_record(
        {"transaction_id": "t1", "event_time": "2024-01-01T00:00:00+00:00", "card_id": "c1"},
        score=0.123456789012345, decision="review", versions={"batch": "3", "online": None},
        feature_names=[f"f{i}" for i in range(len(vector))], vector=vector, latency_ms=12,
        parts={"batch": 0.1234567, "online": None})
    record["numpy"] = np.float64(0.25)
    ours = encode_record(record)
    assert json.loads(ours) == json.loads(dumps(record, nan_as_null=True))
    assert json.loads(ours)["features"]["f1"] is None  # non-finite -> null
    assert json.loads(ours)["score"] == 0.123456789012345  # unrounded, exact


def test_falls_back_to_serde_for_what_orjson_refuses() -> None:
    record: dict[Any, Any] = {1: "int key", "x": math.nan}
    assert encode_record(record) == dumps(record, nan_as_null=True)
