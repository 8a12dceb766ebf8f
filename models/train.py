"""Time-aware training of the batch XGBoost fraud model on a point-in-time feature frame.

The caller passes a frame with the FeatureService's ``feature_names`` columns (in serving
order), ``is_fraud``, ``event_time`` (UTC), ``label_time`` (when the label became known;
missing = not labeled yet), ``amount`` and ``card_id``. Windows are half-open and built
backwards from ``test_end``::

    [train_start ............ valid_start ..... train_end) delay [test_start ... test_end)
     fit rows (labeled)         early stopping   (gap, unused)     evaluation (hindsight labels)

Point-in-time rule: train-window labels are taken as known at the label cut-off
(``train_end`` by default, or ``test_start`` when the delay models label latency). With
``unknown_labels="exclude"`` (default) a row whose label came later is dropped; with
``"genuine"`` it is kept as genuine, i.e. labels *as of* the cut-off (a fraud not reported yet
looks genuine), which needs no maturity period but trains on some noisy negatives. Either
way nothing learned after the cut-off reaches the model. Test rows are scored with their
final labels, as a backtest would. Training is deterministic for a given frame, config,
seed and ``nthread``.

Every run also fits the textbook baseline (:mod:`models.baseline`, a logistic regression
on 15 classic features) on the same labeled train rows and reports its test metrics in
:attr:`TrainResult.baseline_metrics`, computed by the same :func:`models.metrics.fraud_metrics`
(card precision@k by the published protocol: cards known compromised before the day —
from the frame's ``label_time``, frauds from :func:`models.metrics.known_window_start` on —
and cards detected on an earlier test day removed).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import xgboost as xgb

from infra.errors import ModelError
from infra.timestamps import utc
from models.baseline import SOURCE_FEATURES, fit_baseline
from models.metrics import fraud_metrics, known_since_ms, known_window_start
from models.profile import reference_profile

log = logging.getLogger("fraudstream.models.train")

__all__ = ["TrainConfig", "TrainResult", "reference_profile", "split_windows", "train_model"]

REQUIRED = ("is_fraud", "event_time", "label_time", "amount", "card_id")


@dataclass(frozen=True)
class TrainConfig:
    """Windows (days), booster parameters and evaluation settings; defaults suit ~1M rows."""

    test_end: pd.Timestamp | None = None  # exclusive; default: midnight after the last event
    test_days: float = 7.0
    delay_days: float = 7.0
    train_days: float | None = None  # None: everything before train_end
    valid_days: float = 7.0  # tail of the train window used for early stopping
    # test_start: the labels known when the model goes live (the delay period is when the
    # train window's labels mature; nothing from the test window is used). With train_end a
    # validation tail as long as the label delay holds no known fraud and early stopping
    # turns off.
    labels_known_at: Literal["train_end", "test_start"] = "test_start"
    unknown_labels: Literal["exclude", "genuine"] = "exclude"
    # 1.0 (unweighted): higher average precision than "auto" (genuine/fraud ratio of the
    # fit rows) on the delayed-label evaluation, docs/evaluation.md
    scale_pos_weight: float | Literal["auto"] = 1.0
    max_depth: int = 5
    eta: float = 0.1
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    subsample: float = 1.0  # 1.0 / 1.0: higher AP on the delayed-label evaluation
    colsample_bytree: float = 1.0
    min_child_weight: float = 1.0
    budget: float = 0.01
    k: int = 100


@dataclass(frozen=True)
class TrainResult:
    """A trained booster and everything the registry records with it."""

    booster: xgb.Booster
    feature_names: tuple[str, ...]
    metrics: dict[str, float]  # on the test window, see models.metrics.fraud_metrics
    windows: dict[str, str]  # train_start, valid_start, train_end, test_start, test_end
    params: dict[str, Any]  # booster params and the TrainConfig, JSON-serialisable
    best_iteration: int
    counts: dict[str, int] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)  # profile of the test window
    baseline_metrics: dict[str, float] = field(default_factory=dict)  # models.baseline's
    baseline: Any = None  # the fitted models.baseline.LogisticBaseline (None: no columns)


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True)


def split_windows(event_time: pd.Series, config: TrainConfig) -> dict[str, pd.Timestamp]:
    """Window bounds for ``config`` over ``event_time`` (UTC timestamps)."""
    times = _utc(event_time)
    if config.test_end is not None:
        test_end = utc(config.test_end)
    else:
        test_end = times.max().floor("D") + pd.Timedelta(days=1)
    test_start = test_end - pd.Timedelta(days=config.test_days)
    train_end = test_start - pd.Timedelta(days=config.delay_days)
    train_start = (
        times.min()
        if config.train_days is None
        else train_end - pd.Timedelta(days=config.train_days)
    )
    valid_start = max(train_start, train_end - pd.Timedelta(days=config.valid_days))
    return {
        "train_start": train_start,
        "valid_start": valid_start,
        "train_end": train_end,
        "test_start": test_start,
        "test_end": test_end,
    }


@dataclass(frozen=True)
class TrainRows:
    """The rows :func:`train_model` fits, early-stops and tests on (boolean masks), and
    which train labels are known at the config's cut-off."""

    windows: dict[str, pd.Timestamp]
    in_train: np.ndarray
    known: np.ndarray
    labeled: np.ndarray
    fit: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def train_rows(times: pd.Series, label_times: pd.Series, config: TrainConfig) -> TrainRows:
    """:class:`TrainRows` of a frame's ``event_time`` and ``label_time`` (UTC)."""
    w = split_windows(times, config)
    in_train = ((times >= w["train_start"]) & (times < w["train_end"])).to_numpy()
    known = (label_times.notna() & (label_times <= w[config.labels_known_at])).to_numpy()
    labeled = in_train & known if config.unknown_labels == "exclude" else in_train
    return TrainRows(w, in_train, known, labeled,
                     fit=labeled & (times < w["valid_start"]).to_numpy(),
                     valid=labeled & (times >= w["valid_start"]).to_numpy(),
                     test=((times >= w["test_start"]) & (times < w["test_end"])).to_numpy())


def booster_params(config: TrainConfig, y_fit: np.ndarray, nthread: int, seed: int
                   ) -> dict[str, Any]:
    """XGBoost parameters of ``config`` (``scale_pos_weight="auto"``: from the fit labels)."""
    n_pos = int(y_fit.sum())
    spw = (
        max(1.0, (y_fit.size - n_pos) / n_pos)
        if config.scale_pos_weight == "auto"
        else float(config.scale_pos_weight)
    )
    return {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": config.max_depth,
        "eta": config.eta,
        "subsample": config.subsample,
        "colsample_bytree": config.colsample_bytree,
        "min_child_weight": config.min_child_weight,
        "scale_pos_weight": spw,
        "nthread": nthread,
        "seed": seed,
    }


def train_model(
    frame: pd.DataFrame,
    feature_names: list[str] | tuple[str, ...],
    config: TrainConfig | None = None,
    *,
    nthread: int = 1,
    seed: int = 7,
) -> TrainResult:
    """Fit on the labeled train window, early-stop on its tail, evaluate on the test window.

    ``nthread`` and ``seed`` come from ``Settings.xgb_nthread`` / ``Settings.seed``. Raises
    ``ModelError`` when a window has no rows or the fit rows hold no fraud.
    """
    config = config or TrainConfig()
    names = list(feature_names)
    missing = [c for c in (*names, *REQUIRED) if c not in frame.columns]
    if missing:
        raise ModelError(f"training frame lacks columns {missing}")
    times, label_times = _utc(frame["event_time"]), _utc(frame["label_time"])
    rows = train_rows(times, label_times, config)
    w, in_train, known, labeled = rows.windows, rows.in_train, rows.known, rows.labeled
    fit_rows, valid_rows, test_rows = rows.fit, rows.valid, rows.test
    cutoff = w[config.labels_known_at]

    X = frame[names].to_numpy(dtype=np.float64)
    y_final = frame["is_fraud"].to_numpy(dtype=np.int8)
    y = np.where(known, y_final, 0).astype(np.int8)  # train labels as of the cut-off
    y_fit = y[fit_rows]
    if int(y_fit.sum()) in (0, y_fit.size) or not test_rows.any():
        raise ModelError(
            f"cannot train: {y_fit.size} fit rows ({int(y_fit.sum())} fraud) with labels known "
            f"by {cutoff.isoformat()} and {int(test_rows.sum())} test rows; both classes and "
            "a test window are needed. If genuine labels mature late, use a longer history, "
            "labels_known_at='test_start' or unknown_labels='genuine'"
        )
    params = booster_params(config, y_fit, nthread, seed)
    dfit = xgb.DMatrix(X[fit_rows], label=y_fit, feature_names=names, nthread=nthread)
    y_valid = y[valid_rows]
    early = int(y_valid.sum()) > 0 and int(y_valid.sum()) < y_valid.size
    if not early:
        log.warning("no early stopping: the validation tail %s .. %s holds %d rows, %d of "
                    "them fraud known by %s; all %d rounds are kept (make the tail's labels "
                    "known: labels_known_at='test_start' or a longer valid_days)",
                    w["valid_start"].isoformat(), w["train_end"].isoformat(), y_valid.size,
                    int(y_valid.sum()), cutoff.isoformat(), config.num_boost_round)
    evals = (
        [(xgb.DMatrix(X[valid_rows], label=y_valid, feature_names=names, nthread=nthread), "valid")]
        if early
        else []
    )
    booster = xgb.train(
        params,
        dfit,
        num_boost_round=config.num_boost_round,
        evals=evals,
        early_stopping_rounds=config.early_stopping_rounds if early else None,
        verbose_eval=False,
    )
    best = booster.best_iteration if early else config.num_boost_round - 1
    booster = booster[: best + 1]  # serve exactly the early-stopped trees

    test = frame.loc[test_rows]
    scores = booster.inplace_predict(X[test_rows])
    known_ms = known_since_ms(frame["card_id"].to_numpy(), y_final, label_times, times,
                              known_window_start(w["test_start"]))[test_rows]
    metrics = evaluate_scores(test, scores, known_ms, config)
    baseline_metrics: dict[str, float] = {}
    lr = None
    if all(c in frame.columns for c in SOURCE_FEATURES):
        lr = fit_baseline(frame, fit_rows | valid_rows, y[fit_rows | valid_rows])
        baseline_metrics = evaluate_scores(
            test, lr.inplace_predict(test[list(SOURCE_FEATURES)].to_numpy(np.float64)),
            known_ms, config)
    counts = {
        "fit": int(fit_rows.sum()),
        "fit_fraud": int(y_fit.sum()),
        "valid": int(valid_rows.sum()),
        "valid_fraud": int(y_valid.sum()),
        "train_unlabeled_excluded": int((in_train & ~labeled).sum()),
        "train_fraud_reported_late": int((in_train & ~known & (y_final == 1)).sum()),
        "test": int(test_rows.sum()),
        "test_fraud": int(test["is_fraud"].sum()),
    }
    cfg = {k: (str(v) if isinstance(v, pd.Timestamp) else v) for k, v in asdict(config).items()}
    return TrainResult(
        booster=booster,
        feature_names=tuple(names),
        metrics=metrics,
        windows={k: v.isoformat() for k, v in w.items()},
        params={**params, "early_stopping": early, **{f"config.{k}": v for k, v in cfg.items()}},
        best_iteration=int(best),
        counts=counts,
        reference=reference_profile(test, names, scores, seed=seed),
        baseline_metrics=baseline_metrics,
        baseline=lr,
    )


def evaluate_scores(test: pd.DataFrame, scores: np.ndarray, known_ms: np.ndarray,
                 config: TrainConfig) -> dict[str, float]:
    """:func:`models.metrics.fraud_metrics` of ``scores`` on the test rows (days in UTC);
    ``known_ms``: when each row's card became known compromised (see the module doc)."""
    return fraud_metrics(
        test["is_fraud"].to_numpy(),
        scores,
        test["amount"].to_numpy(),
        test["card_id"].to_numpy(),
        _utc(test["event_time"]).dt.floor("D"),
        budget=config.budget,
        k=config.k,
        known_ms=known_ms,
    )
