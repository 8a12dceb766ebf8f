"""The one-hop stream stage on real Kafka/Redis: parity with the offline core and exactly
one decision per transaction id (repeats not decided twice, conflicts dead-lettered)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from infra.settings import Settings
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate
from streams.clients import make_producer
from streams.dlq import parse_dead_letter
from tests.integration.deployed import drain, split_days
from tests.integration.streamcheck import (
    deploy,
    publish_labels,
    stage,
    verdict,
)


@pytest.fixture(scope="module")
def stream() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = simulate(SimulationConfig(n_customers=1500, n_terminals=400, days=16, seed=21))
    return split_days(frame, 12)


def test_one_worker_decides_each_transaction_once_with_core_features(
    settings: Settings, stream: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    s = settings
    history, live = stream
    live = live.reset_index(drop=True)
    assert len(live) >= 5_000 and live["is_fraud"].sum() > 0
    deploy(s, history, tmp_path)
    publish_history(live, s, progress=None)
    publish_labels(live, s)
    worker = stage(s)
    try:
        v = verdict(s, live, timeout=300)
    finally:
        assert worker.stop() == 0, worker.log_tail(40)
    print(v)
    v.assert_exact()
    assert v.late_items == 0  # one worker reading everything: nothing arrives behind order


def test_repeats_decided_once_conflicts_and_bad_keys_dead_lettered(
    settings: Settings, stream: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    s = settings
    history, live = stream
    live = live.head(300).reset_index(drop=True)
    deploy(s, history, tmp_path)
    publish_history(live, s, progress=None)
    first = live.iloc[0]
    record = json.loads(live.head(1).to_json(orient="records", date_format="iso"))[0]
    base = {k: record[k] for k in ("transaction_id", "card_id", "merchant_id", "amount",
                                   "channel", "country")}
    base["event_time"] = record["event_time"]
    producer = make_producer(s)
    # an identical repeat (published again later), a conflicting one, and a bad key
    producer.produce(s.topic_transactions, key=first["card_id"], value=json.dumps(base))
    conflict = dict(base, amount=float(base["amount"]) + 1.0)
    producer.produce(s.topic_transactions, key=first["card_id"], value=json.dumps(conflict))
    other = dict(base, transaction_id="tx-badkey-1")
    producer.produce(s.topic_transactions, key=b"not-the-card", value=json.dumps(other))
    assert producer.flush(30) == 0
    worker = stage(s)
    try:
        scores = drain(s, s.topic_scores, len(live), timeout=180, settle=5)
        letters = drain(s, s.topic_dlq, 2, timeout=60, settle=2)
    finally:
        worker.stop()
    ids = [json.loads(m.value() or b"{}")["transaction_id"] for m in scores]
    assert sorted(ids) == sorted(live["transaction_id"])  # the repeat was not decided again
    reasons = [parse_dead_letter(m.value()).reason for m in letters]
    assert any("conflict" in r for r in reasons), reasons
    assert any("message key" in r for r in reasons), reasons
