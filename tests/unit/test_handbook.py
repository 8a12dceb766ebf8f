"""The handbook-replica world (replay.handbook): the published generator's statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replay.handbook import TEST_START, HandbookConfig, World, generate, history

CONFIG = HandbookConfig(n_customers=400, n_terminals=1600, days=70, seed=3)


@pytest.fixture(scope="module")
def world() -> World:
    return generate(CONFIG)


def test_same_config_same_world_other_seed_other_world(world: World) -> None:
    again = generate(CONFIG).transactions
    pd.testing.assert_frame_equal(world.transactions, again)
    other = generate(HandbookConfig(n_customers=400, n_terminals=1600, days=70, seed=4))
    assert len(other.transactions) != len(world.transactions)


def test_profiles_follow_the_published_distributions(world: World) -> None:
    c = world.customers
    assert c["mean_amount"].between(5, 100).all()
    assert np.allclose(c["std_amount"], c["mean_amount"] / 2)
    assert c["mean_nb_tx_per_day"].between(0, 4).all()
    assert c[["x_customer_id", "y_customer_id"]].stack().between(0, 100).all()


def test_transactions_per_day_and_times_within_the_day(world: World) -> None:
    tx = world.transactions
    seconds = tx["TX_TIME_SECONDS"] - tx["TX_TIME_DAYS"] * 86_400
    assert seconds.between(1, 86_399).all()
    assert tx["TX_TIME_SECONDS"].is_monotonic_increasing
    # Poisson(U(0, 4)) a day, ~3.1 % of times outside the day dropped: 2 x 0.969 a day
    per_day = len(tx) / (CONFIG.n_customers * CONFIG.days)
    expected = world.customers["mean_nb_tx_per_day"].mean() * 0.969
    assert per_day == pytest.approx(expected, rel=0.03)
    assert (tx["TX_AMOUNT"] >= 0).all()


def test_every_terminal_is_within_the_radius_of_its_customer(world: World) -> None:
    tx = world.transactions
    c = world.customers.set_index("CUSTOMER_ID").loc[tx["CUSTOMER_ID"]]
    t = world.terminals.set_index("TERMINAL_ID").loc[tx["TERMINAL_ID"]]
    dist = np.hypot(c["x_customer_id"].to_numpy() - t["x_terminal_id"].to_numpy(),
                    c["y_customer_id"].to_numpy() - t["y_terminal_id"].to_numpy())
    assert (dist < CONFIG.radius).all()
    # and the customer's nearby terminals are all used, not a subset
    busiest = tx["CUSTOMER_ID"].value_counts().index[0]
    xy = world.customers.loc[busiest, ["x_customer_id", "y_customer_id"]].to_numpy(float)
    near = np.hypot(*(world.terminals[["x_terminal_id", "y_terminal_id"]].to_numpy() - xy).T)
    used = set(tx.loc[tx["CUSTOMER_ID"] == busiest, "TERMINAL_ID"])
    assert used <= set(np.flatnonzero(near < CONFIG.radius))


def test_fraud_rate_and_scenario_shares(world: World) -> None:
    tx = world.transactions
    fraud = tx["TX_FRAUD"] == 1
    # 2 of 1,600 terminals a day (2 of 10,000 at full size, 0.84 % fraud there)
    assert 0.01 < fraud.mean() < 0.1
    shares = tx.loc[fraud, "TX_FRAUD_SCENARIO"].value_counts(normalize=True)
    assert set(shares.index) == {1, 2, 3}
    # published at full size: 62 % / 32 % / 7 %; here doses are per day, not per capita,
    # so the 400 customers' 3 compromised cards a day weigh more
    assert shares[1] < min(shares[2], shares[3])
    # scenario 2: about 2 x 28 / 1,600 of the terminals are compromised at a time
    s2 = (tx["TX_FRAUD_SCENARIO"] == 2).mean()
    assert 0.5 * 56 / 1600 < s2 < 1.2 * 56 / 1600
    assert ((tx["TX_FRAUD_SCENARIO"] > 0) == fraud).all()


def test_scenario_1_is_every_amount_above_220(world: World) -> None:
    tx = world.transactions
    high = tx["TX_AMOUNT"] > 220
    assert tx.loc[high, "TX_FRAUD"].eq(1).all()
    assert (tx.loc[tx["TX_FRAUD_SCENARIO"] == 1, "TX_AMOUNT"] > 220).all()


def test_scenario_2_takes_every_transaction_of_a_terminal_for_28_days(world: World) -> None:
    tx = world.transactions
    s2 = tx[tx["TX_FRAUD_SCENARIO"] == 2]
    spans = s2.groupby("TERMINAL_ID")["TX_TIME_DAYS"].agg(["min", "max", "size"])
    assert (spans["size"] > 1).mean() > 0.5
    for terminal, (first, last, _) in spans.head(40).iterrows():
        all_rows = tx[(tx["TERMINAL_ID"] == terminal) & tx["TX_TIME_DAYS"].between(first, last)]
        assert all_rows["TX_FRAUD"].eq(1).all(), terminal
    # one incident lasts at most 28 days: a longer span needs a second draw of the terminal
    assert (spans["max"] - spans["min"] < CONFIG.terminal_days).mean() > 0.8


def test_scenario_3_is_a_third_of_a_card_at_five_times_its_amounts(world: World) -> None:
    tx = world.transactions
    s3 = tx[tx["TX_FRAUD_SCENARIO"] == 3]
    mean = world.customers.set_index("CUSTOMER_ID")["mean_amount"]
    ratio = (s3["TX_AMOUNT"] / s3["CUSTOMER_ID"].map(mean)).median()
    assert 4.0 < ratio < 6.5  # amount x 5 of an amount around the card's mean
    cards = s3["CUSTOMER_ID"].unique()
    # 3 cards a day over the days but the last (a card drawn twice, or with < 3
    # transactions in its 14 days, adds no new defrauded card)
    assert 1.5 * (CONFIG.days - 1) < len(cards) <= 3 * (CONFIG.days - 1)
    spans = s3.groupby("CUSTOMER_ID")["TX_TIME_DAYS"].agg(["min", "max"])
    in_spans = tx.merge(spans, left_on="CUSTOMER_ID", right_index=True)
    in_spans = in_spans[in_spans["TX_TIME_DAYS"].between(in_spans["min"], in_spans["max"])]
    share = (in_spans["TX_FRAUD_SCENARIO"] == 3).mean()
    assert 0.2 < share < 0.5  # 1/3 of the compromised cards' transactions


def test_history_is_what_replay_reads_with_labels_seven_days_later() -> None:
    config = HandbookConfig(n_customers=200, n_terminals=800, days=40, seed=1)
    h = history(config)
    tx = generate(config).transactions
    assert len(h) == len(tx)
    assert (h["label_time"] - h["event_time"] == pd.Timedelta(days=7)).all()
    assert h["is_fraud"].sum() == tx["TX_FRAUD"].sum()
    assert (h["merchant_id"] == h["terminal_id"]).all()
    assert set(h["scenario"]) <= {"none", "high_amount", "compromised_terminal",
                                  "compromised_card"}
    assert h["event_time"].min() == pd.Timestamp("2018-04-01", tz="UTC") + pd.Timedelta(
        seconds=int(tx["TX_TIME_SECONDS"].iloc[0]))
    assert TEST_START == pd.Timestamp("2018-08-08", tz="UTC")


def test_the_documented_mapping_file_is_the_mapping_used() -> None:
    from pathlib import Path

    from replay.handbook import MAPPING
    from replay.mapping import load_mapping

    path = Path(__file__).parents[2] / "docs" / "handbook-mapping.yaml"
    assert load_mapping(path) == MAPPING


def test_delay_eval_features_the_replica_through_the_mapping() -> None:
    from features.core import FEATURE_NAMES
    from replay.delay_eval import EvalConfig, featured

    frame, names = featured(EvalConfig(world="handbook", days=30, customers=150,
                                       terminals=300, seed=2))
    assert names == FEATURE_NAMES
    assert len(frame) == len(generate(HandbookConfig(n_customers=150, n_terminals=300,
                                                     days=30, seed=2)).transactions)
    fraud = frame[frame["is_fraud"]]
    # a 7-day delay: the delayed-window fraud counts see a terminal's frauds, the windows
    # ending at T never hold a fraud reported by T
    assert (frame["term_fraud_count_7d"] == 0).all()
    assert (fraud["term_fraud_count_7d_delayed"] > 0).any()
