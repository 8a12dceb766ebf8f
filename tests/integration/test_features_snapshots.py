"""Entity-state snapshots written by the real feature worker for the REST API.

A few transactions of one card stream through the worker; its card and terminal snapshots
in Redis must equal the offline core's states after them, and the API's
:func:`scoring.state_store.features_for` on those snapshots must give the card's next
transaction exactly the vector the stream then serves for it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from features.backfill import events_from_frame
from features.core import CardState, FeatureCore, terminal_key
from features.labels import ensure_feature_topics
from features.redis_layout import card_state_key, terminal_state_key
from features.store import OnlineFeatures
from infra.settings import Settings
from infra.workers import WorkerProcess
from replay.history import iter_transactions
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate
from scoring.state_store import RedisStateStore, features_for
from streams.schema import Transaction
from tests.integration.test_features_stream import wait_readable, worker_settings


def as_json(state: Any) -> Any:
    """A state as its snapshot holds it (a card's without the transaction map)."""
    data = json.loads(json.dumps(state.to_dict()))
    if isinstance(state, CardState):
        del data["x"]
    return data


def wait_snapshot(online: OnlineFeatures, key: str, expected: Any, worker: WorkerProcess,
                  timeout: float = 60.0) -> Any:
    """The snapshot at ``key`` once it equals ``expected`` (or the last one seen)."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        raw = online.redis.get(key)
        got = json.loads(raw) if raw else None
        if isinstance(got, dict):  # the worker's Kafka position of the card (not core state)
            got.pop("o", None)
        if got == expected:
            break
        assert worker.alive(), worker.log_tail(60)
        time.sleep(0.2)
    return got


def test_worker_writes_snapshots_the_api_scores_from(settings: Settings) -> None:
    s = worker_settings(settings)
    frame = simulate(SimulationConfig(n_customers=40, n_terminals=20, days=3, seed=3))
    counts = frame["card_id"].value_counts()
    card_id = str(counts.index[0])
    rows = frame[frame["card_id"] == card_id].reset_index(drop=True)
    assert len(rows) >= 6
    first, nxt = rows.iloc[:5], rows.iloc[5:6]
    ensure_feature_topics(s)
    online = OnlineFeatures(s)
    online.apply()
    publish_history(first, s, progress=None)
    core = FeatureCore()
    core.run(events_from_frame(first), [])
    last = first.iloc[-1]
    terminal = terminal_key(None if pd.isna(last["terminal_id"]) else str(last["terminal_id"]),
                            str(last["merchant_id"]))
    worker = WorkerProcess("features", ["features", "worker"], s).start()
    store = RedisStateStore(s)
    try:
        wait_readable(online, first["transaction_id"].tolist(), worker, timeout=180.0)
        card_key = card_state_key(s.feast_project, card_id)
        term_key = terminal_state_key(s.feast_project, terminal)
        assert wait_snapshot(online, card_key, as_json(core.cards[card_id]), worker) == \
            as_json(core.cards[card_id])
        assert wait_snapshot(online, term_key, as_json(core.terminals[terminal]), worker) == \
            as_json(core.terminals[terminal])
        position = json.loads(online.redis.get(card_key))["o"]
        assert position[1] >= 4  # [partition, offset] of the card's last transaction folded in
        assert 0 < online.redis.ttl(card_key) <= s.online_ttl_seconds

        # the API's synchronous vector for the next transaction, from the snapshots ...
        txn = Transaction.model_validate(next(iter_transactions(nxt)))
        predicted = features_for(store, txn)
        # ... is what the stream serves for it once it is published
        publish_history(nxt, s, progress=None)
        wait_readable(online, [txn.transaction_id], worker, timeout=60.0)
    finally:
        worker.stop()
        store.close()
    served = online.read([txn.transaction_id])[0]
    assert served is not None
    np.testing.assert_allclose(np.array(served), np.array(predicted), rtol=1e-12, atol=1e-12)
