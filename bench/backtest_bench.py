"""Backtest speed on one core: ``python -m bench.backtest_bench [--customers N --days D]``.

Simulates a history (default 2,000 customers x 60 days, about 300k transactions; the
target file is 1.7M transactions over six months: ``--customers 3800 --days 180`` gives
1,713,876, ``--customers 5700 --days 180`` 2.58M), pins the process to one CPU and XGBoost
to one thread, and times each backtest stage with ``time.perf_counter``:

- ``validate``: :func:`replay.validation.normalize` (the user-file checks);
- ``features``: :func:`replay.backtest.feature_frame` over every row (the vectorised twin
  of the feature core, :mod:`features.vectorised`);
- ``core_sample``: for comparison, the per-row feature core
  (:func:`features.backfill.compute_features`, what the stream worker runs) on the first
  ``--core-sample`` rows, and the largest difference between its values and the twin's
  on those rows (0.0: bit-identical);
- ``scoring``: ``booster.inplace_predict`` of every row with a model trained in-process
  (training is not counted: it is done once per backtest, whatever the file size);
- ``decide_metrics``: the policy's decisions and the metrics table, daily table and PR
  curve for the last 7 days (:func:`replay.backtest.run_backtest` minus its training).

The headline, ``features + scoring`` in transactions/s, is what the 50,000 tx/s target
is about; the same figure with the per-row core is given for comparison. Times are wall
clock; CPU seconds are recorded too (they differ when other processes share the core).
Prints a table and writes ``bench-results/backtest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before xgboost is imported

import numpy as np  # noqa: E402

from features.backfill import compute_features  # noqa: E402
from features.terminal import configure_label_delay
from infra.settings import Settings  # noqa: E402
from replay.backtest import BacktestConfig, feature_frame, run_backtest  # noqa: E402
from replay.candidates import trained_model  # noqa: E402
from replay.simulator import SimulationConfig, simulate  # noqa: E402
from replay.validation import normalize  # noqa: E402

TARGET_TX_PER_S = 50_000


CPU: dict[str, float] = {}


def _timed(fn: Any, stage: str = "") -> tuple[Any, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if stage:
        CPU[stage] = time.process_time() - cpu
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--terminals", type=int, default=1000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--core-sample", type=int, default=50_000,
                        help="rows for the per-row feature core comparison (0: skip)")
    parser.add_argument("--out", default="bench-results/backtest.json")
    args = parser.parse_args()
    configure_label_delay(Settings().label_delay_days)  # as the CLI does: one d
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    settings = Settings(xgb_nthread=1)

    raw = simulate(SimulationConfig(n_customers=args.customers, n_terminals=args.terminals,
                                    days=args.days, seed=7))
    n = len(raw)
    history, t_validate = _timed(lambda: normalize(raw), "validate")
    (frame, names), t_features = _timed(lambda: feature_frame(history), "features")
    sample = history.iloc[:max(0, min(args.core_sample, n))]
    t_core, max_diff = 0.0, float("nan")
    if len(sample):  # a prefix of the history: its rows' features are the same
        core_features, t_core = _timed(lambda: compute_features(sample), "core_sample")
        max_diff = float(np.max(np.abs(
            core_features.to_numpy(np.float64)
            - frame.loc[sample.index, list(names)].to_numpy(np.float64))))
    config = BacktestConfig().with_windows(train_days=21)
    from models.train import split_windows

    w = split_windows(frame["event_time"], config.train)
    calibration = ((frame["event_time"] >= w["train_end"])
                   & (frame["event_time"] < w["test_start"])).to_numpy()
    model, t_train = _timed(lambda: trained_model(frame, names, config.train, calibration,
                                                  settings))
    scores, t_scoring = _timed(lambda: model.score(frame), "scoring")
    result, t_rest = _timed(lambda: run_backtest(frame, names, [model], settings, config))
    t_decide = t_rest - result.timings["score_s"]

    core = t_features + t_scoring
    per_row = (t_core / len(sample) if len(sample) else float("nan")) + t_scoring / n
    results: dict[str, Any] = {
        "transactions": n,
        "test_window_rows": int(len(result.predictions)),
        "seconds": {"validate": t_validate, "features": t_features, "scoring": t_scoring,
                    "decide_metrics": t_decide, "train_once": t_train},
        "cpu_seconds": CPU,
        "tx_per_s": {"features_plus_scoring": n / core, "features": n / t_features,
                     "scoring": n / t_scoring, "validate": n / t_validate},
        "core_sample": {"rows": len(sample), "seconds": t_core,
                        "features_tx_per_s": len(sample) / t_core if len(sample) else None,
                        "features_plus_scoring_tx_per_s": 1 / per_row,
                        "max_abs_diff_vs_vectorised": max_diff},
        "target_tx_per_s": TARGET_TX_PER_S,
        "meets_target": n / core >= TARGET_TX_PER_S,
        "projected_seconds_1_7M": 1.7e6 / (n / core),
        "bottleneck": "features" if t_features > t_scoring else "scoring",
        "score_checksum": float(np.round(np.sum(scores, dtype=np.float64), 6)),
    }
    report = {
        "command": f"python -m bench.backtest_bench --customers {args.customers} "
                   f"--terminals {args.terminals} --days {args.days}",
        "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                    "cores_used": 1, "xgb_nthread": settings.xgb_nthread},
        "results": results,
    }
    print(f"{n:,} transactions ({args.customers} customers, {args.days} days), one core")
    for stage, seconds in results["seconds"].items():
        print(f"  {stage:<16} {seconds:8.2f} s  {n / seconds:>12,.0f} tx/s")
    print(f"  features+scoring {core:8.2f} s  {n / core:>12,.0f} tx/s "
          f"(target {TARGET_TX_PER_S:,}; 1.7M in ~{results['projected_seconds_1_7M']:.0f} s;"
          f" bottleneck: {results['bottleneck']})")
    cpu = CPU["features"] + CPU["scoring"]
    results["cpu_tx_per_s"] = {"features_plus_scoring": n / cpu,
                               "core_sample_features": len(sample) / CPU["core_sample"]
                               if len(sample) else None}
    print(f"  features+scoring {cpu:8.2f} s CPU {n / cpu:>9,.0f} tx/s (CPU time; wall time "
          f"above is higher when other processes share the core)")
    if len(sample):
        print(f"  per-row core, first {len(sample):,} rows: features {len(sample) / t_core:,.0f}"
              f" tx/s, features+scoring {1 / per_row:,.0f} tx/s; max |vectorised - core| "
              f"= {max_diff:.3g}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
