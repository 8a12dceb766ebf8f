"""Backtest speed on one core: ``python bench/backtest_bench.py [--customers N --days D]``.

Simulates a history (default 2,000 customers x 60 days, about 300k transactions; the
target file is 1.7M transactions over six months, e.g. ``--customers 5700 --days 180``),
pins the process to one CPU and XGBoost to one thread, and times each backtest stage with
``time.perf_counter``:

- ``validate``: :func:`replay.validation.normalize` (the user-file checks);
- ``features``: :func:`replay.backtest.feature_frame` (the feature core over every row);
- ``scoring``: ``booster.inplace_predict`` of every row with a model trained in-process
  (training is not counted: it is done once per backtest, whatever the file size);
- ``decide_metrics``: the policy's decisions and the metrics table, daily table and PR
  curve for the last 7 days (:func:`replay.backtest.run_backtest` minus its training).

The headline, ``features + scoring`` in transactions/s, is what the 50,000 tx/s target
is about. Prints a table and writes ``bench-results/backtest.json``.
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

from infra.settings import Settings  # noqa: E402
from replay.backtest import BacktestConfig, feature_frame, run_backtest  # noqa: E402
from replay.candidates import trained_model  # noqa: E402
from replay.simulator import SimulationConfig, simulate  # noqa: E402
from replay.validation import normalize  # noqa: E402

TARGET_TX_PER_S = 50_000


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--terminals", type=int, default=1000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--out", default="bench-results/backtest.json")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    settings = Settings(xgb_nthread=1)

    raw = simulate(SimulationConfig(n_customers=args.customers, n_terminals=args.terminals,
                                    days=args.days, seed=7))
    n = len(raw)
    history, t_validate = _timed(lambda: normalize(raw))
    (frame, names), t_features = _timed(lambda: feature_frame(history))
    config = BacktestConfig().with_windows(train_days=21)
    from models.train import split_windows

    w = split_windows(frame["event_time"], config.train)
    calibration = ((frame["event_time"] >= w["train_end"])
                   & (frame["event_time"] < w["test_start"])).to_numpy()
    model, t_train = _timed(lambda: trained_model(frame, names, config.train, calibration,
                                                  settings))
    scores, t_scoring = _timed(lambda: model.score(frame))
    result, t_rest = _timed(lambda: run_backtest(frame, names, [model], settings, config))
    t_decide = t_rest - result.timings["score_s"]

    core = t_features + t_scoring
    results = {
        "transactions": n,
        "test_window_rows": int(len(result.predictions)),
        "seconds": {"validate": t_validate, "features": t_features, "scoring": t_scoring,
                    "decide_metrics": t_decide, "train_once": t_train},
        "tx_per_s": {"features_plus_scoring": n / core, "features": n / t_features,
                     "scoring": n / t_scoring, "validate": n / t_validate},
        "target_tx_per_s": TARGET_TX_PER_S,
        "meets_target": n / core >= TARGET_TX_PER_S,
        "projected_seconds_1_7M": 1.7e6 / (n / core),
        "bottleneck": "features" if t_features > t_scoring else "scoring",
        "score_checksum": float(np.round(np.sum(scores, dtype=np.float64), 6)),
    }
    report = {
        "command": f"python bench/backtest_bench.py --customers {args.customers} "
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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
