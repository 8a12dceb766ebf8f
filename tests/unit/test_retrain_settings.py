"""Retrain, trigger, promotion and sustained-drift settings: ``FRAUDSTREAM_*`` variables map
onto the dataclasses the loop uses; defaults are the documented ones; bad values fail early."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from drift.metrics import DriftMetrics
from drift.monitor import DriftMonitor
from drift.reference import Reference
from drift.triggers import TriggerConfig
from infra.cli import main
from infra.settings import Settings
from models.promotion import PromotionPolicy
from models.retrain import (
    RetrainConfig,
    Retrainer,
    promotion_policy_from,
    retrain_config_from,
    trigger_config_from,
)


def test_defaults_are_the_documented_dataclass_defaults() -> None:
    settings = Settings()
    assert retrain_config_from(settings) == RetrainConfig()
    assert trigger_config_from(settings) == TriggerConfig()
    assert promotion_policy_from(settings) == PromotionPolicy()
    assert (settings.drift_sustained_windows, settings.drift_sustained_lookback) == (3, 5)


def test_environment_variables_reach_every_config(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "RETRAIN_TRAIN_DAYS": "21", "RETRAIN_EVAL_DAYS": "1.5", "RETRAIN_MATURITY_DAYS": "0.5",
        "RETRAIN_VALID_DAYS": "1", "RETRAIN_BUDGET": "0.03", "RETRAIN_K": "50",
        "RETRAIN_MIN_INTERVAL_DAYS": "1", "RETRAIN_DECAY_RECALL_DROP": "0.2",
        "RETRAIN_DECAY_AP_DROP": "0.3", "RETRAIN_DECAY_CONFIRMATIONS": "1",
        "RETRAIN_MIN_MATURED_FRAUDS": "20", "RETRAIN_VOLUME_FRAUDS": "0",
        "RETRAIN_SCHEDULE_DAYS": "0", "RETRAIN_DRIFT_MIN_COLUMNS": "2",
        "PROMOTION_PRIMARY_METRIC": "roc_auc", "PROMOTION_MIN_IMPROVEMENT": "0.05",
        "PROMOTION_GUARDRAIL_METRIC": "amount_recall_at_budget",
        "PROMOTION_RECALL_TOLERANCE": "0.0", "PROMOTION_MIN_FRAUDS": "20",
        "DRIFT_SUSTAINED_WINDOWS": "2", "DRIFT_SUSTAINED_LOOKBACK": "3",
    }
    for name, value in env.items():
        monkeypatch.setenv(f"FRAUDSTREAM_{name}", value)
    settings = Settings()
    config = retrain_config_from(settings)
    assert (config.train_days, config.eval_days, config.maturity_days, config.valid_days,
            config.budget, config.k) == (21.0, 1.5, 0.5, 1.0, 0.03, 50)
    assert trigger_config_from(settings) == TriggerConfig(
        min_interval_days=1.0, decay_recall_drop=0.2, decay_ap_drop=0.3,
        decay_confirmations=1, min_matured_frauds=20, volume_frauds=None, schedule_days=None,
        drift_min_columns=2)  # 0 = off for volume and schedule
    assert promotion_policy_from(settings) == PromotionPolicy(
        "roc_auc", 0.05, "amount_recall_at_budget", 0.0, 20)
    retrainer = Retrainer(settings)  # no I/O until used
    assert retrainer.config == config and retrainer.policy == promotion_policy_from(settings)
    monitor = DriftMonitor(settings, lambda: Reference({}, "1"),
                           metrics=DriftMetrics(CollectorRegistry()))
    assert (monitor.sustained.n, monitor.sustained.m) == (2, 3)


@pytest.mark.parametrize(("env", "message"), [
    ({"RETRAIN_BUDGET": "1.5"}, "FRAUDSTREAM_RETRAIN_BUDGET"),
    ({"RETRAIN_EVAL_DAYS": "0"}, "FRAUDSTREAM_RETRAIN_EVAL_DAYS"),
    ({"RETRAIN_DECAY_RECALL_DROP": "1"}, "FRAUDSTREAM_RETRAIN_DECAY_RECALL_DROP"),
    ({"PROMOTION_PRIMARY_METRIC": "accuracy"}, "FRAUDSTREAM_PROMOTION_PRIMARY_METRIC"),
    ({"PROMOTION_MIN_FRAUDS": "0"}, "FRAUDSTREAM_PROMOTION_MIN_FRAUDS"),
    ({"RETRAIN_VALID_DAYS": "30"}, "retrain_valid_days must be shorter"),
    ({"DRIFT_SUSTAINED_WINDOWS": "4", "DRIFT_SUSTAINED_LOOKBACK": "3"},
     "drift_sustained_windows must not exceed"),
])
def test_bad_values_fail_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    env: dict[str, str], message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(f"FRAUDSTREAM_{name}", value)
    with pytest.raises(ValidationError):
        Settings()
    assert main(["retrain", "--history", str(tmp_path / "h.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fraudstream: error: invalid settings") and message in err, err


def test_retrain_config_refuses_inconsistent_windows() -> None:
    with pytest.raises(ValueError, match="valid_days"):
        RetrainConfig(train_days=5, valid_days=5)
    with pytest.raises(ValueError, match="budget"):
        RetrainConfig(budget=0.0)
