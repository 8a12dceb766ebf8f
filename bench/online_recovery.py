"""Recall recovery on a fraud pattern the champion never saw: champion alone vs combined.

``python -m bench.online_recovery [--customers N] [--days D] [--start S] [--scenario X]``

1. simulate a history where scenario X starts on day S (the other scenarios run all along);
2. train the XGBoost champion on days before S only (the production pipeline's
   ``train_model``, labels as known at the cut-off): it never saw X;
3. stream every transaction in event-time order through the online learner
   (:func:`models.online_eval.stream_online`: snapshots every event-time hour, labels fed
   at their ``label_time``), scoring with the champion and with the combination;
4. print recall at a 1% daily alert budget, per day, on X's frauds and on all frauds, and
   write ``bench-results/online_recovery.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.backfill import compute_features
from features.core import FEATURE_NAMES
from models.online import CombineRule
from models.online_eval import StreamConfig, daily_recall, stream_online
from models.train import TrainConfig, train_model
from replay.config import ScenarioName, SimulationConfig
from replay.simulator import simulate


def experiment(
    customers: int = 1000,
    days: int = 36,
    start_day: int = 24,
    scenario: ScenarioName = "card_testing",
    share: float = 0.003,
    seed: int = 3,
    budget: float = 0.01,
    stream: StreamConfig | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    config = SimulationConfig(n_customers=customers, n_terminals=max(2, customers // 2),
                              days=days, seed=seed).with_scenario(
        scenario, share=share, start_day=start_day)
    history = simulate(config).sort_values("event_time", kind="stable").reset_index(drop=True)
    features = compute_features(history)
    frame = pd.concat([history.drop(columns=[c for c in FEATURE_NAMES if c in history]),
                       features], axis=1)
    cut = pd.Timestamp(config.start, tz="UTC") + pd.Timedelta(days=start_day)
    before = frame[frame["event_time"] < cut]
    result = train_model(before, FEATURE_NAMES,
                         TrainConfig(test_end=cut, test_days=4, delay_days=2, valid_days=4,
                                     unknown_labels="genuine", budget=budget,
                                     labels_known_at="train_end", scale_pos_weight="auto"),
                         nthread=1, seed=seed)
    xgb = result.booster.inplace_predict(frame[list(FEATURE_NAMES)].to_numpy(np.float64))
    streamed = stream_online(frame, FEATURE_NAMES, np.asarray(xgb), stream)
    scores = {"champion": np.asarray(xgb), "combined": streamed["combined"].to_numpy()}
    window = (frame["event_time"] >= cut - pd.Timedelta(days=4)).to_numpy()
    new = (frame["scenario"] == scenario).to_numpy()
    sub = frame[window]
    on_new = daily_recall(sub, {k: v[window] for k, v in scores.items()}, budget, new[window])
    on_all = daily_recall(sub, {k: v[window] for k, v in scores.items()}, budget)
    after = (sub["event_time"] >= cut).to_numpy()
    totals = {}
    for name, score in scores.items():
        s, y, yn = score[window], sub["is_fraud"].to_numpy(bool), new[window]
        day = sub["event_time"].dt.floor("D").to_numpy()
        caught = np.zeros(len(s), dtype=bool)
        for d in np.unique(day):
            idx = np.flatnonzero(day == d)
            k = max(1, int(round(budget * len(idx))))
            caught[idx[np.argsort(-s[idx], kind="stable")[:k]]] = True
        totals[name] = {
            "recall_new_after": float((caught & yn & after).sum() / max(1, (yn & after).sum())),
            "recall_all_after": float((caught & y & after).sum() / max(1, (y & after).sum())),
            "recall_all_before": float((caught & y & ~after).sum() / max(1, (y & ~after).sum())),
            "precision_before": float((caught & y & ~after).sum()
                                      / max(1, (caught & ~after).sum())),
        }
    return {"config": {"customers": customers, "days": days, "start_day": start_day,
                       "scenario": scenario, "share": share, "seed": seed, "budget": budget,
                       "rows": len(frame), "new_frauds": int(new.sum()),
                       "champion_test": result.metrics},
            "daily_new": on_new.to_dict(orient="records"),
            "daily_all": on_all.to_dict(orient="records"), "totals": totals,
            "first_weight_day": str(frame.loc[streamed["weight"] > 0, "event_time"].min()),
            "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=36)
    parser.add_argument("--start", type=int, default=24)
    parser.add_argument("--scenario", default="card_testing")
    parser.add_argument("--share", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=CombineRule().warmup_frauds)
    parser.add_argument("--weight", type=float, default=CombineRule().weight)
    parser.add_argument("--out", default="bench-results/online_recovery.json")
    args = parser.parse_args()
    stream = StreamConfig(rule=CombineRule(weight=args.weight, warmup_frauds=args.warmup))
    out = experiment(args.customers, args.days, args.start, args.scenario, args.share,
                     args.seed, stream=stream)
    pd.set_option("display.width", 160)
    print(f"new-pattern ({args.scenario}) recall at 1% daily budget, from day {args.start}:")
    print(pd.DataFrame(out["daily_new"]).round(3).to_string(index=False))
    print("all frauds:")
    print(pd.DataFrame(out["daily_all"]).round(3).to_string(index=False))
    print(json.dumps(out["totals"], indent=1))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {path} ({out['seconds']}s)")


if __name__ == "__main__":
    main()
