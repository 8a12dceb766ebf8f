"""Offline backtest: the stream's feature core, model and policy over a history, no services.

Contract:

* Features come from :func:`features.vectorised.compute_features_vectorised` over the
  **whole** history in event-time order, so a test transaction's vector includes every
  earlier event of its card. That is the numpy twin of the stream's feature core, equal to
  :func:`features.backfill.compute_features` (the core itself) value for value — the
  equality is what ``tests/unit/test_features_vectorised.py`` proves — and about 10x faster.
* Scores are ``booster.inplace_predict(features in signature order)`` and decisions
  :func:`replay.evaluation.decide` of the policy, as the scorer does: for the same
  transactions and model, backtest scores equal the stream's (the parity test checks it).
* Windows (from :class:`models.train.TrainConfig`, see :func:`models.train.split_windows`):
  ``[train_start, train_end)`` delay ``[test_start, test_end)``. An in-process model only
  learns labels known by ``test_start`` (the delay is when they mature); the policy
  calibration uses the scores (no labels) of the ``calibration_days`` before
  ``test_start``; test rows are judged on final labels.
* Deterministic: same file, models, config and settings (seed, ``xgb_nthread``) give the
  same output, byte for byte.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.vectorised import compute_features_vectorised
from infra.errors import ConfigurationError, InvalidInput
from infra.settings import Settings
from models.metrics import known_window_start
from models.train import TrainConfig, split_windows
from replay.candidates import STREAM_POLICY, Model, PolicySpec, trained_models
from replay.evaluation import daily_metrics, decide, known_compromised, metrics_row, pr_curve

log = logging.getLogger("fraudstream.replay.backtest")

PREDICTION_COLUMNS = ("candidate", "model", "transaction_id", "event_time", "card_id", "amount",
                      "is_fraud", "model_version", "score", "decision")


@dataclass(frozen=True)
class BacktestConfig:
    """Windows and booster settings (``train``), policy calibration and metric settings."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(unknown_labels="genuine"))
    calibration_days: float = 7.0
    budget: float = 0.01
    k: int = 100

    def with_windows(self, **windows: object) -> BacktestConfig:
        return replace(self, train=replace(self.train, **windows))  # type: ignore[arg-type]


@dataclass
class BacktestResult:
    windows: dict[str, str]
    predictions: pd.DataFrame  # PREDICTION_COLUMNS, candidate-major, event-time order
    metrics: pd.DataFrame  # one row per candidate
    daily: pd.DataFrame  # one row per candidate and test day
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # model label -> (recall, precision)
    timings: dict[str, float] = field(default_factory=dict)


def feature_frame(history: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """``history`` (event-time order) with its feature columns, and the feature names."""
    if not history["event_time"].is_monotonic_increasing:
        raise InvalidInput("history must be in event-time order")
    features = compute_features_vectorised(history)
    rest = history.drop(columns=[c for c in features.columns if c in history.columns])
    return pd.concat([rest, features], axis=1), tuple(str(c) for c in features.columns)


def run_backtest(frame: pd.DataFrame, feature_names: tuple[str, ...], models: Sequence[Model],
                 settings: Settings, config: BacktestConfig | None = None, *,
                 policies: Sequence[PolicySpec] = (STREAM_POLICY,), train: bool = False
                 ) -> BacktestResult:
    """Score the test window with every model x policy (plus, if ``train``, an in-process
    model and the logistic-regression baseline trained on the same rows).

    ``frame`` comes from :func:`feature_frame`; cards known compromised are those with a
    fraud reported among the transactions from :func:`models.metrics.known_window_start` on
    (the published protocol's look-back). Raises ``ConfigurationError`` on an empty test
    window or when nothing is to be compared.
    """
    config = config or BacktestConfig()
    times = frame["event_time"]
    w = split_windows(times, config.train)
    test = ((times >= w["test_start"]) & (times < w["test_end"])).to_numpy()
    if not test.any():
        raise ConfigurationError(
            f"no transactions in the test window {w['test_start']} .. {w['test_end']}")
    calib_start = w["test_start"] - pd.Timedelta(days=config.calibration_days)
    calibration = ((times >= calib_start) & (times < w["test_start"])).to_numpy()
    timings: dict[str, float] = {}
    models = list(models)
    if train:
        started = time.perf_counter()
        # the model and the textbook baseline (models.baseline), on the same train rows
        models += trained_models(frame, feature_names, config.train, calibration, settings)
        timings["train_s"] = time.perf_counter() - started
    if not models:
        raise ConfigurationError("nothing to backtest: give a registered model or train one")
    for model in models:
        if model.overlaps(w["test_start"], w["test_end"]):
            log.warning("%s was trained on %s .. %s, which overlaps the test window %s .. %s: "
                        "its scores there are in-sample and its metrics flattered",
                        model.label, *(model.train_window or ("?", "?")),
                        w["test_start"].isoformat(), w["test_end"].isoformat())
    known = known_compromised(frame["card_id"].to_numpy(), frame["is_fraud"].to_numpy(),
                              frame["label_time"], times, known_window_start(w["test_start"]))
    rows = frame.loc[test]
    y = rows["is_fraud"].to_numpy(dtype=np.int8)
    amount, cards = rows["amount"].to_numpy(np.float64), rows["card_id"].to_numpy()
    day = rows["event_time"].dt.floor("D")
    need_calibration = any(p.budget is not None for p in policies)
    preds, metric_rows, daily, curves = [], [], [], {}
    timings["score_s"] = 0.0
    for model in models:
        started = time.perf_counter()
        scores = model.score(rows)
        timings["score_s"] += time.perf_counter() - started
        calib = model.score(frame.loc[calibration]) if need_calibration else np.empty(0)
        curves[model.label] = pr_curve(y, scores)  # policies do not change the curve
        for spec in policies:
            name = model.label if len(policies) == 1 else f"{model.label} / {spec.name}"
            policy = spec.build(model, calib, settings)
            decisions = decide(policy, scores)
            preds.append(pd.DataFrame({
                "candidate": name, "model": model.label,
                "transaction_id": rows["transaction_id"].to_numpy(),
                "event_time": rows["event_time"].reset_index(drop=True), "card_id": cards,
                "amount": amount, "is_fraud": y.astype(bool), "model_version": model.version,
                "score": scores.astype(np.float64), "decision": decisions}))
            metric_rows.append({"candidate": name, "model_version": model.version,
                                "policy": spec.name, "review": policy.review,
                                "decline": policy.decline,
                                **metrics_row(y, scores, decisions, amount, cards, day, known,
                                              config.budget, config.k)})
            daily.append(daily_metrics(y, scores, decisions, cards, day, known, config.k)
                         .assign(candidate=name))
    return BacktestResult(
        windows={k: v.isoformat() for k, v in w.items()} | {
            "calibration_start": calib_start.isoformat()},
        predictions=pd.concat(preds, ignore_index=True),
        metrics=pd.DataFrame(metric_rows),
        daily=pd.concat(daily, ignore_index=True),
        curves=curves,
        timings=timings,
    )


def write_predictions(predictions: pd.DataFrame, path: Path) -> Path:
    """Per-transaction output as Parquet (``.parquet``) or CSV (anything else)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        predictions.to_parquet(path, index=False)
    else:
        out = predictions.assign(event_time=predictions["event_time"].dt.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ").str.replace(r"\d{3}Z$", "Z", regex=True))
        out.to_csv(path, index=False, float_format="%.9g")
    return path
