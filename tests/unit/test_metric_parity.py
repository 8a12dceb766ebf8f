"""One definition of each metric: ``train``, ``replay backtest`` and ``--prequential`` report
the same numbers for the same scores (issue 14: card precision@k read 0.526, 0.119 and
0.256 in three places for the same scores before)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from infra.settings import Settings
from models.baseline import BASELINE_LABEL
from models.train import train_model
from replay.backtest import BacktestConfig, feature_frame, run_backtest
from replay.config import SimulationConfig
from replay.prequential import run_prequential
from replay.simulator import simulate
from replay.validation import normalize

KEYS = ("roc_auc", "average_precision", "card_precision_at_k", "card_precision_at_k_all",
        "recall_at_budget", "amount_recall_at_budget")


@pytest.fixture(scope="module")
def featured() -> tuple[pd.DataFrame, tuple[str, ...]]:
    config = SimulationConfig.classic_world(days=45, n_customers=500, n_terminals=400, seed=4)
    return feature_frame(normalize(simulate(config)))


def test_train_backtest_and_prequential_report_identical_metrics(
        featured: tuple[pd.DataFrame, tuple[str, ...]]) -> None:
    frame, names = featured
    settings = Settings(xgb_nthread=1)
    config = BacktestConfig().with_windows(train_days=21, delay_days=7, test_days=7)
    backtest = run_backtest(frame, names, [], settings, config, train=True)
    rows = backtest.metrics.set_index("candidate")
    trained = train_model(frame, names, config.train, nthread=1, seed=settings.seed)
    preq = run_prequential(frame, names, [], settings, config, n_folds=1)
    folds = preq.folds.set_index("candidate")
    assert trained.metrics["n_fraud"] > 0
    for key in KEYS:
        for candidate, from_train in (("trained", trained.metrics),
                                      (BASELINE_LABEL, trained.baseline_metrics)):
            values = [from_train[key], rows.loc[candidate, key], folds.loc[candidate, key]]
            assert not math.isnan(values[0]), key
            assert values[0] == values[1] == values[2], (candidate, key, values)


def test_card_precision_removes_known_and_detected_cards(
        featured: tuple[pd.DataFrame, tuple[str, ...]]) -> None:
    """On a world of compromised cards the protocol's value differs from the raw one: the
    raw one counts the same detected card again every day."""
    frame, names = featured
    config = BacktestConfig().with_windows(train_days=21, delay_days=7, test_days=7)
    trained = train_model(frame, names, config.train, nthread=1, seed=7)
    assert trained.metrics["card_precision_at_k"] != trained.metrics["card_precision_at_k_all"]
