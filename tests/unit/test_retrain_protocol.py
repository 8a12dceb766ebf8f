"""The retrainer's protocol without MLflow: labels as of now, windows."""

from __future__ import annotations

import pandas as pd

from models.retrain import RetrainConfig, labels_as_of, new_fraud_labels

T = pd.Timestamp("2025-02-01", tz="UTC")


def test_labels_as_of_now_hide_later_reports_and_later_rows() -> None:
    frame = pd.DataFrame({
        "event_time": [T, T, T, T + pd.Timedelta(days=5)],
        "is_fraud": [True, True, False, True],
        "label_time": [T + pd.Timedelta(days=1), T + pd.Timedelta(days=9),
                       T + pd.Timedelta(days=30), T + pd.Timedelta(days=6)],
    })
    now = T + pd.Timedelta(days=3)
    out = labels_as_of(frame, now)
    assert out["is_fraud"].tolist() == [True, False, False]  # 2nd reported after now
    assert out["label_time"].notna().tolist() == [True, False, False]
    assert new_fraud_labels(frame, T, now) == 1


def test_windows_leave_the_maturity_gap_before_now() -> None:
    w = RetrainConfig(train_days=21, eval_days=7, maturity_days=7).windows(T)
    assert w["eval_end"] == T - pd.Timedelta(days=7)
    assert w["eval_start"] == T - pd.Timedelta(days=14)
    assert w["train_start"] == T - pd.Timedelta(days=35)
    config = RetrainConfig(maturity_days=3, eval_days=5).train_config(T)
    assert config.test_end == T - pd.Timedelta(days=3) and config.test_days == 5
    assert config.delay_days == 0 and config.unknown_labels == "genuine"
