"""The transaction simulator: deterministic, valid, labelled, seasonal, with real scenarios."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from infra.errors import ConfigurationError, InvalidInput
from replay.classic import ClassicSpec
from replay.config import SCENARIOS
from replay.population import FOREIGN_COUNTRIES
from replay.simulator import (
    SimulationConfig,
    label_records,
    read_history,
    simulate,
    to_transaction_records,
    write_history,
)
from streams.schema import Transaction, validate_transaction

SMALL = SimulationConfig(n_customers=300, n_terminals=200, n_ecom_merchants=80, days=14, seed=3)
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return simulate(SMALL)


def test_same_seed_same_frame_other_seed_other_frame(df: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(df, simulate(SMALL))
    other = simulate(SimulationConfig(**{**SMALL.__dict__, "seed": 4}))
    assert len(other) != len(df) or not np.array_equal(other["amount"], df["amount"])


def test_every_row_is_a_valid_transaction(df: pd.DataFrame) -> None:
    records = to_transaction_records(df)
    assert len(records) == len(df)
    for record in records:
        assert set(record) == set(Transaction.model_fields)
        assert record["event_time"].endswith("Z")
        validate_transaction(record)


def test_sorted_unique_utc(df: pd.DataFrame) -> None:
    assert df["event_time"].is_monotonic_increasing
    assert df["transaction_id"].is_unique
    assert str(df["event_time"].dt.tz) == "UTC" and str(df["label_time"].dt.tz) == "UTC"
    start = pd.Timestamp(SMALL.start, tz="UTC")
    assert df["event_time"].min() >= start
    assert df["event_time"].max() < start + SMALL.days * DAY


def test_all_scenarios_labelled_and_fraud_rate_in_range(df: pd.DataFrame) -> None:
    assert set(df["scenario"]) == {"none", *SCENARIOS}
    assert (df["is_fraud"] == (df["scenario"] != "none")).all()
    assert 0.005 <= df["is_fraud"].mean() <= 0.02
    fraud, genuine = df[df["is_fraud"]], df[~df["is_fraud"]]
    assert set(fraud["label_source"]) == {"chargeback", "analyst"}
    assert set(genuine["label_source"]) == {"matured"}
    assert (genuine["label_time"] - genuine["event_time"] == 30 * DAY).all()
    assert (fraud["fraud_incident"] >= 0).all() and (genuine["fraud_incident"] == -1).all()


def test_label_delays(df: pd.DataFrame) -> None:
    assert (df["label_time"] >= df["event_time"]).all()
    fraud = df[df["is_fraud"]]
    groups = fraud.groupby(["fraud_incident", "card_id"])
    delay = groups["label_time"].first() - groups["event_time"].max()
    assert (groups["label_time"].nunique() == 1).all()  # one discovery per card and incident
    source = groups["label_source"].first()
    analyst, chargeback = delay[source == "analyst"], delay[source == "chargeback"]
    assert len(analyst) and len(chargeback)
    assert analyst.between(pd.Timedelta(minutes=30), pd.Timedelta(hours=12)).all()
    assert chargeback.between(2 * DAY, 45 * DAY).all()


def test_daily_and_weekly_seasonality(df: pd.DataFrame) -> None:
    genuine = df[~df["is_fraud"]]
    per_hour = genuine["event_time"].dt.hour.value_counts().reindex(range(24), fill_value=0)
    assert per_hour[1:5].mean() < 0.25 * per_hour[9:21].mean()
    per_weekday = genuine["event_time"].dt.dayofweek.value_counts()  # 2 weeks: 2 of each
    assert per_weekday[5] > per_weekday[6]  # busy Saturday, quiet Sunday


def test_card_testing_small_probes_then_large(df: pd.DataFrame) -> None:
    rows = df[df["scenario"] == "card_testing"]
    for _, burst in rows.groupby("fraud_incident"):
        amounts = burst.sort_values("event_time")["amount"].to_numpy()
        small = amounts <= 5.0
        assert small.sum() >= 3 and (~small).sum() >= 2
        assert (amounts[~small] >= 150).all()
        assert np.flatnonzero(small).max() < np.flatnonzero(~small).min()
        assert burst["channel"].isin(["ecom", "moto"]).all()
        assert burst["card_id"].nunique() == 1


def test_account_takeover_new_device_foreign_country(df: pd.DataFrame) -> None:
    rows = df[df["scenario"] == "account_takeover"]
    genuine = df[~df["is_fraud"]]
    for card, takeover in rows.groupby("card_id"):
        own = set(genuine.loc[genuine["card_id"] == card, "device_id"].dropna())
        assert not own & set(takeover["device_id"])
    assert (rows["channel"] == "ecom").all()
    assert rows["country"].isin(FOREIGN_COUNTRIES).all()
    assert (rows["amount"] >= 150).all()


def test_compromised_terminal_then_misuse_elsewhere(df: pd.DataFrame) -> None:
    rows = df[df["scenario"] == "compromised_terminal"]
    assert rows["channel"].isin(["pos", "atm"]).all()
    first_terminal = rows.groupby("fraud_incident")["terminal_id"].transform("first")
    assert (rows["terminal_id"] != first_terminal).any()  # some cards were misused elsewhere
    for _, incident in rows.groupby("fraud_incident"):
        terminal = incident["terminal_id"].iloc[0]  # the first fraud is a skim at the terminal
        at_terminal = incident[incident["terminal_id"] == terminal]
        assert len(at_terminal) >= 1
        elsewhere = incident[incident["terminal_id"] != terminal]
        for card, misuse in elsewhere.groupby("card_id"):
            first_skim = at_terminal.loc[at_terminal["card_id"] == card, "event_time"].min()
            assert (misuse["event_time"] >= first_skim + DAY).all()


def test_scenario_start_day_and_independent_streams(df: pd.DataFrame) -> None:
    late = simulate(SMALL.with_scenario("account_takeover", start_day=9))
    ato = late[late["scenario"] == "account_takeover"]
    assert len(ato) and ato["event_time"].min() >= pd.Timestamp(SMALL.start, tz="UTC") + 9 * DAY
    keys = ["card_id", "event_time", "amount", "scenario"]
    before = df.loc[df["scenario"] != "account_takeover", keys].reset_index(drop=True)
    after = late.loc[late["scenario"] != "account_takeover", keys].reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_zero_share_disables_a_scenario() -> None:
    out = simulate(SMALL.with_scenario("card_testing", share=0.0))
    assert "card_testing" not in set(out["scenario"])


@pytest.mark.parametrize(
    "changes",
    [{"days": 0}, {"analyst_share": 1.5}, {"chargeback_days": (10.0, 2.0)}, {"id_prefix": "a b"}],
)
def test_invalid_config(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SimulationConfig(**changes)  # type: ignore[arg-type]


def test_label_records(df: pd.DataFrame) -> None:
    labels = list(label_records(df))
    assert len(labels) == len(df)
    assert [r["label_time"] for r in labels] == sorted(r["label_time"] for r in labels)
    fraud = list(label_records(df, include_genuine=False))
    assert len(fraud) == int(df["is_fraud"].sum())
    assert {r["label"] for r in fraud} == {"fraud"}
    assert set(fraud[0]) == {"transaction_id", "card_id", "label", "source", "label_time"}
    assert fraud[0]["label_time"].endswith("Z")


def test_parquet_round_trip(df: pd.DataFrame, tmp_path: Path) -> None:
    path = write_history(df, tmp_path / "h" / "history.parquet")
    field = pq.read_schema(path).field("event_time")
    assert str(field.type) == "timestamp[ms, tz=UTC]"
    pd.testing.assert_frame_equal(read_history(path), df)


def test_read_history_maps_columns_and_refuses_naive_times(tmp_path: Path) -> None:
    foreign = pd.DataFrame(
        {
            "TX_ID": ["a"],
            "TX_DATETIME": [pd.Timestamp("2025-01-01")],
            "card_id": ["c"],
            "merchant_id": ["m"],
            "amount": [1.0],
            "country": ["FR"],
            "mcc": [5411],
        }
    )
    path = tmp_path / "foreign.parquet"
    foreign.to_parquet(path)
    rename = {"TX_ID": "transaction_id", "TX_DATETIME": "event_time"}
    with pytest.raises(InvalidInput, match="time zone"):
        read_history(path, rename=rename, require_labels=False)
    foreign["TX_DATETIME"] = foreign["TX_DATETIME"].dt.tz_localize("UTC")
    foreign.to_parquet(path)
    out = read_history(path, rename=rename, require_labels=False)
    assert out.loc[0, "mcc"] == "5411"
    with pytest.raises(InvalidInput, match="lacks columns"):
        read_history(path, rename=rename)


def test_classic_world_fixed_delay_and_scenarios() -> None:
    config = replace(SimulationConfig.classic_world(days=40, n_customers=400, n_terminals=300,
                                                    seed=5),
                     classic=ClassicSpec(terminal_rate=0.002))  # a few terminals at this size
    frame = simulate(config)
    fraud = frame[frame["is_fraud"]]
    assert set(fraud["scenario"]) == {"classic_amount", "classic_terminal", "classic_card"}
    assert ((fraud["label_time"] - fraud["event_time"]) == pd.Timedelta(days=7)).all()
    genuine = frame[~frame["is_fraud"]]
    assert (genuine["label_time"] - genuine["event_time"] == 30 * DAY).all()
    # a compromised terminal: every transaction through it in its window is fraud
    term = fraud[fraud["scenario"] == "classic_terminal"]
    tid = term["terminal_id"].iloc[0]
    first = term.loc[term["terminal_id"] == tid, "event_time"].min()
    through = frame[(frame["terminal_id"] == tid) & (frame["event_time"] >= first)
                    & (frame["event_time"] < first + 20 * DAY)]
    assert through["is_fraud"].all()
    # compromised cards spend bigger amounts
    card = fraud[fraud["scenario"] == "classic_card"]
    assert card["amount"].median() > 3 * genuine["amount"].median()
    assert simulate(config).equals(frame)  # deterministic


def test_classic_world_leaves_the_default_world_unchanged() -> None:
    plain = simulate(SMALL)
    assert set(plain["scenario"]) <= {"none", *SCENARIOS}
    with pytest.raises(ConfigurationError):
        SimulationConfig(label_delay_days=-1.0)
