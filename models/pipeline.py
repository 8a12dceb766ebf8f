"""Train-and-register from a historical file: backfill features, train, log, alias.

The features come from :func:`features.vectorised.compute_features_vectorised`, the numpy
twin of the core the stream worker runs (equal value for value:
``tests/unit/test_features_vectorised.py``; about 10x faster), and the model's signature is
the FeatureService's ordered feature list.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from features.core import FEATURE_NAMES
from features.definitions import FEATURE_SERVICE_NAME
from features.vectorised import compute_features_vectorised
from infra.errors import InvalidInput
from infra.settings import Settings
from infra.timestamps import utc
from models.train import REQUIRED, TrainConfig, TrainResult, train_model

log = logging.getLogger("fraudstream.models.pipeline")

# Production convention: a transaction with no fraud report by the labels' cut-off counts as
# genuine (genuine labels never "arrive"; frauds reported later are label noise in training).
DEFAULT_CONFIG = TrainConfig(unknown_labels="genuine")


def train_config(**windows: float | str | None) -> TrainConfig:
    """:data:`DEFAULT_CONFIG` with the windows given (None: keep the default); the
    ``train`` command's ``--train-days/--delay-days/--test-days/--valid-days/--test-end``."""
    changes: dict[str, object] = {k: v for k, v in windows.items() if v is not None}
    if isinstance(changes.get("test_end"), str):
        changes["test_end"] = utc(str(changes["test_end"]))
    return replace(DEFAULT_CONFIG, **changes)  # type: ignore[arg-type]


def training_frame(history: pd.DataFrame) -> pd.DataFrame:
    """Label columns plus the feature vector of every transaction, in event-time order."""
    missing = [
        c
        for c in (*REQUIRED, "transaction_id", "merchant_id", "channel", "country")
        if c not in history.columns
    ]
    if missing:
        raise InvalidInput(f"history lacks columns {missing}")
    history = history.sort_values("event_time", kind="stable").reset_index(drop=True)
    features = compute_features_vectorised(history)
    # "amount" is both a label-side column and a feature: the feature copy is identical.
    labels = history.drop(columns=[c for c in FEATURE_NAMES if c in history.columns])
    return pd.concat([labels, features], axis=1)


def train_from_history(
    settings: Settings, history_path: Path, config: TrainConfig | None = None
) -> TrainResult:
    return train_frame_from_history(settings, history_path, config)[1]


def train_frame_from_history(
    settings: Settings, history_path: Path, config: TrainConfig | None = None,
    tune_trials: int = 0,
) -> tuple[pd.DataFrame, TrainResult]:
    """The training frame of ``history_path`` and the model trained on it; with
    ``tune_trials`` the booster settings come from :func:`models.tune.tune` first."""
    from replay.history import read_history  # validated like every input (frame_checks)

    started = time.monotonic()
    history = read_history(history_path)
    frame = training_frame(history)
    log.info("features for %d transactions in %.1fs", len(frame), time.monotonic() - started)
    config = config or DEFAULT_CONFIG
    searched: dict[str, object] = {}
    if tune_trials:
        from models.tune import tune, tune_params

        tuned = tune(frame, FEATURE_NAMES, config, tune_trials, nthread=settings.xgb_nthread,
                     seed=settings.seed)
        config, searched = tuned.config, tune_params(tuned)
        log.info("search of %d trials: best %s", tune_trials, tuned.best)
    result = train_model(
        frame,
        FEATURE_NAMES,
        config,
        nthread=settings.xgb_nthread,
        seed=settings.seed,
    )
    if searched:
        result = replace(result, params={**result.params, **searched})
    log.info("trained in %.1fs: %s", time.monotonic() - started, result.metrics)
    w = result.windows
    log.info("windows: train %s .. %s (early-stopping tail from %s, %d rows, %d known "
             "fraud), delay, test %s .. %s\n%s", w["train_start"][:16], w["train_end"][:16],
             w["valid_start"][:16], result.counts.get("valid", 0),
             result.counts.get("valid_fraud", 0), w["test_start"][:16], w["test_end"][:16],
             comparison(result))
    return frame, result


def comparison(result: TrainResult) -> str:
    """The model's test metrics next to the textbook baseline's (:mod:`models.baseline`)."""
    keys = ("average_precision", "roc_auc", "card_precision_at_k", "card_precision_at_k_all",
            "recall_at_budget")
    lines = [f"{'metric':<26}{'model':>10}{'baseline_lr':>13}"]
    for key in keys:
        model = result.metrics.get(key, float("nan"))
        base = result.baseline_metrics.get(key, float("nan"))
        lines.append(f"{key:<26}{model:>10.4f}{base:>13.4f}")
    return "\n".join(lines)


def train_and_register(
    settings: Settings,
    history_path: Path,
    alias: str | None = "champion",
    config: TrainConfig | None = None,
) -> str:
    """Train on ``history_path`` and register a new version with its lineage and slices."""
    from models.card import slices_of_test_window
    from models.lineage import data_lineage
    from models.registry import ModelRegistry

    frame, result = train_frame_from_history(settings, history_path, config)
    version = ModelRegistry(settings).log_and_register(
        result, settings.model_name, FEATURE_SERVICE_NAME, alias=alias,
        data=data_lineage(frame, source=str(history_path)),
        slices=slices_of_test_window(frame, result),
    )
    log.info("registered %s version %s", settings.model_name, version)
    return version
