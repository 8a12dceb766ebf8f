"""Retrain triggers: each reason, debounce of decay, rate limit, state after a retrain."""

from __future__ import annotations

import pytest

from drift.triggers import (
    DAY_MS,
    Observation,
    Performance,
    TriggerConfig,
    TriggerState,
    retrained,
    update,
)

REF = Performance(recall_at_budget=0.80, average_precision=0.60, n_fraud=100)
GOOD = Performance(recall_at_budget=0.78, average_precision=0.58, n_fraud=100)
BAD = Performance(recall_at_budget=0.50, average_precision=0.58, n_fraud=100)
QUIET = TriggerConfig(volume_frauds=None, schedule_days=None)


def obs(day: float, **kw: object) -> Observation:
    return Observation(now_ms=int(day * DAY_MS), **kw)  # type: ignore[arg-type]


def test_nothing_met_nothing_fires() -> None:
    state, d = update(TriggerState(0), obs(10, performance=GOOD, reference=REF), QUIET)
    assert not d.fire and not d.met and d.suppressed is None and state.decay_streak == 0


def test_sustained_drift_fires_once_past_the_interval() -> None:
    _, d = update(TriggerState(0), obs(10, sustained_drift=("amount",)), QUIET)
    assert d.fire and d.reasons == ("drift",) and "amount" in d.details["drift"]


def test_decay_is_debounced() -> None:
    config = TriggerConfig(decay_confirmations=2, volume_frauds=None, schedule_days=None)
    state, d1 = update(TriggerState(0), obs(10, performance=BAD, reference=REF), config)
    assert not d1.fire and "decay" in d1.details and "not confirmed" in str(d1.suppressed)
    state, d2 = update(state, obs(11, performance=BAD, reference=REF), config)
    assert d2.fire and d2.reasons == ("decay",) and "recall@budget 0.500" in d2.details["decay"]
    assert state.decay_streak == 0  # restarts after firing


def test_a_good_check_resets_the_decay_streak() -> None:
    config = TriggerConfig(decay_confirmations=2, volume_frauds=None, schedule_days=None)
    state, _ = update(TriggerState(0), obs(10, performance=BAD, reference=REF), config)
    state, _ = update(state, obs(11, performance=GOOD, reference=REF), config)
    state, d = update(state, obs(12, performance=BAD, reference=REF), config)
    assert not d.fire and state.decay_streak == 1


def test_decay_on_average_precision_alone() -> None:
    low_ap = Performance(recall_at_budget=0.79, average_precision=0.30, n_fraud=100)
    config = TriggerConfig(decay_confirmations=1, volume_frauds=None, schedule_days=None)
    _, d = update(TriggerState(0), obs(10, performance=low_ap, reference=REF), config)
    assert d.fire and d.details["decay"].startswith("AP 0.300")


def test_decay_needs_enough_matured_frauds() -> None:
    few = Performance(recall_at_budget=0.1, average_precision=0.1, n_fraud=5)
    config = TriggerConfig(decay_confirmations=1, volume_frauds=None, schedule_days=None)
    _, d = update(TriggerState(0), obs(10, performance=few, reference=REF), config)
    assert not d.met


def test_volume_counts_fraud_labels() -> None:
    config = TriggerConfig(volume_frauds=100, schedule_days=None)
    _, d = update(TriggerState(0), obs(10, new_fraud_labels=99), config)
    assert not d.met
    _, d = update(TriggerState(0), obs(10, new_fraud_labels=100), config)
    assert d.fire and d.reasons == ("volume",)


def test_schedule_uses_event_time_since_the_last_retrain() -> None:
    config = TriggerConfig(schedule_days=30, volume_frauds=None)
    _, d = update(TriggerState(5 * DAY_MS), obs(34.9), config)
    assert not d.met
    _, d = update(TriggerState(5 * DAY_MS), obs(35), config)
    assert d.fire and d.reasons == ("schedule",)


def test_rate_limit_after_a_retrain_and_after_a_firing() -> None:
    config = TriggerConfig(min_interval_days=7, volume_frauds=None, schedule_days=None)
    drift = ("amount",)
    state, d = update(TriggerState(0), obs(3, sustained_drift=drift), config)
    assert d.met and not d.fire and d.suppressed and d.suppressed.startswith("rate limited")
    state, d = update(state, obs(7, sustained_drift=drift), config)
    assert d.fire
    # the caller has not retrained yet: a firing also starts the interval
    state, d = update(state, obs(8, sustained_drift=drift), config)
    assert not d.fire and "rate limited" in str(d.suppressed)
    state = retrained(state, 9 * DAY_MS)
    state, d = update(state, obs(15, sustained_drift=drift), config)
    assert not d.fire
    state, d = update(state, obs(16, sustained_drift=drift), config)
    assert d.fire


def test_several_reasons_are_all_recorded() -> None:
    config = TriggerConfig(decay_confirmations=1, volume_frauds=10, schedule_days=5)
    _, d = update(TriggerState(0), obs(10, sustained_drift=("x",), performance=BAD,
                                       reference=REF, new_fraud_labels=10), config)
    assert d.reasons == ("drift", "decay", "volume", "schedule")
    record = d.record()
    assert record["fire"] is True and record["reasons"] == list(d.reasons)


def test_deterministic() -> None:
    o = obs(10, performance=BAD, reference=REF, sustained_drift=("a",))
    assert update(TriggerState(0), o) == update(TriggerState(0), o)


@pytest.mark.parametrize("kw", [{"decay_confirmations": 0}, {"decay_recall_drop": 1.5},
                                {"min_interval_days": -1}])
def test_invalid_config(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TriggerConfig(**kw)  # type: ignore[arg-type]
