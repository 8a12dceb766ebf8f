from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest

from features import terminal as terminal_module
from features.backfill import compute_features
from features.card import TXN_MAP_CAP
from features.core import (
    CARD_FEATURE_NAMES,
    DAY_MS,
    FEATURE_NAMES,
    HOUR_MS,
    NO_PREVIOUS_SECONDS,
    TERMINAL_FEATURE_NAMES,
    CardState,
    Event,
    FeatureCore,
    Features,
    Label,
    LabelEvent,
    TerminalState,
    card_label,
    card_update,
    terminal_label,
    terminal_update,
)
from features.terminal import (
    LABEL_DELAY_DAYS,
    check_delay,
    day_spans,
    delay_of,
    known_days,
    label_delay,
    label_delay_days,
)
from features.windows import DayBuckets, Sliding

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
MIN = 60_000


def ev(i: int, ms: int, amount: float = 10.0, merchant: str = "m1", country: str = "FR",
       device: str | None = "d1", channel: str = "pos", card: str = "c1",
       terminal: str | None = "t1") -> Event:
    return Event(f"t{i}", ms, card, merchant, amount, channel, country, device, terminal)


def card_run(events: list[Event]) -> list[dict[str, float]]:
    state = None
    out = []
    for e in events:
        state, f = card_update(state, e)
        out.append(dict(zip(CARD_FEATURE_NAMES, f, strict=True)))
    return out


def named(vector: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, vector, strict=True))


def test_sliding_window_expires_exactly_at_the_span() -> None:
    w = Sliding(span=10, n_keys=1)
    w.push(0, 1.0, "a")
    w.push(9, 2.0, "b")
    assert (w.count, w.total, w.n_distinct(0)) == (2, 3.0, 2)
    w.push(10, 4.0, "b")  # t=0 leaves: window is (0, 10]
    assert (w.count, w.total, w.n_distinct(0)) == (2, 6.0, 1)
    assert Sliding.from_list(json.loads(json.dumps(w.to_list()))).distinct == w.distinct


def test_day_buckets_running_totals_equal_recomputed_sums() -> None:
    rng = random.Random(3)  # noqa: S311 - test data
    b = DayBuckets((7, 30), 1)
    history: list[tuple[int, float]] = []
    day = 0
    for _ in range(600):
        day += rng.choice([0, 0, 1, 2, 5])
        b.advance(day)
        amend = max(0, day - rng.randrange(0, 40))
        if b.add(amend, 0, 1.0, create=False):
            history.append((amend, 1.0))
        b.add(day, 0, 2.0)
        history.append((day, 2.0))
        for j, span in enumerate((7, 30)):
            expected = sum(v for d, v in history if d > day - span)
            assert b.total(j, 0) == pytest.approx(expected)
        assert len(b.buckets) <= 30


def test_card_windows_include_the_event_and_expire() -> None:
    out = card_run([ev(1, T0), ev(2, T0 + 5 * MIN), ev(3, T0 + 30 * MIN),
                    ev(4, T0 + 2 * HOUR_MS), ev(5, T0 + 25 * HOUR_MS),
                    ev(6, T0 + 8 * DAY_MS)])
    assert [f["card_txn_count_10m"] for f in out] == [1, 2, 1, 1, 1, 1]
    assert [f["card_txn_count_1h"] for f in out] == [1, 2, 3, 1, 1, 1]
    assert [f["card_txn_count_24h"] for f in out] == [1, 2, 3, 4, 2, 1]
    assert [f["card_txn_count_7d"] for f in out] == [1, 2, 3, 4, 5, 1]  # calendar days
    assert [f["card_txn_count_30d"] for f in out] == [1, 2, 3, 4, 5, 6]
    assert out[3]["card_amount_sum_24h"] == pytest.approx(40.0)


def test_history_features_describe_the_card_before_the_event() -> None:
    out = card_run([ev(1, T0, 10.0), ev(2, T0 + HOUR_MS, 30.0), ev(3, T0 + 2 * HOUR_MS, 20.0),
                    ev(4, T0 + 3 * HOUR_MS, 200.0)])
    assert out[0]["card_amount_ratio_30d"] == 1.0 and out[0]["card_amount_zscore_30d"] == 0.0
    assert out[3]["card_amount_ratio_30d"] == pytest.approx(10.0)
    assert out[3]["card_amount_zscore_30d"] == pytest.approx((200 - 20) / math.sqrt(200 / 3))
    assert out[0]["card_seconds_since_prev"] == NO_PREVIOUS_SECONDS
    assert out[1]["card_seconds_since_prev"] == pytest.approx(3600.0)
    assert out[3]["amount_log"] == pytest.approx(math.log1p(200.0))
    assert out[3]["card_age_days"] == pytest.approx(3 / 24)
    assert out[1]["card_profile_amount_ewm"] == pytest.approx(10.0)


def test_distinct_and_novelty_features() -> None:
    out = card_run([
        ev(1, T0, merchant="m1", country="FR", device="d1"),
        ev(2, T0 + 1000, merchant="m2", country="FR", device="d1"),
        ev(3, T0 + 2000, merchant="m3", country="US", device="d2"),
        ev(4, T0 + 31 * DAY_MS, merchant="m3", country="US", device="d2"),
    ])
    assert [f["card_distinct_merchants_24h"] for f in out] == [1, 2, 3, 1]
    assert [f["card_distinct_countries_24h"] for f in out] == [1, 1, 2, 1]
    assert [f["card_distinct_devices_24h"] for f in out] == [1, 1, 2, 1]
    assert [f["card_new_device_30d"] for f in out] == [1, 0, 1, 1]
    assert [f["card_new_country_30d"] for f in out] == [0, 0, 1, 0]  # no 30-day history
    assert [f["card_new_merchant_30d"] for f in out] == [0, 1, 1, 0]


def test_calendar_flags_use_event_time_utc() -> None:
    saturday_3am = T0 + 5 * DAY_MS + 3 * HOUR_MS
    out = card_run([ev(1, saturday_3am, channel="ecom"), ev(2, T0 + 7 * DAY_MS + 12 * HOUR_MS,
                                                            channel="atm")])
    assert (out[0]["is_night"], out[0]["is_weekend"], out[0]["is_ecom"]) == (1, 1, 1)
    assert (out[1]["is_night"], out[1]["is_weekend"], out[1]["is_atm"]) == (0, 0, 1)


def test_redelivery_does_not_double_count() -> None:
    state, first = card_update(None, ev(1, T0))
    state, second = card_update(state, ev(2, T0 + 1000))
    before = json.dumps(state.to_dict())
    assert first is not None and second is not None
    for redelivered in (ev(1, T0), ev(2, T0 + 1000)):
        state, again = card_update(state, redelivered)
        assert again is None  # applied already: nothing to re-emit
    assert json.dumps(state.to_dict()) == before
    term, feats = terminal_update(None, "t1", T0, 5.0)
    term, _ = terminal_update(term, "t2", T0 + 1000, 5.0)
    snapshot = json.dumps(term.to_dict())
    assert terminal_update(term, "t1", T0, 5.0)[1] is None
    assert terminal_update(term, "t2", T0 + 1000, 5.0)[1] is None
    assert json.dumps(term.to_dict()) == snapshot
    assert feats[:9] == (1.0, 1.0, 1.0, 1.0, 5.0, 0.0, 0.0, 0.0, 0.0)


def test_states_survive_a_json_round_trip() -> None:
    a: CardState | None = None
    b: CardState | None = None
    ta: TerminalState | None = None
    tb: TerminalState | None = None
    for i in range(300):
        e = ev(i, T0 + i * 37 * MIN, amount=5.0 + i % 7, merchant=f"m{i % 4}",
               device=f"d{i % 3}")
        a, fa = card_update(a, e)
        b, fb = card_update(CardState.from_dict(json.loads(json.dumps(b.to_dict())))
                            if b else None, e)
        assert fa == fb
        ta, ga = terminal_update(ta, e.transaction_id, e.event_ms, e.amount)
        tb, gb = terminal_update(TerminalState.from_dict(json.loads(json.dumps(tb.to_dict())))
                                 if tb else None, e.transaction_id, e.event_ms, e.amount)
        assert ga == gb
        if i % 5 == 0:
            label = LabelEvent(f"t{i}", "t1", e.event_ms, e.event_ms + HOUR_MS, True)
            ta, tb = terminal_label(ta, label), terminal_label(tb, label)


def test_memory_is_bounded() -> None:
    state = None
    terminal = None
    for i in range(6000):
        ms = T0 + i * 3 * HOUR_MS
        state, _ = card_update(state, ev(i, ms, device=f"d{i}", merchant=f"m{i}"))
        terminal, _ = terminal_update(terminal, f"t{i}", ms, 1.0)
        terminal = terminal_label(terminal, LabelEvent(f"t{i}", "t1", ms, ms, True))
        card_label(state, f"t{i}", ms, True)
    assert state is not None and terminal is not None
    assert len(state.days.buckets) <= 30 and len(terminal.days.buckets) <= day_spans()[-1]
    assert len(state.frauds) <= 60 * 8 + 8
    assert state.w24h.count <= 8 and state.w10m.count <= 1
    assert max(len(s) for s in state.seen) <= 30 * 8 + 8
    assert len(state.txns) <= 60 * 8 + 8 <= TXN_MAP_CAP
    assert len(state.recent) <= 16
    assert len(terminal.frauds) <= (known_days(day_spans()) + 1) * 8


def test_terminal_fraud_rate_uses_only_labels_known_at_event_time() -> None:
    core = FeatureCore()
    events = [ev(1, T0, card="a"), ev(2, T0 + HOUR_MS, card="b"),
              ev(3, T0 + 3 * HOUR_MS, card="c"), ev(4, T0 + 5 * HOUR_MS, card="d")]
    # t1 is found fraudulent at T0+3h exactly (known by t3), t2 at T0+6h (after t4)
    labels = [Label("t1", "a", T0 + 3 * HOUR_MS, True), Label("t2", "b", T0 + 6 * HOUR_MS, True)]
    out = {k: named(v) for k, v in core.run(events, labels).items()}
    assert [out[f"t{i}"]["term_fraud_count_30d"] for i in range(1, 5)] == [0, 0, 1, 1]
    assert out["t3"]["term_fraud_rate_7d"] == pytest.approx(1 / 3)
    assert out["t4"]["term_txn_count_24h"] == 4 and out["t4"]["term_txn_count_1h"] == 1
    assert core.terminals["t:t1"].days.total(1, 1) == 2  # t2 counted after its label_time


def test_no_label_from_the_future_on_simulated_data() -> None:
    from replay.simulator import SimulationConfig, simulate

    frame = simulate(SimulationConfig(n_customers=120, n_terminals=15, days=10, seed=4,
                                      analyst_share=1.0, analyst_hours=(0.2, 2.0)))
    feats = compute_features(frame)
    times = frame["event_time"].astype("int64") // 1_000_000
    label_ms = frame["label_time"].astype("int64") // 1_000_000
    terms = frame["terminal_id"].fillna("m:" + frame["merchant_id"])
    fraud = frame["is_fraud"].to_numpy()
    checked = 0
    for i in range(len(frame)):
        t = times.iloc[i]
        same = (terms == terms.iloc[i]).to_numpy()
        window = same & (times > t - 30 * DAY_MS).to_numpy() & (times <= t).to_numpy()
        known = window & fraud & (label_ms <= t).to_numpy()
        assert feats["term_fraud_count_30d"].iloc[i] <= known.sum()  # day buckets: <= 30 days
        assert feats["term_fraud_count_30d"].iloc[i] >= (known & (times >= (t // DAY_MS - 29)
                                                                  * DAY_MS).to_numpy()).sum()
        checked += int(known.sum() > 0)
    assert checked > 0


def test_determinism_and_backfill_equals_feature_core() -> None:
    rows = [{"transaction_id": f"t{i}",
             "event_time": pd.Timestamp(T0 + i * 11 * MIN, unit="ms", tz="UTC"),
             "card_id": f"c{i % 7}", "merchant_id": f"m{i % 5}",
             "terminal_id": None if i % 4 == 0 else f"T{i % 3}", "amount": 1.0 + i % 13,
             "channel": "ecom" if i % 3 else "pos", "country": "FR" if i % 4 else "DE",
             "device_id": None if i % 6 == 0 else f"d{i % 2}"} for i in range(400)]
    frame = pd.DataFrame(rows)
    a, b = compute_features(frame), compute_features(frame)
    assert a.equals(b) and list(a.columns) == list(FEATURE_NAMES)
    events = [Event(r["transaction_id"], int(r["event_time"].value // 1_000_000), r["card_id"],
                    r["merchant_id"], r["amount"], r["channel"], r["country"], r["device_id"],
                    r["terminal_id"]) for r in rows]
    vectors = FeatureCore().run(events, [])
    for i, r in enumerate(rows):
        assert tuple(a.iloc[i]) == vectors[r["transaction_id"]]
    assert len(FEATURE_NAMES) == len(CARD_FEATURE_NAMES) + len(TERMINAL_FEATURE_NAMES)


def test_delayed_windows_count_matured_days_only() -> None:
    """One transaction a day at a terminal; every one of the first 20 days is fraud and its
    label arrives exactly d days later. On day 40 the delayed windows are the days
    (40 - d - w, 40 - d] and see only labels known by then."""
    d = LABEL_DELAY_DAYS
    items = []
    for day in range(41):
        items.append((T0 + day * DAY_MS + HOUR_MS, "tx", day))
        if day < 20:
            items.append((T0 + (day + d) * DAY_MS + HOUR_MS, "label", day))
    items.sort(key=lambda it: (it[0], it[1] != "label"))  # labels first at the same ms
    state, feats = None, {}
    for ms, kind, day in items:
        if kind == "label":
            state = terminal_label(state, LabelEvent(f"t{day}", "t1",
                                                     T0 + day * DAY_MS + HOUR_MS, ms, True))
        else:
            state, f = terminal_update(state, f"t{day}", ms, 1.0)
            feats[day] = dict(zip(TERMINAL_FEATURE_NAMES, f or (), strict=True))
    at = feats[24]  # matured days 17..16-w+1 .. up to 17: frauds on days <= 19 only
    assert at["term_txn_count_1d_delayed"] == 1.0
    assert at["term_txn_count_7d_delayed"] == 7.0
    assert at["term_fraud_count_1d_delayed"] == 1.0  # day 17, known on day 24 01:00
    assert at["term_fraud_rate_7d_delayed"] == 1.0  # days 11..17 all fraud and all known
    assert at["term_fraud_count_7d"] == 0.0  # days 18..24: day 18's label arrives day 25
    late = feats[40]  # delayed 7 d window = days 27..33: no fraud there
    assert late["term_fraud_count_7d_delayed"] == 0.0
    assert late["term_txn_count_30d_delayed"] == 30.0  # days 4..33
    assert late["term_fraud_count_30d_delayed"] == 16.0  # days 4..19
    assert late["term_fraud_count_known_long"] == 20.0 - 4.0 + 0.0  # days 4..19 (37 days)
    assert late["term_fraud_rate_30d_delayed"] == 16.0 / 30.0


def test_card_labels_mark_the_card_known_compromised_after_the_label() -> None:
    core = FeatureCore()
    day = DAY_MS
    events = [ev(i, T0 + i * day, card="c1") for i in range(10)]
    labels = [Label("t1", "c1", T0 + 3 * day, True),  # known from day 3 on (strictly after)
              Label("t2", "c1", T0 + 5 * day + 1, True),
              Label("t2", "c1", T0 + 6 * day + 1, False)]  # withdrawn
    out = core.run(events, labels)
    count = [named(out[f"t{i}"])["card_known_fraud_count_30d"] for i in range(10)]
    known = [named(out[f"t{i}"])["card_known_compromised"] for i in range(10)]
    assert count == [0, 0, 0, 0, 1, 1, 2, 1, 1, 1]
    assert known == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]


def test_card_label_is_idempotent_and_forgets_after_the_horizon() -> None:
    state, _ = card_update(None, ev(0, T0))
    for _ in range(3):
        card_label(state, "t0", T0 + HOUR_MS, True)
    card_label(state, "unknown", T0 + HOUR_MS, True)  # not in the card's map: ignored
    assert state.frauds == {"t0": T0}
    _, f = card_update(state, ev(1, T0 + 31 * DAY_MS))
    assert named(f + (0.0,) * len(TERMINAL_FEATURE_NAMES))["card_known_fraud_count_30d"] == 0
    assert named(f + (0.0,) * len(TERMINAL_FEATURE_NAMES))["card_known_compromised"] == 1.0
    _, f = card_update(state, ev(2, T0 + 61 * DAY_MS))
    assert f[-1] == 0.0 and state.frauds == {}
    assert CardState.from_dict(json.loads(json.dumps(state.to_dict()))).frauds == {}


def test_terminal_state_of_an_older_version_is_rebucketed(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal_module, "_WARNED", set())
    old = TerminalState(days=DayBuckets((7, 30), 2))
    old.days.advance(100)
    old.days.add(95, 0, 3.0)
    old.days.add(95, 1, 1.0)
    data = json.loads(json.dumps(old.to_dict()))
    with caplog.at_level("WARNING", logger="features.terminal"):
        new = TerminalState.from_dict(data)
    spans = day_spans()
    assert new.days.spans == spans and "re-bucketed" in caplog.text
    assert new.days.totals[spans.index(30)] == [3.0, 1.0]
    assert known_days(spans) == spans[-1] + 1


def _daily_terminal(delay: int, days: int = 60) -> tuple[TerminalState, dict[int, Features]]:
    """One transaction a day at a terminal, every third one fraud, known ``delay`` days
    later; the state after the last day and each day's features (under ``label_delay``)."""
    state: TerminalState | None = None
    feats: dict[int, Features] = {}
    for day in range(days):
        ms = T0 + day * DAY_MS + HOUR_MS
        for past in range(max(0, day - delay), day):  # labels known by now, in order
            if past % 3 == 0 and past + delay == day:
                state = terminal_label(state, LabelEvent(
                    f"t{past}", "t1", T0 + past * DAY_MS + HOUR_MS, ms, True))
        state, f = terminal_update(state, f"t{day}", ms, 1.0)
        assert f is not None
        feats[day] = f
    assert state is not None
    return state, feats


@pytest.mark.parametrize("delay", [3, 7, 14])
def test_delayed_windows_follow_the_configured_delay(delay: int) -> None:
    """For d = 3, 7 and 14 the delayed windows are the days ``(day - d - w, day - d]``,
    recounted here by brute force (every fraud of those days is known by then)."""
    with label_delay_days(delay):
        state, feats = _daily_terminal(delay)
    assert state.days.spans == day_spans(delay) and delay_of(state.days.spans) == delay
    for day in (delay + 31, 59):
        got = dict(zip(TERMINAL_FEATURE_NAMES, feats[day], strict=True))
        for w in (1, 7, 30):
            window = [x for x in range(day - delay - w + 1, day - delay + 1) if x >= 0]
            frauds = sum(1 for x in window if x % 3 == 0)
            assert got[f"term_txn_count_{w}d_delayed"] == len(window)
            assert got[f"term_fraud_count_{w}d_delayed"] == frauds
            assert got[f"term_fraud_rate_{w}d_delayed"] == frauds / len(window)
        long = [x for x in range(day - delay - 30 + 1, day + 1) if x % 3 == 0 and x + delay <= day]
        assert got["term_fraud_count_known_long"] == len(long)


def test_a_state_of_another_delay_is_rebucketed_with_a_warning(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state stored under d = 14 and loaded under d = 3 gets d = 3's spans (never a mix):
    the days it kept are exact, so its d = 3 windows count what they can see. The warning
    comes once per process, not once per terminal."""
    monkeypatch.setattr(terminal_module, "_WARNED", set())
    with label_delay_days(14):
        stored, _ = _daily_terminal(14)
    data = json.loads(json.dumps(stored.to_dict()))
    with label_delay_days(3):
        with caplog.at_level("WARNING", logger="features.terminal"):
            loaded = TerminalState.from_dict(data)
        assert "label delay 14 d" in caplog.text and "label delay 3 d" in caplog.text
        assert loaded.days.spans == day_spans(3)
        caplog.clear()
        with caplog.at_level("WARNING", logger="features.terminal"):
            again = TerminalState.from_dict(json.loads(json.dumps(data)))
        assert caplog.text == "" and again.days.spans == day_spans(3)
        _, got = terminal_update(loaded, "t60", T0 + 60 * DAY_MS + HOUR_MS, 1.0)
    named_got = dict(zip(TERMINAL_FEATURE_NAMES, got or (), strict=True))
    # d = 3 windows on day 60: days (57 - w, 57]; frauds (every third day) known by day 60
    # are those of days <= 45 (labels 14 days later), so only the 30-day one has any
    for w, frauds in ((1, 0.0), (7, 0.0), (30, 6.0)):  # days 30, 33, ..., 45
        assert named_got[f"term_txn_count_{w}d_delayed"] == w
        assert named_got[f"term_fraud_count_{w}d_delayed"] == frauds
    assert named_got["term_fraud_count_known_long"] == 6.0  # days 28..60
    caplog.clear()
    with label_delay_days(14), caplog.at_level("WARNING", logger="features.terminal"):
        same = TerminalState.from_dict(json.loads(json.dumps(stored.to_dict())))
    assert same.days.spans == stored.days.spans and caplog.text == ""


@pytest.mark.parametrize("bad", [0, -1, 91, 7.5, "7", True])
def test_the_delay_is_checked(bad: object) -> None:
    with pytest.raises(ValueError, match="label delay"):
        check_delay(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="label delay"):
        day_spans(bad)  # type: ignore[arg-type]
    assert label_delay() == LABEL_DELAY_DAYS


def test_the_delay_is_restored_after_a_block() -> None:
    with pytest.raises(RuntimeError), label_delay_days(3):
        assert label_delay() == 3 and day_spans() == (3, 4, 7, 10, 30, 33)
        raise RuntimeError
    assert label_delay() == LABEL_DELAY_DAYS == 7 and day_spans() == (7, 8, 14, 30, 37)


@pytest.mark.parametrize("delay", [3, 7, 14])
def test_the_twin_equals_the_core_bit_for_bit_for_any_delay(delay: int) -> None:
    """Core (backfill, stream) and numpy twin (backtest, training) read the same ``d``."""
    from unittest import mock

    from features import vectorised
    from replay.simulator import SimulationConfig, simulate

    frame = simulate(SimulationConfig(n_customers=150, n_terminals=20, n_ecom_merchants=5,
                                      days=60, seed=11, label_delay_days=float(delay)))
    with label_delay_days(delay):
        core = compute_features(frame)
        with mock.patch.object(vectorised, "compute_features") as fallback:
            twin = vectorised.compute_features_vectorised(frame)
    assert not fallback.called  # the twin computed it, not the core
    np.testing.assert_array_equal(twin.to_numpy(), core.to_numpy())
    delayed = [n for n in TERMINAL_FEATURE_NAMES if "_delayed" in n]
    assert core["term_fraud_count_7d_delayed"].to_numpy().any()
    if delay != LABEL_DELAY_DAYS:  # the setting reaches the features
        default = vectorised.compute_features_vectorised(frame)
        assert not np.array_equal(default[delayed].to_numpy(), twin[delayed].to_numpy())
