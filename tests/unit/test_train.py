"""Time-aware training: windows, point-in-time labels, determinism, quality, profile."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from infra.errors import ModelError
from models.train import TrainConfig, reference_profile, split_windows, train_model

FEATURES = ["f0", "f1", "f2", "f3"]
CONFIG = TrainConfig(train_days=40.0, num_boost_round=60, early_stopping_rounds=10,
                     labels_known_at="train_end", scale_pos_weight="auto",
                     subsample=0.8, colsample_bytree=0.8)  # subsampling follows the seed


def synthetic_frame(n: int = 5000, days: int = 60, seed: int = 0) -> pd.DataFrame:
    """Separable-ish fraud on f0/f1, noise on f2/f3; labels known 1-20 days after the event."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    event_time = start + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    fraud = rng.random(n) < 0.05
    return pd.DataFrame(
        {
            "f0": rng.normal(0, 1, n) + 2.0 * fraud,
            "f1": rng.normal(0, 1, n) - 1.5 * fraud,
            "f2": rng.normal(0, 1, n),
            "f3": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 1, n)),  # some missing
            "is_fraud": fraud,
            "event_time": event_time,
            "label_time": event_time + pd.to_timedelta(rng.uniform(1, 20, n), unit="D"),
            "amount": rng.gamma(2.0, 30.0, n),
            "card_id": rng.integers(0, 400, n).astype(str),
        }
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame()


def test_windows_are_day_aligned_with_the_delay_gap(frame: pd.DataFrame) -> None:
    w = split_windows(frame["event_time"], TrainConfig(train_days=40.0))
    assert w["test_end"] == pd.Timestamp("2024-03-01", tz="UTC")  # midnight after last event
    assert w["test_end"] - w["test_start"] == pd.Timedelta(days=7)
    assert w["test_start"] - w["train_end"] == pd.Timedelta(days=7)
    assert w["train_end"] - w["valid_start"] == pd.Timedelta(days=7)
    assert w["train_end"] - w["train_start"] == pd.Timedelta(days=40)
    naive = split_windows(frame["event_time"], TrainConfig(test_end=pd.Timestamp("2024-02-20")))
    assert naive["test_end"] == pd.Timestamp("2024-02-20", tz="UTC")


def test_only_labels_known_at_train_end_are_used(frame: pd.DataFrame) -> None:
    result = train_model(frame, FEATURES, CONFIG)
    w = {k: pd.Timestamp(v) for k, v in result.windows.items()}
    in_train = (frame["event_time"] >= w["train_start"]) & (frame["event_time"] < w["train_end"])
    known = in_train & (frame["label_time"] <= w["train_end"])
    assert result.counts["fit"] + result.counts["valid"] == known.sum()
    assert result.counts["train_unlabeled_excluded"] == (in_train & ~known).sum() > 0
    in_test = (frame["event_time"] >= w["test_start"]) & (frame["event_time"] < w["test_end"])
    assert result.counts["test"] == in_test.sum()

    # Rows with unknown labels and rows of the delay period cannot influence the model:
    # scrambling them (features and labels) gives the very same booster.
    in_gap = (frame["event_time"] >= w["train_end"]) & (frame["event_time"] < w["test_start"])
    unused = ((in_train & ~known) | in_gap).to_numpy()
    scrambled = frame.copy()
    scrambled.loc[unused, "is_fraud"] = ~scrambled.loc[unused, "is_fraud"]
    scrambled.loc[unused, "f0"] = 100.0
    again = train_model(scrambled, FEATURES, CONFIG)
    assert again.booster.save_raw() == result.booster.save_raw()


def test_labels_known_at_test_start_uses_more_rows(frame: pd.DataFrame) -> None:
    strict = train_model(frame, FEATURES, CONFIG)
    later = train_model(
        frame, FEATURES, TrainConfig(**{**CONFIG.__dict__, "labels_known_at": "test_start"})
    )
    assert (
        later.counts["fit"] + later.counts["valid"] > strict.counts["fit"] + strict.counts["valid"]
    )


def test_unknown_labels_as_genuine_uses_only_what_was_reported(frame: pd.DataFrame) -> None:
    # Genuine labels mature 30 days late (as in the replay simulator): the strict rule
    # leaves no genuine row to learn from and says so; "as of cut-off" labels still train.
    matured = frame.assign(
        label_time=frame["label_time"].where(
            frame["is_fraud"], frame["event_time"] + pd.Timedelta(days=30)
        )
    )
    with pytest.raises(ModelError, match="unknown_labels='genuine'"):
        train_model(matured, FEATURES, TrainConfig(train_days=20.0,
                                                   labels_known_at="train_end"))
    config = TrainConfig(train_days=20.0, unknown_labels="genuine", num_boost_round=60,
                         labels_known_at="train_end")
    result = train_model(matured, FEATURES, config)
    assert result.counts["train_unlabeled_excluded"] == 0
    assert result.counts["train_fraud_reported_late"] > 0
    assert result.metrics["roc_auc"] > 0.8
    # A fraud reported after the cut-off was invisible at training time: flipping it changes
    # nothing, so no label from the future leaks into the model.
    w = {k: pd.Timestamp(v) for k, v in result.windows.items()}
    late = (matured["event_time"] < w["train_end"]) & (matured["label_time"] > w["train_end"])
    flipped = matured.assign(is_fraud=matured["is_fraud"] & ~late)
    assert train_model(flipped, FEATURES, config).booster.save_raw() == result.booster.save_raw()


def test_beats_random_and_early_stops(frame: pd.DataFrame) -> None:
    result = train_model(frame, FEATURES, TrainConfig(train_days=40.0,
                                                      scale_pos_weight="auto"))
    assert result.metrics["roc_auc"] > 0.8
    assert result.metrics["average_precision"] > 0.3  # base rate is 0.05
    assert result.params["early_stopping"] is True
    assert result.booster.num_boosted_rounds() == result.best_iteration + 1 < 300
    assert result.params["scale_pos_weight"] == pytest.approx(
        (result.counts["fit"] - result.counts["fit_fraud"]) / result.counts["fit_fraud"]
    )


def test_deterministic_with_seed_and_single_thread(frame: pd.DataFrame) -> None:
    a = train_model(frame, FEATURES, CONFIG, nthread=1, seed=3)
    b = train_model(frame, FEATURES, CONFIG, nthread=1, seed=3)
    c = train_model(frame, FEATURES, CONFIG, nthread=1, seed=4)
    assert a.booster.save_raw() == b.booster.save_raw()
    assert a.metrics == b.metrics and a.reference == b.reference
    assert c.booster.save_raw() != a.booster.save_raw()  # subsampling follows the seed
    learner = json.loads(a.booster.save_config())["learner"]
    assert learner["generic_param"]["nthread"] == "1"
    assert a.params["nthread"] == 1 and a.params["tree_method"] == "hist"


def test_result_is_json_ready(frame: pd.DataFrame) -> None:
    result = train_model(frame, FEATURES, CONFIG)
    assert result.feature_names == tuple(FEATURES)
    assert list(result.booster.feature_names or []) == FEATURES
    json.dumps(result.params)
    json.dumps(result.reference, allow_nan=False)
    for value in result.windows.values():
        assert pd.Timestamp(value).tzinfo is not None


def test_errors_are_model_errors(frame: pd.DataFrame) -> None:
    with pytest.raises(ModelError, match="lacks columns"):
        train_model(frame.drop(columns=["label_time"]), FEATURES, CONFIG)
    with pytest.raises(ModelError, match="cannot train"):
        train_model(frame.assign(is_fraud=False), FEATURES, CONFIG)


def test_reference_profile_bins_and_sample() -> None:
    frame = pd.DataFrame(
        {"x": np.arange(1000.0), "const": 1.0, "gappy": [np.nan, np.inf, *range(998)]}
    )
    scores = np.linspace(0.0, 1.0, 1000)
    profile = reference_profile(frame, ["x", "const", "gappy"], scores, sample_size=50, seed=1)
    json.dumps(profile, allow_nan=False)
    x = profile["features"]["x"]
    assert len(x["edges"]) == 11 and x["edges"][0] == 0.0 and x["edges"][-1] == 999.0
    assert sum(x["fractions"]) == pytest.approx(1.0)
    assert max(x["fractions"]) - min(x["fractions"]) < 0.01  # quantile bins: equal mass
    assert len(x["sample"]) == 50
    assert profile["features"]["const"]["fractions"] == [1.0]
    assert profile["features"]["gappy"]["missing_rate"] == pytest.approx(0.002)
    assert len(profile["score"]["edges"]) == 11
    assert profile == reference_profile(
        frame, ["x", "const", "gappy"], scores, sample_size=50, seed=1
    )


def test_train_windows_come_from_the_command_line() -> None:
    from infra.cli import build_parser
    from models.pipeline import DEFAULT_CONFIG, train_config

    args = build_parser().parse_args(["train", "--history", "h.parquet", "--train-days", "7",
                                      "--valid-days", "3", "--test-end", "2025-03-01"])
    config = train_config(train_days=args.train_days, delay_days=args.delay_days,
                          test_days=args.test_days, valid_days=args.valid_days,
                          test_end=args.test_end)
    assert (config.train_days, config.valid_days) == (7.0, 3.0)
    assert config.delay_days == DEFAULT_CONFIG.delay_days  # not given: the default
    assert config.test_end == pd.Timestamp("2025-03-01", tz="UTC")
    assert config.unknown_labels == DEFAULT_CONFIG.unknown_labels
