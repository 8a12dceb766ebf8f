"""The vectorised twin equals the feature core, for every row and every feature.

:func:`features.vectorised.compute_features_vectorised` (what the backtest runs) is a second
implementation of :func:`features.backfill.compute_features` (the streaming core, one event
at a time). Equality is its contract: each test computes both and compares them within
``RTOL`` / ``ATOL`` (1e-9). On these histories the two are in fact bit-identical
(``test_features_frozen`` pins that on its history); the tolerance is the documented bound.
"""

from __future__ import annotations

import random
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from features import vectorised
from features.backfill import compute_features
from features.card import DEDUP_SIZE, TXN_MAP_CAP
from features.core import FEATURE_NAMES, HOUR_MS
from features.vectorised import ATOL, RTOL, compute_features_vectorised
from replay.backtest import feature_frame
from replay.simulator import SimulationConfig, simulate
from replay.validation import normalize

DAY = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday


def same_as_core(frame: pd.DataFrame, labels: pd.DataFrame | None = None, *,
                 fallback: bool = False) -> pd.DataFrame:
    """Both implementations on ``frame``; asserts equality, returns the twin's features.

    Unless ``fallback``, the twin must not hand the frame to the core (that would make the
    comparison trivial); with it, it must.
    """
    want = compute_features(frame, labels)
    with mock.patch.object(vectorised, "compute_features", wraps=compute_features) as core:
        got = compute_features_vectorised(frame, labels)
    assert core.called == fallback
    assert list(got.columns) == list(FEATURE_NAMES)
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=RTOL, atol=ATOL)
    return got


def tx(tid: str, ms: int, card: str = "c1", terminal: str | None = "T1", amount: float = 10.0,
       merchant: str = "m1", device: str | None = "d1", fraud: bool = False,
       label_ms: int | None = None, channel: str = "pos", country: str = "FR"
       ) -> dict[str, object]:
    return {"transaction_id": tid, "event_time": pd.Timestamp(ms, unit="ms", tz="UTC"),
            "card_id": card, "merchant_id": merchant, "terminal_id": terminal,
            "amount": amount, "channel": channel, "country": country, "device_id": device,
            "is_fraud": fraud,
            "label_time": pd.Timestamp(ms + DAY if label_ms is None else label_ms, unit="ms",
                                       tz="UTC")}


def frame_of(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


@pytest.mark.parametrize("config", [
    SimulationConfig(n_customers=150, n_terminals=40, n_ecom_merchants=20, days=45, seed=1),
    SimulationConfig(n_customers=80, n_terminals=10, n_ecom_merchants=5, days=70, seed=2,
                     analyst_share=1.0, analyst_hours=(0.0, 1.0)),
    SimulationConfig(n_customers=200, n_terminals=300, days=20, seed=3, analyst_share=0.0),
    SimulationConfig(n_customers=60, n_terminals=4, n_ecom_merchants=2, days=40, seed=4),
], ids=["default-mix", "fast-analysts", "chargebacks-only", "few-terminals"])
def test_simulated_histories(config: SimulationConfig) -> None:
    frame = simulate(config)
    same_as_core(frame)
    same_as_core(frame.drop(columns=["label_time", "is_fraud"]))  # no labels at all
    labels = frame.assign(label=np.where(frame["is_fraud"], "fraud", "genuine"))[
        ["transaction_id", "card_id", "label", "label_time"]]
    same_as_core(frame, labels.sample(frac=0.7, random_state=config.seed))


def test_backtest_feature_frame_is_the_twin() -> None:
    history = normalize(simulate(SimulationConfig(n_customers=100, n_terminals=30, days=15,
                                                  seed=8)))
    featured, names = feature_frame(history)
    assert names == FEATURE_NAMES
    want = compute_features(history)
    np.testing.assert_allclose(featured[list(names)].to_numpy(), want.to_numpy(),
                               rtol=RTOL, atol=ATOL)


def random_history(seed: int, n: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Adversarial histories: few cards and terminals, many same-millisecond rows, repeated
    ids (same and other cards), missing terminals and devices, labels at, before and long
    after the event, missing label times; plus a separate labels frame with verdict changes,
    unknown ids and wrong cards."""
    rng = random.Random(seed)  # noqa: S311 - test data
    n_cards, n_terms = rng.choice([1, 2, 3, 8, 30]), rng.choice([1, 2, 5, 20])
    grid = rng.choice([1, 1000, 60_000, HOUR_MS])
    t, rows = T0, []
    for i in range(n):
        r = rng.random()
        if 0.3 <= r < 0.95:
            t += rng.randrange(0, 3 * HOUR_MS) // grid * grid
        elif r >= 0.95:
            t += rng.randrange(0, 40 * DAY) // grid * grid
        tid = f"x{rng.randrange(i)}" if i and rng.random() < 0.08 else f"x{i}"
        tid = f"y{rng.randrange(1000)}" if rng.random() < 0.2 else tid
        d = rng.random()
        label = (t if d < 0.2 else t + rng.randrange(0, 10 * DAY) if d < 0.8
                 else t + rng.randrange(0, 50 * DAY) if d < 0.9
                 else t - rng.randrange(0, DAY) if d < 0.95 else None)
        row = tx(tid, t, card=f"c{rng.randrange(n_cards)}", merchant=f"m{rng.randrange(4)}",
                 terminal=rng.choice([None, float("nan"), ""]  # type: ignore[arg-type]
                                     + [f"T{k}" for k in range(n_terms)]),
                 amount=rng.choice([20.0, 40.0, round(rng.lognormvariate(3, 1), 2),
                                    0.01 * rng.randrange(1, 500)]),
                 device=rng.choice([None, float("nan"), "d1", "d2"]),  # type: ignore[arg-type]
                 channel=rng.choice(["pos", "ecom", "atm", "moto"]),
                 country=rng.choice(["FR", "DE", "US"]), fraud=rng.random() < 0.3)
        row["label_time"] = pd.NaT if label is None else pd.Timestamp(label, unit="ms", tz="UTC")
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["label_time"] = pd.to_datetime(frame["label_time"], utc=True)
    picks = [rng.randrange(n) for _ in range(n // 2)]
    labels = pd.DataFrame({
        "transaction_id": [frame["transaction_id"].iloc[i] if rng.random() < 0.9 else "zz"
                           for i in picks],
        "card_id": [frame["card_id"].iloc[i] if rng.random() < 0.95 else "c0" for i in picks],
        "label": [rng.choice(["fraud", "fraud", "genuine"]) for _ in picks],
        "label_time": [frame["event_time"].iloc[i] + pd.Timedelta(milliseconds=rng.choice(
            [0, 1, -1, rng.randrange(0, 20 * DAY), rng.randrange(0, 40 * DAY)])) for i in picks],
    })
    return frame, labels


@pytest.mark.parametrize("seed", range(24))
def test_adversarial_random_histories(seed: int) -> None:
    frame, labels = random_history(seed)
    same_as_core(frame)
    same_as_core(frame, labels)


def test_repeated_transaction_ids() -> None:
    rows = [tx("a", T0), tx("a", T0 + 60_000, amount=99.0)]  # redelivery: ignored
    rows += [tx(f"f{i}", T0 + (2 + i) * 60_000) for i in range(DEDUP_SIZE)]
    rows += [tx("a", T0 + HOUR_MS, amount=7.0)]  # beyond the last 16: applied again
    rows += [tx("b", T0 + 2 * HOUR_MS, card="c2"), tx("b", T0 + 2 * HOUR_MS, card="c3")]
    rows += [tx("c", T0 + 3 * HOUR_MS, card="c2", terminal="T9", fraud=True),
             tx("c", T0 + 4 * HOUR_MS, card="c3", terminal="T9", fraud=False)]
    got = same_as_core(frame_of(*rows))
    a = got[[r["transaction_id"] == "a" for r in rows]]
    assert (a["amount"] == 7.0).all()  # every row of an id gets its id's last vector
    b = got[[r["transaction_id"] == "b" for r in rows]]
    assert (b["card_txn_count_24h"] == 1).all()  # each card folds its own copy in


def test_same_millisecond_rows_follow_the_item_order() -> None:
    got = same_as_core(frame_of(tx("t3", T0), tx("t1", T0), tx("t2", T0),
                                tx("t0", T0 + 1, card="c2")))
    assert got["card_txn_count_1h"].tolist() == [1, 2, 3, 1]  # card: stream order
    assert got["term_txn_count_1h"].tolist() == [3, 1, 2, 4]  # terminal: id order


def test_labels_at_exactly_the_event_time() -> None:
    rows = [tx("c", T0, terminal="T2", card="c2"),
            tx("a", T0 + HOUR_MS, terminal="T1", fraud=True, label_ms=T0 + HOUR_MS),
            tx("d", T0 + HOUR_MS, terminal="T2", card="c3", fraud=True,
               label_ms=T0 + HOUR_MS),
            tx("b", T0 + 2 * HOUR_MS, terminal="T1"),
            tx("e", T0 + 2 * HOUR_MS, terminal="T2", card="c4")]
    got = same_as_core(frame_of(*rows)).set_axis([r["transaction_id"] for r in rows])
    # T1 had no transaction that day before the label: no bucket yet, the label is dropped
    assert got.loc["b", "term_fraud_count_30d"] == 0
    # T2's day bucket exists (c); the label precedes d itself at the same millisecond
    assert got.loc["d", "term_fraud_count_30d"] == 1 == got.loc["e", "term_fraud_count_30d"]


def test_merchants_without_terminal_and_a_one_transaction_card() -> None:
    got = same_as_core(frame_of(
        tx("a", T0, terminal=None, merchant="m1"),
        tx("b", T0 + 1, terminal=float("nan"), merchant="m1"),  # type: ignore[arg-type]
        tx("c", T0 + 2, terminal="", merchant="m1"),
        tx("d", T0 + 3, terminal="m1", merchant="m1"),  # t:m1 is not m:m1
        tx("e", T0 + 4, card="lonely", terminal=None, merchant="m2", device=None)))
    assert got["term_txn_count_1h"].tolist() == [1, 2, 3, 1, 1]
    assert got["card_seconds_since_prev"].iloc[4] == 30 * 86_400.0


def test_missing_unknown_and_early_label_times() -> None:
    rows = [tx("a", T0, fraud=True), tx("b", T0 + DAY, fraud=True),
            tx("c", T0 + 2 * DAY, fraud=True), tx("d", T0 + 3 * DAY)]
    frame = frame_of(*rows)
    frame.loc[0, "label_time"] = pd.NaT  # missing: never resolved
    frame.loc[1, "label_time"] = frame.loc[1, "event_time"] - pd.Timedelta(hours=1)  # early
    got = same_as_core(frame)
    assert got["term_fraud_count_30d"].tolist() == [0, 0, 0, 1]  # c's label: at d's time
    labels = pd.DataFrame({
        "transaction_id": ["a", "zz", "c", "b"], "card_id": ["c1", "c1", "other", "c1"],
        "label": ["fraud"] * 4,
        "label_time": pd.to_datetime([T0 + HOUR_MS, T0, T0 + 2 * DAY + 1, T0 + DAY],
                                     unit="ms", utc=True)})
    got = same_as_core(frame, labels)
    assert got["term_fraud_count_30d"].tolist() == [0, 1, 1, 1]  # a; b at its own day's start


def test_verdict_changes_and_old_transactions() -> None:
    rows = [tx(f"t{i}", T0 + i * 6 * HOUR_MS) for i in range(200)]
    labels = pd.DataFrame({
        "transaction_id": ["t1", "t1", "t1", "t2", "t2", "t3", "t3"],
        "card_id": ["c1"] * 7,
        "label": ["fraud", "genuine", "fraud", "fraud", "fraud", "fraud", "genuine"],
        "label_time": pd.to_datetime([T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY, T0 + DAY,
                                      T0 + 2 * DAY, T0 + 40 * DAY, T0 + 45 * DAY],
                                     unit="ms", utc=True)})
    got = same_as_core(frame_of(*rows), labels)
    assert got["term_fraud_count_30d"].max() == 2  # t1 (re-labeled) and t2 (once); t3 too old


def test_labels_of_transactions_past_the_card_map_cap() -> None:
    n = TXN_MAP_CAP + 40
    rows = [tx(f"t{i:05d}", T0 + i * 10_000) for i in range(n)]
    end = T0 + n * 10_000
    labels = pd.DataFrame({
        "transaction_id": [f"t{i:05d}" for i in (0, 39, 40, 41, n - 1)], "card_id": ["c1"] * 5,
        "label": ["fraud"] * 5,
        "label_time": pd.to_datetime([end + HOUR_MS] * 5, unit="ms", utc=True)})
    frame = frame_of(*rows, tx("after", end + 2 * HOUR_MS))
    got = same_as_core(frame, labels)
    assert got["term_fraud_count_30d"].iloc[-1] == 3  # t0..t39 were evicted from the map


def test_inputs_it_does_not_cover_fall_back_to_the_core() -> None:
    out_of_order = frame_of(tx("a", T0 + HOUR_MS), tx("b", T0), tx("c", T0 + 2 * HOUR_MS))
    same_as_core(out_of_order, fallback=True)
    crowded = [tx(f"t{i}", T0 + i * 1000) for i in range(TXN_MAP_CAP + 5)]
    crowded.append(tx("t0", T0 + (TXN_MAP_CAP + 6) * 1000))  # a repeated id, beyond 16
    same_as_core(frame_of(*crowded), fallback=True)
