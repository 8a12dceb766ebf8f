"""Backtest metrics and windows: policy parity with the stream, known-card removal, PR
curves, prequential folds, and determinism of a whole backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infra.errors import ConfigurationError
from infra.settings import Settings
from models.metrics import average_precision
from replay.backtest import BacktestConfig, feature_frame, run_backtest
from replay.candidates import STREAM_POLICY, PolicySpec, parse_policy
from replay.evaluation import card_precision_unknown, decide, known_compromised, pr_curve
from replay.prequential import fold_ends, run_prequential
from replay.validation import normalize
from scoring.policy import Policy
from tests.unit.test_replay_helpers import history


def test_decide_is_the_stream_policy() -> None:
    rng = np.random.default_rng(3)
    scores = np.r_[rng.random(2000).astype(np.float32), np.float32(0.5), np.float32(0.9)]
    policy = Policy(review=0.5, decline=0.9)
    assert decide(policy, scores).tolist() == policy.decide_many(scores)


def test_known_compromised_cards_are_removed_from_later_days() -> None:
    cards = np.array(["a", "a", "b", "c"])
    fraud = np.array([1, 1, 1, 0])
    label_time = pd.Series(pd.to_datetime(["2025-01-01 12:00", "2025-01-01 12:00",
                                           "2025-01-05 00:00", "2025-01-05 00:00"], utc=True))
    known = known_compromised(cards, fraud, label_time)
    assert set(known) == {"a", "b"}
    day = pd.Series(pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-02",
                                    "2025-01-02"], utc=True))
    # day 1: a is not known yet (reported at noon) -> a counts; day 2: a is dropped
    value = card_precision_unknown(np.array(fraud), np.array([0.9, 0.9, 0.8, 0.1]), cards,
                                   day, known, k=1)
    assert value == pytest.approx((1.0 + 1.0) / 2)


def test_pr_curve_matches_average_precision() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.1).astype(int)
    s = rng.random(500) + y * 0.5
    recall, precision = pr_curve(y, s, points=10_000)
    step = np.diff(np.r_[0.0, recall])
    assert float(np.sum(step * precision)) == pytest.approx(average_precision(y, s))


def test_parse_policy() -> None:
    assert parse_policy("stream") is STREAM_POLICY
    assert parse_policy("strict:review=0.3,decline=0.8") == PolicySpec("strict", 0.3, 0.8)
    assert parse_policy("budget=0.005") == PolicySpec("budget=0.005", budget=0.005)
    for bad in ("review=x", "decline=0.9", "budget=0.1,review=0.2", "speed=3"):
        with pytest.raises(ConfigurationError):
            parse_policy(bad)


def test_fold_ends_roll_backwards_and_need_a_full_train_window() -> None:
    times = pd.Series(pd.date_range("2025-01-01", "2025-03-01 12:00", freq="h", tz="UTC"))
    config = BacktestConfig().with_windows(train_days=14, delay_days=7, test_days=7)
    ends = fold_ends(times, config, step_days=7, n_folds=None)
    assert ends[-1] == pd.Timestamp("2025-03-02", tz="UTC")
    assert all(b - a == pd.Timedelta(days=7) for a, b in zip(ends, ends[1:], strict=False))
    assert ends[0] - pd.Timedelta(days=28) >= pd.Timestamp("2025-01-01", tz="UTC")
    assert fold_ends(times, config, 7, n_folds=2) == ends[-2:]
    with pytest.raises(ConfigurationError, match="too short"):
        fold_ends(times, config.with_windows(train_days=90), 7, None)


@pytest.fixture(scope="module")
def featured() -> tuple[pd.DataFrame, tuple[str, ...]]:
    return feature_frame(normalize(history()))


def test_backtest_is_deterministic_and_respects_windows(
        featured: tuple[pd.DataFrame, tuple[str, ...]]) -> None:
    frame, names = featured
    settings = Settings(xgb_nthread=1)
    config = BacktestConfig().with_windows(train_days=14)
    policies = [STREAM_POLICY, parse_policy("budget=0.01")]
    a = run_backtest(frame, names, [], settings, config, policies=policies, train=True)
    b = run_backtest(frame, names, [], settings, config, policies=policies, train=True)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    test_start = pd.Timestamp(a.windows["test_start"])
    assert (a.predictions["event_time"] >= test_start).all()
    assert a.windows["train_end"] < a.windows["test_start"]  # the delay period
    assert set(a.daily["candidate"]) == {"trained / stream", "trained / budget=0.01",
                                         "baseline_lr / stream", "baseline_lr / budget=0.01"}
    assert list(a.curves) == ["trained", "baseline_lr"]


def test_prequential_summary_is_mean_and_spread_of_folds(
        featured: tuple[pd.DataFrame, tuple[str, ...]]) -> None:
    frame, names = featured
    config = BacktestConfig().with_windows(train_days=10, delay_days=3, test_days=5)
    calls: list[tuple[int, int]] = []
    result = run_prequential(frame, names, [], Settings(xgb_nthread=1), config,
                             progress=lambda done, total: calls.append((done, total)))
    trained = result.folds[result.folds["candidate"] == "trained"]
    assert trained["fold"].tolist() == list(range(len(trained)))
    assert len(trained) >= 2
    n = len(trained)  # the progress callback: announced, then once per fold
    assert calls == [(i, n) for i in range(n + 1)]
    assert set(result.folds["candidate"]) == {"trained", "baseline_lr"}  # same folds
    summary = result.summary[result.summary["candidate"] == "trained"]
    auc = summary.set_index("metric").loc["roc_auc"]
    assert auc["mean"] == pytest.approx(trained["roc_auc"].mean())
    assert auc["std"] == pytest.approx(trained["roc_auc"].std(ddof=1))
    assert auc["folds"] == len(trained)


def test_a_registered_model_trained_on_the_test_window_is_flagged() -> None:
    from replay.candidates import Model

    test_start = pd.Timestamp("2025-03-01", tz="UTC")
    test_end = test_start + pd.Timedelta(days=7)
    inside = Model("champion(v1)", "1", None, ("amount",),
                   train_window=("2025-02-01T00:00:00+00:00", "2025-03-03T00:00:00+00:00"))
    before = Model("champion(v1)", "1", None, ("amount",),
                   train_window=("2025-01-01T00:00:00+00:00", "2025-02-22T00:00:00+00:00"))
    assert inside.overlaps(test_start, test_end)
    assert not before.overlaps(test_start, test_end)
    assert not Model("x", "1", None, ("amount",)).overlaps(test_start, test_end)
