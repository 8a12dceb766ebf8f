"""Parity: for the same transactions and model, backtest scores equal the stream's.

1. The stream stage's decision code (:class:`features.stream.decide.Decider`: the model
   loaded from MLflow by alias, the policy, micro-batches of ``stream_batch_size``) fed with
   the feature core's vectors, the transactions parsed as the stage parses them (MLflow on
   sqlite; no Kafka or Redis).
2. The whole stream on real Kafka, Redis and Feast: publish with ``publish_history``, let the
   stream stage (``fraudstream stream worker``) compute features and decide, read ``scores``.
   The transactions are published before the stage starts: a stage that starts reading
   while the publisher is still filling the partitions may find one partition at its end
   while another already holds later records, and applies the first one's records late
   when they arrive (counted, as the contract allows: the fault suite checks that under
   load). Parity is exact, so this test replays a stream that is already there.

In both, every transaction's score must equal the backtest's within 1e-6 (the backtest may
compute in another precision) and its decision must be the backtest's. The stream sees no
label events, so the backtest is given the same transactions with no label known during
the window.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.core import FEATURE_NAMES
from features.store import redis_client
from features.stream.decide import Decider
from features.stream.items import TxnItem, parse_txn_message
from features.stream.redis_io import read_late
from infra.settings import Settings
from infra.workers import WorkerProcess
from models.pipeline import train_and_register
from models.registry import ModelRegistry
from replay.backtest import BacktestConfig, feature_frame, run_backtest
from replay.candidates import registry_model
from replay.history import iter_transactions, write_history
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate
from streams.clients import make_consumer
from tests.integration.deployed import SMALL_TRAIN, prepare, running_workers

CHAMPION = "champion"


def history() -> pd.DataFrame:
    return simulate(SimulationConfig(n_customers=300, n_terminals=150, n_ecom_merchants=40,
                                     days=20, seed=5))


def unlabeled(frame: pd.DataFrame) -> pd.DataFrame:
    """The transactions as the stream sees them: no label known while they are scored."""
    later = frame["event_time"].max() + pd.Timedelta(days=365)
    return frame.reset_index(drop=True).assign(label_time=later)


def backtest_all(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Backtest predictions of the champion for every row of ``frame``."""
    featured, names = feature_frame(frame)
    end = frame["event_time"].max().floor("D") + pd.Timedelta(days=1)
    span = (end - frame["event_time"].min()).total_seconds() / 86_400 + 1
    config = BacktestConfig().with_windows(test_end=end, test_days=span)
    result = run_backtest(featured, names, [registry_model(settings, CHAMPION)], settings,
                          config)
    assert len(result.predictions) == len(frame)
    return result.predictions.set_index("transaction_id")


def as_items(records: list[dict[str, Any]], settings: Settings) -> list[TxnItem]:
    """The transactions as the stage's parser turns them into items (key = card)."""
    items = []
    for i, record in enumerate(records):
        item = parse_txn_message(record["card_id"].encode(), json.dumps(record).encode(),
                                 (settings.topic_transactions, 0, i), 0,
                                 settings.max_message_bytes)
        assert isinstance(item, TxnItem), item
        items.append(item)
    return items


def read_scores(settings: Settings, want: int, procs: dict[str, WorkerProcess],
                timeout: float) -> list[dict[str, Any]]:
    """Committed ``scores`` records until ``want`` arrived (+2 s); fails fast if a worker
    dies."""
    consumer = make_consumer(settings, f"parity-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([settings.topic_scores])
    out: list[dict[str, Any]] = []
    deadline, settle = time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            out.extend(json.loads(m.value() or b"{}") for m in consumer.consume(1000, 0.5)
                       if m.error() is None)
            dead = {n: p.log_tail() for n, p in procs.items() if not p.alive()}
            assert not dead, dead
            if len(out) >= want:
                settle = settle or time.monotonic() + 2.0
                if time.monotonic() > settle:
                    break
    finally:
        consumer.close()
    return out


def assert_same(stream: dict[str, dict[str, Any]], backtest: pd.DataFrame,
                frame: pd.DataFrame | None = None) -> None:
    assert set(stream) == set(backtest.index), "stream and backtest scored different sets"
    ids = list(stream)
    live = np.array([stream[i]["score"] for i in ids], dtype=np.float64)
    offline = backtest.loc[ids, "score"].to_numpy(dtype=np.float64)
    worst = float(np.max(np.abs(live - offline)))
    assert worst <= 1e-6, (f"largest score difference {worst} "
                           f"({int((np.abs(live - offline) > 1e-6).sum())} rows)\n"
                           + _differences(stream, ids, live - offline, frame))
    decisions = [stream[i]["decision"] for i in ids]
    assert decisions == backtest.loc[ids, "decision"].tolist()


def _differences(stream: dict[str, dict[str, Any]], ids: list[str], diff: np.ndarray,
                 frame: pd.DataFrame | None) -> str:
    """The worst rows: their score parts and the features that differ from the core's."""
    if frame is None:
        return ""
    featured, names = feature_frame(frame)
    core = featured.set_index("transaction_id")
    lines = []
    for j in np.argsort(-np.abs(diff))[:5]:
        record = stream[ids[j]]
        got = record.get("features", {})
        differ = {n: (got.get(n), float(core.loc[ids[j], n])) for n in names
                  if n in got and not np.isclose(float(np.nan if got[n] is None else got[n]),
                                                 float(core.loc[ids[j], n]), equal_nan=True)}
        lines.append(f"{ids[j]} diff {diff[j]:+.6f} parts {record.get('scores')} "
                     f"versions {record.get('model_version')} features differing {differ}")
    return "\n".join(lines)


def test_backtest_equals_the_stage_decision_code(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", xgb_nthread=1)
    frame = history()
    train_and_register(settings, write_history(frame, tmp_path / "h.parquet"),
                       alias=CHAMPION, config=SMALL_TRAIN)
    live = unlabeled(frame[frame["event_time"] >= frame["event_time"].max() - pd.Timedelta(
        days=4)])
    offline = backtest_all(live, settings)

    featured, names = feature_frame(live)
    assert tuple(names) == tuple(FEATURE_NAMES)  # what the stage computes, in its order
    vectors = dict(zip(featured["transaction_id"],
                       map(tuple, featured[list(names)].to_numpy(np.float64)), strict=True))
    decider = Decider(ModelRegistry(settings), list(FEATURE_NAMES), settings.top_reasons,
                      (settings.review_threshold, settings.decline_threshold))
    decider.start()
    items = as_items(list(iter_transactions(live)), settings)
    scores: list[dict[str, Any]] = []
    size = settings.stream_batch_size
    for start in range(0, len(items), size):
        batch = items[start:start + size]
        decided, failed = decider.decide(
            batch, [vectors[t.event.transaction_id] for t in batch], now_ms=0)
        assert failed == []
        scores.extend(d.score for d in decided)
    assert len(scores) == len(live)
    assert_same({s["transaction_id"]: s for s in scores}, offline)


@pytest.mark.timeout(900)
def test_backtest_equals_the_live_stream(settings: Settings, tmp_path: Path) -> None:
    frame = history()
    cut = frame["event_time"].max() - pd.Timedelta(days=3)
    prepare(settings, frame[frame["event_time"] < cut], tmp_path)
    live = unlabeled(frame[frame["event_time"] >= cut])
    publish_history(live, settings, progress=None)
    with running_workers(settings) as procs:
        scores = read_scores(settings, len(live), procs, timeout=300)
    late = read_late(redis_client(settings), settings.feast_project)
    assert late == [], f"{len(late)} items applied late, e.g. {late[:3]}"
    stream = {s["transaction_id"]: s for s in scores}
    assert len(scores) == len(stream) == len(live), (
        f"{len(scores)} scores ({len(stream)} distinct) for {len(live)} transactions")
    offline = backtest_all(live, settings)
    assert_same(stream, offline, live)
    featured, names = feature_frame(live)
    by_id = featured.set_index("transaction_id")
    for tid in list(stream)[:200]:
        got = np.array([np.nan if stream[tid]["features"][n] is None
                        else stream[tid]["features"][n] for n in names], dtype=np.float64)
        want = by_id.loc[tid, list(names)].to_numpy(np.float64)
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True, err_msg=tid)

