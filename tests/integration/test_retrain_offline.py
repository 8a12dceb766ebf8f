"""Retraining without a file: the offline store (backfilled) + the labels topic -> a
challenger registered by the same job ``fraudstream retrain`` runs (real Kafka and Redis)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from features.core import FEATURE_NAMES
from features.offline import backfill_offline
from infra.settings import Settings
from models.pipeline import training_frame
from models.retrain_job import run_job
from models.retrain_offline import offline_training_frame
from replay.simulator import SimulationConfig, simulate, write_history
from streams.clients import make_producer


def _publish_labels(settings: Settings, history: pd.DataFrame) -> int:
    producer = make_producer(settings)
    fraud = history.loc[history["is_fraud"]]
    for row in fraud.itertuples():
        record = {"transaction_id": row.transaction_id, "card_id": row.card_id,
                  "label": "fraud", "source": "chargeback",
                  "label_time": row.label_time.isoformat()}
        producer.produce(settings.topic_labels, key=row.card_id, value=json.dumps(record))
    producer.produce(settings.topic_labels, key="x", value=b"{not json")  # skipped, counted
    assert producer.flush(30) == 0
    return len(fraud)


def test_offline_training_set_and_a_retrain_without_history(
    settings: Settings, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    settings = settings.model_copy(update={
        "retrain_train_days": 14.0, "retrain_eval_days": 7.0, "retrain_maturity_days": 2.0,
        "retrain_valid_days": 4.0, "promotion_min_frauds": 5, "xgb_nthread": 1,
        "mlflow_tracking_uri": None, "model_name": "fd-offline"})
    history = simulate(SimulationConfig(n_customers=200, n_terminals=100, days=35, seed=3))
    path = write_history(history, tmp_path / "history.parquet")
    assert backfill_offline(settings, path) == len(history)
    topic_factory(settings.topic_labels, partitions=2)
    frauds = _publish_labels(settings, history)

    frame = offline_training_frame(settings)
    assert len(frame) == len(history) and set(frame["transaction_id"]) == set(
        history["transaction_id"])
    assert int(frame["is_fraud"].sum()) == frauds
    labeled = frame.loc[frame["is_fraud"]].set_index("transaction_id")
    expected = history.loc[history["is_fraud"]].set_index("transaction_id")
    pd.testing.assert_series_equal(
        labeled["label_time"].sort_index(), expected["label_time"].sort_index(),
        check_names=False, check_dtype=False)
    assert frame.loc[~frame["is_fraud"], "label_time"].isna().all()  # never labeled: NaT
    # point in time: each row's features are its transaction's, as of its event time
    reference = training_frame(history).set_index("transaction_id")
    mine = frame.set_index("transaction_id").loc[reference.index]
    np.testing.assert_allclose(mine[list(FEATURE_NAMES)].to_numpy(dtype=np.float64),
                               reference[list(FEATURE_NAMES)].to_numpy(dtype=np.float64),
                               rtol=1e-9, atol=1e-9)

    result = run_job(settings, None, force=True)
    assert result.outcome is not None and result.outcome.challenger_version == "1"
    log = settings.state_dir / "audit" / "retrain.jsonl"
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps[0] == "started" and "registered" in steps
