"""Every feature the core computes is finite, for any history the boundary accepts.

A property test (hypothesis): histories of a few cards and terminals with the amounts that
broke the stream before (0, the smallest valid amount, the maximum, runs of zeros after
non-zero amounts whose windows then expire), times equal, close and decades apart (within
the valid 2000..2100 range), repeated ids and labels. The core's vectors must all be finite
and the vectorised twin must equal the core bit for bit (for the default label delay and
for d = 3 and 14). A second property feeds the core values the validator refuses (subnormal
amounts) to show the guards do not rely on it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.backfill import compute_features
from features.card import RATIO_CAP, CardState, Event, card_update
from features.core import FEATURE_NAMES
from features.guards import check_finite, check_finite_rows
from features.terminal import label_delay_days
from features.vectorised import compute_features_vectorised
from infra.errors import InvalidInput
from streams.rules import MAX_AMOUNT, MAX_EVENT_MS, MIN_EVENT_MS, MIN_POSITIVE_AMOUNT

DAY = 86_400_000
VALID_AMOUNTS = st.one_of(
    st.sampled_from([0.0, MIN_POSITIVE_AMOUNT, MAX_AMOUNT, 0.1, 0.2, 0.3, 1e-3]),
    st.floats(min_value=MIN_POSITIVE_AMOUNT, max_value=MAX_AMOUNT),
)
GAPS = st.one_of(  # ms between consecutive events: equal, close, days, decades
    st.just(0), st.integers(1, 1000), st.integers(1, 40 * DAY),
    st.integers(1, 30 * 365 * DAY),
)


@st.composite
def histories(draw: st.DrawFn, amounts: st.SearchStrategy[float] = VALID_AMOUNTS
              ) -> pd.DataFrame:
    n = draw(st.integers(1, 40))
    start = draw(st.integers(MIN_EVENT_MS, MIN_EVENT_MS + 50 * 365 * DAY))
    rows, ms = [], start
    for i in range(n):
        ms = min(MAX_EVENT_MS, ms + draw(GAPS))
        card = draw(st.sampled_from(["c1", "c2", "c3"]))
        repeat = rows and draw(st.integers(0, 9)) == 0
        prev = rows[-1] if repeat else None
        if prev is not None and prev["card_id"] == card:  # an identical redelivery
            rows.append({**prev})
            continue
        fraud = draw(st.booleans())
        rows.append({
            "transaction_id": f"t{i}", "event_time": pd.Timestamp(ms, unit="ms", tz="UTC"),
            "card_id": card, "merchant_id": draw(st.sampled_from(["m1", "m2", "Café, 3"])),
            "terminal_id": draw(st.sampled_from(["T1", "T2", None])),
            "amount": draw(amounts), "channel": draw(st.sampled_from(["pos", "ecom", "atm"])),
            "country": draw(st.sampled_from(["FR", "DE"])),
            "device_id": draw(st.sampled_from(["d1", None])), "is_fraud": fraud,
            "label_time": pd.Timestamp(min(MAX_EVENT_MS, ms + draw(GAPS)), unit="ms",
                                       tz="UTC"),
        })
    return pd.DataFrame(rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_every_core_vector_is_finite_and_the_twin_equals_the_core(frame: pd.DataFrame
                                                                  ) -> None:
    core = compute_features(frame).to_numpy()
    assert np.isfinite(core).all(), frame
    check_finite_rows(core, FEATURE_NAMES)
    twin = compute_features_vectorised(frame).to_numpy()
    np.testing.assert_array_equal(twin, core)


@pytest.mark.parametrize("delay", [3, 14])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=histories())
def test_the_twin_equals_the_core_for_other_label_delays(delay: int, frame: pd.DataFrame
                                                         ) -> None:
    with label_delay_days(delay):
        core = compute_features(frame).to_numpy()
        twin = compute_features_vectorised(frame).to_numpy()
    assert np.isfinite(core).all(), frame
    np.testing.assert_array_equal(twin, core)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(st.one_of(st.just(5e-324), st.floats(0.0, 1e-300), VALID_AMOUNTS)))
def test_the_core_stays_finite_even_below_the_validator(frame: pd.DataFrame) -> None:
    core = compute_features(frame).to_numpy()
    assert np.isfinite(core).all(), frame
    np.testing.assert_array_equal(compute_features_vectorised(frame).to_numpy(), core)


def test_the_poison_pill_of_issue_12_gives_a_clipped_ratio() -> None:
    """A 5e-324 amount, then a normal one on the same card: the ratio was inf."""
    event = Event("a", MIN_EVENT_MS, "c", "m", 5e-324, "pos", "FR", None)
    state, _ = card_update(None, event)
    state, feats = card_update(state, event._replace(transaction_id="b", amount=100.0))
    assert feats is not None
    named = dict(zip(FEATURE_NAMES, feats, strict=False))
    assert named["card_amount_ratio_30d"] == RATIO_CAP
    assert all(math.isfinite(v) for v in feats)


def test_zero_amount_history_keeps_neutral_ratio_and_zscore() -> None:
    state: CardState | None = None
    for i in range(5):
        state, feats = card_update(state, Event(f"t{i}", MIN_EVENT_MS + i, "c", "m", 0.0,
                                                "pos", "FR", None))
    assert feats is not None
    named = dict(zip(FEATURE_NAMES, feats, strict=False))
    assert named["card_amount_ratio_30d"] == 1.0 and named["card_amount_zscore_30d"] == 0.0


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, None, "1.0"])
def test_guard_names_the_non_finite_feature(bad: object) -> None:
    values: list[object] = [1.0] * len(FEATURE_NAMES)
    values[19] = bad
    with pytest.raises(InvalidInput, match=f"{FEATURE_NAMES[19]}="):
        check_finite(values, FEATURE_NAMES)
    matrix = np.ones((3, len(FEATURE_NAMES)))
    matrix[2, 5] = math.inf
    with pytest.raises(InvalidInput, match=f"row 2: .*{FEATURE_NAMES[5]}=inf"):
        check_finite_rows(matrix, FEATURE_NAMES)


def test_guard_passes_finite_vectors_and_refuses_wrong_lengths() -> None:
    check_finite([0.0] * len(FEATURE_NAMES), FEATURE_NAMES)
    check_finite_rows(np.zeros((2, len(FEATURE_NAMES))), FEATURE_NAMES)
    with pytest.raises(InvalidInput, match="values for"):
        check_finite([0.0], FEATURE_NAMES)
