from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from features.backfill import compute_features
from features.core import (
    DAY_MS,
    FEATURE_NAMES,
    HOUR_MS,
    NO_PREVIOUS_SECONDS,
    CardState,
    Event,
    update,
)

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday


def ev(
    i: int,
    ms: int,
    amount: float = 10.0,
    merchant: str = "m1",
    country: str = "FR",
    device: str | None = "d1",
    channel: str = "pos",
) -> Event:
    return Event(f"t{i}", ms, "c1", merchant, amount, channel, country, device)


def feats(values: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, values, strict=True))


def run(events: list[Event]) -> list[dict[str, float]]:
    state = None
    out = []
    for e in events:
        state, f = update(state, e)
        out.append(feats(f))
    return out


def test_windows_include_the_event_and_expire() -> None:
    out = run(
        [ev(1, T0), ev(2, T0 + 30 * 60_000), ev(3, T0 + 2 * HOUR_MS), ev(4, T0 + 25 * HOUR_MS)]
    )
    assert [f["card_txn_count_1h"] for f in out] == [1, 2, 1, 1]
    assert [f["card_txn_count_24h"] for f in out] == [1, 2, 3, 2]
    assert out[2]["card_amount_sum_24h"] == pytest.approx(30.0)


def test_history_features_exclude_the_current_amount() -> None:
    out = run([ev(1, T0, 10.0), ev(2, T0 + HOUR_MS, 30.0), ev(3, T0 + 2 * HOUR_MS, 200.0)])
    assert out[0]["card_amount_mean_30d"] == 0.0 and out[0]["card_amount_ratio_30d"] == 1.0
    assert out[2]["card_amount_mean_30d"] == pytest.approx(20.0)
    assert out[2]["card_amount_ratio_30d"] == pytest.approx(10.0)
    assert out[0]["card_seconds_since_prev"] == NO_PREVIOUS_SECONDS
    assert out[1]["card_seconds_since_prev"] == pytest.approx(3600.0)
    assert out[2]["amount_log"] == pytest.approx(math.log1p(200.0))


def test_distinct_and_novelty_features() -> None:
    out = run(
        [
            ev(1, T0, merchant="m1", country="FR", device="d1"),
            ev(2, T0 + 1000, merchant="m2", country="FR", device="d1"),
            ev(3, T0 + 2000, merchant="m3", country="US", device="d2"),
            ev(4, T0 + 31 * DAY_MS, merchant="m3", country="US", device="d2"),
        ]
    )
    assert [f["card_distinct_merchants_24h"] for f in out] == [1, 2, 3, 1]
    assert [f["card_distinct_countries_24h"] for f in out] == [1, 1, 2, 1]
    assert [f["card_new_device_30d"] for f in out] == [1, 0, 1, 1]
    assert [f["card_new_country_30d"] for f in out] == [0, 0, 1, 0]


def test_calendar_flags_use_event_time_utc() -> None:
    saturday_3am = T0 + 5 * DAY_MS + 3 * HOUR_MS
    monday_noon = T0 + 12 * HOUR_MS
    out = run([ev(1, saturday_3am, channel="ecom"), ev(2, monday_noon + 7 * DAY_MS)])
    assert (out[0]["is_night"], out[0]["is_weekend"], out[0]["is_ecom"]) == (1, 1, 1)
    assert (out[1]["is_night"], out[1]["is_weekend"], out[1]["is_ecom"]) == (0, 0, 0)


def test_redelivery_does_not_double_count() -> None:
    state, first = update(None, ev(1, T0))
    state, second = update(state, ev(2, T0 + 1000))
    before = json.dumps(state.to_dict())
    state, again = update(state, ev(1, T0))
    assert again == first
    state, again2 = update(state, ev(2, T0 + 1000))
    assert again2 == second
    assert json.dumps(state.to_dict()) == before


def test_state_survives_a_json_round_trip() -> None:
    events = [ev(i, T0 + i * 17 * 60_000, amount=5.0 + i, merchant=f"m{i % 4}") for i in range(200)]
    state_a: CardState | None = None
    state_b: CardState | None = None
    for e in events:
        state_a, fa = update(state_a, e)
        restored = (
            CardState.from_dict(json.loads(json.dumps(state_b.to_dict()))) if state_b else None
        )
        state_b, fb = update(restored, e)
        assert fa == fb


def test_memory_is_bounded() -> None:
    state = None
    for i in range(2000):
        state, _ = update(state, ev(i, T0 + i * 6 * HOUR_MS, device=f"d{i}", country="FR"))
    assert state is not None
    assert len(state.days) <= 31
    assert len(state.times) <= 5
    assert len(state.devices) <= 130
    assert len(state.recent) <= 16


def test_backfill_equals_the_streaming_core() -> None:
    rows = []
    for i in range(300):
        rows.append(
            {
                "transaction_id": f"t{i}",
                "event_time": pd.Timestamp(T0 + i * 11 * 60_000, unit="ms", tz="UTC"),
                "card_id": f"c{i % 7}",
                "merchant_id": f"m{i % 5}",
                "amount": 1.0 + i % 13,
                "channel": "ecom" if i % 3 else "pos",
                "country": "FR" if i % 4 else "DE",
                "device_id": None if i % 6 == 0 else f"d{i % 2}",
            }
        )
    frame = pd.DataFrame(rows)
    offline = compute_features(frame)
    states: dict[str, CardState] = {}
    for i, row in enumerate(rows):
        e = Event(
            row["transaction_id"],
            int(row["event_time"].value // 1_000_000),
            row["card_id"],
            row["merchant_id"],
            row["amount"],
            row["channel"],
            row["country"],
            row["device_id"],
        )
        state, f = update(states.get(e.card_id), e)
        states[e.card_id] = state
        assert tuple(offline.iloc[i]) == f
