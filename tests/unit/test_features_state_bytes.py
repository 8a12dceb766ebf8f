"""Stage states as stored (JSON bytes, encoded once), served (no transaction map) and kept
decoded between micro-batches."""

from __future__ import annotations

from typing import Any

from features.backfill import events_from_frame
from features.card import CardState, card_update
from features.stages import CardStage, DictStore, WarmStates, decode, encode_card
from replay.simulator import SimulationConfig, simulate


class CountingStore(DictStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, key: str, handle: Any = None) -> Any:
        self.gets += 1
        return super().get(key, handle)


def busy_card_events() -> list[Any]:
    frame = simulate(SimulationConfig(n_customers=20, n_terminals=10, n_ecom_merchants=4,
                                      days=40, seed=5))
    events = list(events_from_frame(frame))
    card = max({e.card_id for e in events}, key=lambda c: sum(e.card_id == c for e in events))
    return [e for e in events if e.card_id == card]


def test_served_snapshot_gives_the_same_features_as_the_stored_state() -> None:
    events = busy_card_events()
    assert len(events) > 40
    state = None
    for event in events[:-1]:
        state, _ = card_update(state, event)
    assert state is not None and state.txns
    stored, served = encode_card(state)
    assert CardState.from_dict(decode(stored)).to_dict() == state.to_dict()
    from_served = CardState.from_dict(decode(served))
    assert from_served.txns == {} and len(served) < len(stored) / 2
    # what the REST API computes from the served snapshot is what the stream computes
    _, api = card_update(from_served, events[-1])
    _, stream = card_update(CardState.from_dict(decode(stored)), events[-1])
    assert api == stream is not None


def test_a_flushed_card_is_reused_decoded_until_its_partition_is_revoked() -> None:
    events = busy_card_events()
    table = CountingStore()
    stage = CardStage(table)
    for offset, event in enumerate(events[:10]):
        stage.transaction(0, event, {}, None, offset)
        stage.snapshots()
        stage.flush()
    assert table.gets == 1  # only the first batch read the (empty) table
    assert isinstance(table[events[0].card_id], bytes)
    stored = CardState.from_dict(decode(table[events[0].card_id]))
    assert stored.source == [0, 9]
    stage.forget(1)  # another partition: kept
    stage.transaction(0, events[10], {}, None, 10)
    stage.flush()
    assert table.gets == 1
    stage.forget(0)
    assert stage.transaction(0, events[10], {}, None, 10) is None  # the table knows offset 10
    assert table.gets == 2


def test_warm_states_drop_the_least_recently_used_first() -> None:
    warm = WarmStates(capacity=2)
    warm.keep("a", 1, 0)
    warm.keep("b", 2, 0)
    assert warm.get("a") == 1  # "a" is now the most recent
    warm.keep("c", 3, 1)
    assert (warm.get("a"), warm.get("b"), warm.get("c")) == (1, None, 3)
    warm.forget(1)
    assert (len(warm), warm.get("c")) == (1, None)
    off = WarmStates(capacity=0)
    off.keep("a", 1, 0)
    assert off.get("a") is None
