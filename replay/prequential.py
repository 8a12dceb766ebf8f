"""Prequential evaluation: rolling train / delay / test folds over one history.

Fold ``i`` (0 = oldest) tests on ``[test_end_i - test_days, test_end_i)`` with
``test_end_i = last_test_end - (n - 1 - i) * step_days``; ``last_test_end`` is the config's
``test_end`` (default: midnight after the last event). Before each test window come the
delay and a train window of ``train_days`` (required here, so every fold trains on the same
amount of history); a fold whose train window would start before the first event is not
made. Each fold trains its own in-process model (labels known by its ``train_end``) and also
scores any registered models given, so a fixed champion can be watched decaying against
models retrained every step. Features are computed once for the whole history.

Results: the per-fold metrics table, and per candidate and metric the mean, standard
deviation (``ddof=1``; ``nan`` for one fold), min and max over folds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from infra.errors import ConfigurationError
from infra.settings import Settings
from infra.timestamps import utc
from replay.backtest import BacktestConfig, BacktestResult, run_backtest
from replay.candidates import STREAM_POLICY, Model, PolicySpec
from replay.evaluation import pr_curve

SUMMARY_METRICS = ("roc_auc", "average_precision", "average_precision_unknown_cards",
                   "card_precision_at_k", "recall_at_budget",
                   "amount_recall_at_budget", "alerts_per_day", "alert_precision",
                   "alert_recall")


@dataclass
class PrequentialResult:
    folds: pd.DataFrame  # one row per fold and candidate (fold, windows, metrics)
    summary: pd.DataFrame  # one row per candidate and metric: mean, std, min, max, folds
    backtest: BacktestResult  # all folds pooled: predictions, daily, pooled PR curves


def fold_ends(times: pd.Series, config: BacktestConfig, step_days: float,
              n_folds: int | None) -> list[pd.Timestamp]:
    """``test_end`` of every fold that has a full train window, oldest first."""
    t = config.train
    if t.train_days is None:
        raise ConfigurationError("prequential folds need train_days")
    if step_days <= 0:
        raise ConfigurationError("step_days must be > 0")
    last = utc(t.test_end if t.test_end is not None
               else times.max().floor("D") + pd.Timedelta(days=1))
    span = pd.Timedelta(days=t.test_days + t.delay_days + t.train_days)
    ends: list[pd.Timestamp] = []
    end = last
    while end - span >= times.min().floor("D") and (n_folds is None or len(ends) < n_folds):
        ends.append(end)
        end = end - pd.Timedelta(days=step_days)
    if not ends:
        raise ConfigurationError(
            f"history from {times.min()} to {times.max()} is too short for one fold of "
            f"{t.train_days} train + {t.delay_days} delay + {t.test_days} test days")
    return ends[::-1]


def run_prequential(frame: pd.DataFrame, feature_names: tuple[str, ...],
                    models: Sequence[Model], settings: Settings,
                    config: BacktestConfig | None = None, *, step_days: float | None = None,
                    n_folds: int | None = None,
                    policies: Sequence[PolicySpec] = (STREAM_POLICY,),
                    progress: Callable[[int, int], None] | None = None) -> PrequentialResult:
    """Run every fold (see module doc); ``frame`` comes from ``backtest.feature_frame``.

    ``progress(done, total)`` is called before the first fold (done 0) and after each."""
    config = config or BacktestConfig()
    step = config.train.test_days if step_days is None else step_days
    results: list[BacktestResult] = []
    rows = []
    ends = fold_ends(frame["event_time"], config, step, n_folds)
    report = progress or (lambda done, total: None)
    report(0, len(ends))
    for i, end in enumerate(ends):
        result = run_backtest(frame, feature_names, models, settings,
                              config.with_windows(test_end=end), policies=policies,
                              train=True)
        results.append(result)
        report(i + 1, len(ends))
        for record in result.metrics.to_dict("records"):
            rows.append({"fold": i, "test_start": result.windows["test_start"][:10],
                         "test_end": result.windows["test_end"][:10], **record})
    folds = pd.DataFrame(rows)
    return PrequentialResult(folds, summarize(folds), _pool(results))


def summarize(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean, spread (std, ddof=1), min and max of each metric over folds, per candidate."""
    out = []
    for candidate, group in folds.groupby("candidate", sort=False):
        for metric in SUMMARY_METRICS:
            values = group[metric].to_numpy(dtype=np.float64)
            values = values[~np.isnan(values)]
            out.append({
                "candidate": candidate, "metric": metric,
                "mean": float(values.mean()) if values.size else np.nan,
                "std": float(values.std(ddof=1)) if values.size > 1 else np.nan,
                "min": float(values.min()) if values.size else np.nan,
                "max": float(values.max()) if values.size else np.nan,
                "folds": int(values.size),
            })
    return pd.DataFrame(out)


def _pool(results: list[BacktestResult]) -> BacktestResult:
    """All folds' predictions and days together (a transaction may be in several folds'
    tests when ``step_days < test_days``; each fold's copy is kept)."""
    predictions = pd.concat([r.predictions for r in results], ignore_index=True)
    first = predictions.drop_duplicates("model")["candidate"]  # one policy per model
    curves = {
        str(g["model"].iloc[0]): pr_curve(g["is_fraud"].to_numpy(), g["score"].to_numpy())
        for _, g in predictions[predictions["candidate"].isin(first)].groupby(
            "candidate", sort=False)
    }
    metrics = pd.concat([r.metrics for r in results], ignore_index=True)
    return BacktestResult(
        windows={"test_start": results[0].windows["test_start"],
                 "test_end": results[-1].windows["test_end"]},
        predictions=predictions, metrics=metrics,
        daily=pd.concat([r.daily for r in results], ignore_index=True), curves=curves,
        timings={k: sum(r.timings.get(k, 0.0) for r in results)
                 for k in ("train_s", "score_s")},
    )
