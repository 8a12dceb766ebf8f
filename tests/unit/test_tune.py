"""The opt-in hyperparameter search (models.tune): time-ordered, seeded, blind to the test."""

from __future__ import annotations

import pandas as pd
import pytest

from models.train import TrainConfig, split_windows
from models.tune import SEARCH_SPACE, tune, tune_params
from replay.backtest import feature_frame
from replay.config import SimulationConfig
from replay.simulator import simulate
from replay.validation import normalize

CONFIG = TrainConfig(unknown_labels="genuine", train_days=21, num_boost_round=40,
                     early_stopping_rounds=10)


@pytest.fixture(scope="module")
def featured() -> tuple[pd.DataFrame, tuple[str, ...]]:
    config = SimulationConfig.classic_world(days=45, n_customers=500, n_terminals=400, seed=4)
    return feature_frame(normalize(simulate(config)))


def test_search_is_seeded_and_stays_in_its_space(
        featured: tuple[pd.DataFrame, tuple[str, ...]]) -> None:
    frame, names = featured
    first = tune(frame, names, CONFIG, 3, nthread=1, seed=3)
    again = tune(frame, names, CONFIG, 3, nthread=1, seed=3)
    assert first.best == again.best
    assert len(first.trials) == 3
    for name, (low, high, _) in SEARCH_SPACE.items():
        assert low <= getattr(first.config, name) <= high, name
    assert first.best["valid_ap"] == first.trials["valid_ap"].max()
    params = tune_params(first)
    assert params["tune.trials"] == 3 and "tune.best.max_depth" in params


def test_search_never_reads_the_test_window(
        featured: tuple[pd.DataFrame, tuple[str, ...]]) -> None:
    """Flipping every label of the test window (and the delay) leaves the search unchanged."""
    frame, names = featured
    w = split_windows(frame["event_time"], CONFIG)
    after = frame["event_time"] >= w["train_end"]
    flipped = frame.assign(is_fraud=frame["is_fraud"].where(~after, ~frame["is_fraud"]))
    assert (flipped["is_fraud"] != frame["is_fraud"]).sum() == int(after.sum()) > 0
    plain = tune(frame, names, CONFIG, 2, nthread=1, seed=5)
    blind = tune(flipped, names, CONFIG, 2, nthread=1, seed=5)
    assert plain.best == blind.best


def test_train_command_takes_tune() -> None:
    from infra.cli import build_parser

    args = build_parser().parse_args(["train", "--history", "h.parquet", "--tune", "5"])
    assert args.tune == 5
    assert build_parser().parse_args(["train", "--history", "h.parquet"]).tune == 0
