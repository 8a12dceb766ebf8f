"""Opt-in hyperparameter search on time-ordered validation (``fraudstream train --tune N``).

The search never sees the test window. Inside the train window of a
:class:`~models.train.TrainConfig` it fits on ``[train_start, valid_start)`` and scores the
average precision of the labeled early-stopping tail ``[valid_start, train_end)`` (labels as
of the config's cut-off, as :func:`~models.train.train_model` sees them): the tail comes
after every row the trial learns from, as the test week comes after the train window.
Optuna's TPE sampler (seeded) proposes ``max_depth``, ``eta``, ``min_child_weight``,
``subsample`` and ``colsample_bytree``; each trial early-stops on the tail. The best
trial's values replace the config's, and :func:`~models.train.train_model` then trains and
evaluates as usual; the trials go to MLflow with the model's params (``tune.*``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from infra.errors import ModelError
from models.metrics import average_precision
from models.train import TrainConfig, booster_params, train_rows

SEARCH_SPACE = {  # name: (low, high, log scale)
    "max_depth": (3, 8, False),
    "eta": (0.02, 0.3, True),
    "min_child_weight": (1.0, 20.0, True),
    "subsample": (0.6, 1.0, False),
    "colsample_bytree": (0.6, 1.0, False),
}


@dataclass(frozen=True)
class TuneResult:
    config: TrainConfig  # the given config with the best trial's values
    best: dict[str, Any]  # the best trial's values and its validation AP
    trials: pd.DataFrame  # one row per trial: values, valid_ap, rounds


def _split(frame: pd.DataFrame, names: list[str], config: TrainConfig
           ) -> tuple[xgb.DMatrix, xgb.DMatrix, np.ndarray, np.ndarray]:
    """The fit and validation matrices of :func:`~models.train.train_model`'s rows, the
    validation labels and the fit labels."""
    rows = train_rows(pd.to_datetime(frame["event_time"], utc=True),
                      pd.to_datetime(frame["label_time"], utc=True), config)
    y = np.where(rows.known, frame["is_fraud"].to_numpy(dtype=np.int8), 0)
    if y[rows.fit].sum() == 0 or y[rows.valid].sum() == 0:
        raise ModelError(f"cannot tune: the fit rows hold {int(y[rows.fit].sum())} and the "
                         f"validation tail {int(y[rows.valid].sum())} known fraud; both need "
                         "some")
    X = frame[names].to_numpy(dtype=np.float64)
    return (xgb.DMatrix(X[rows.fit], label=y[rows.fit], feature_names=names),
            xgb.DMatrix(X[rows.valid], label=y[rows.valid], feature_names=names),
            y[rows.valid], y[rows.fit])


def tune(frame: pd.DataFrame, feature_names: list[str] | tuple[str, ...],
         config: TrainConfig, n_trials: int, *, nthread: int = 1, seed: int = 7) -> TuneResult:
    """Search :data:`SEARCH_SPACE` for ``n_trials`` trials (see the module doc)."""
    import optuna  # opt-in: imported only when a search is asked for

    if n_trials < 1:
        raise ModelError(f"n_trials must be >= 1, got {n_trials}")
    names = list(feature_names)
    dfit, dvalid, y_valid, y_fit = _split(frame, names, config)
    rows: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        values: dict[str, Any] = {}
        for name, (low, high, log) in SEARCH_SPACE.items():
            values[name] = (trial.suggest_int(name, int(low), int(high)) if name == "max_depth"
                            else trial.suggest_float(name, float(low), float(high), log=log))
        params = booster_params(replace(config, **values), y_fit, nthread, seed)
        booster = xgb.train(params, dfit, num_boost_round=config.num_boost_round,
                            evals=[(dvalid, "valid")],
                            early_stopping_rounds=config.early_stopping_rounds,
                            verbose_eval=False)
        rounds = booster.best_iteration + 1
        ap = average_precision(y_valid, booster[:rounds].predict(dvalid))
        rows.append({**values, "valid_ap": ap, "rounds": rounds})
        return ap

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    best = dict(study.best_params)
    tuned = replace(config, max_depth=int(best["max_depth"]), eta=float(best["eta"]),
                    min_child_weight=float(best["min_child_weight"]),
                    subsample=float(best["subsample"]),
                    colsample_bytree=float(best["colsample_bytree"]))
    return TuneResult(tuned, {**best, "valid_ap": float(study.best_value)}, pd.DataFrame(rows))


def tune_params(result: TuneResult) -> dict[str, Any]:
    """Flat ``tune.*`` params for MLflow: the best values, the number of trials and the
    spread of their validation AP (a bounded number of keys whatever the trials)."""
    ap = result.trials["valid_ap"]
    return {**{f"tune.best.{k}": v for k, v in result.best.items()},
            "tune.trials": len(result.trials), "tune.valid_ap_median": float(ap.median()),
            "tune.valid_ap_min": float(ap.min())}
