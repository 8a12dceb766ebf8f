"""Entity-state snapshots written by the stream stage for the REST API.

A few transactions of one card stream through the stage; its card and terminal snapshots
in Redis must equal the offline core's states after them, and the API's
:func:`scoring.state_store.features_for` on those snapshots must give the card's next
transaction exactly the vector the stream then decides it with.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.backfill import events_from_frame
from features.core import FEATURE_NAMES, CardState, FeatureCore, terminal_key
from features.redis_layout import card_state_key, terminal_state_key
from features.store import OnlineFeatures
from infra.settings import Settings
from infra.workers import WorkerProcess
from replay.history import iter_transactions
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate
from scoring.state_store import RedisStateStore, features_for
from streams.schema import Transaction
from tests.integration.deployed import drain, split_days
from tests.integration.streamcheck import deploy, stage


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
        if isinstance(got, dict):  # the stage's latest applied item order (not core state)
            got.pop("ll", None)
        if got == expected:
            break
        assert worker.alive(), worker.log_tail(60)
        time.sleep(0.2)
    return got


def test_worker_writes_snapshots_the_api_scores_from(settings: Settings, tmp_path: Path) -> None:
    s = settings
    frame = simulate(SimulationConfig(n_customers=300, n_terminals=150, days=14, seed=3))
    history, live = split_days(frame, 12)
    deploy(s, history, tmp_path)
    counts = live["card_id"].value_counts()
    card_id = str(counts.index[0])
    rows = live[live["card_id"] == card_id].reset_index(drop=True)
    assert len(rows) >= 6
    first, nxt = rows.iloc[:5], rows.iloc[5:6]
    online = OnlineFeatures(s)
    publish_history(first, s, progress=None)
    core = FeatureCore()
    core.run(events_from_frame(first), [])
    last = first.iloc[-1]
    terminal = terminal_key(None if pd.isna(last["terminal_id"]) else str(last["terminal_id"]),
                            str(last["merchant_id"]))
    worker = stage(s)
    store = RedisStateStore(s)
    try:
        assert len(drain(s, s.topic_scores, len(first), timeout=180, settle=1)) == len(first)
        card_key = card_state_key(s.feast_project, card_id)
        term_key = terminal_state_key(s.feast_project, terminal)
        assert wait_snapshot(online, card_key, as_json(core.cards[card_id]), worker) == \
            as_json(core.cards[card_id])
        assert wait_snapshot(online, term_key, as_json(core.terminals[terminal]), worker) == \
            as_json(core.terminals[terminal])
        assert 0 < online.redis.ttl(card_key) <= s.online_ttl_seconds

        # the API's synchronous vector for the next transaction, from the snapshots ...
        txn = Transaction.model_validate(next(iter_transactions(nxt)))
        predicted = features_for(store, txn)
        # ... is what the stream decides it with once it is published
        publish_history(nxt, s, progress=None)
        scores = drain(s, s.topic_scores, len(first) + 1, timeout=60, settle=1)
    finally:
        worker.stop()
        store.close()
    decided = [json.loads(m.value() or b"{}") for m in scores]
    served = [d["features"] for d in decided if d["transaction_id"] == txn.transaction_id]
    assert len(served) == 1
    np.testing.assert_allclose(np.array([served[0][n] for n in FEATURE_NAMES]),
                               np.array(predicted), rtol=1e-12, atol=1e-12)
    assert online.read([txn.transaction_id])[0] is not None  # the Feast row is there too
