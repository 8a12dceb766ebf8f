"""Rollout costs: one-command rollback and promote on a local MLflow, canary routing per
card, and one canary gate evaluation; prints the numbers and writes
``bench-results/rollout_bench.json``.

    python -m bench.rollout_bench
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.core import FEATURE_NAMES
from infra.settings import Settings
from models import rollout
from models.canary import decide_step
from models.registry import ModelRegistry
from models.reports import ArmEvidence
from models.train import TrainConfig, train_model
from scoring.routing import arm_for

ROUNDS = 5


def _frame(n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    times = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, 40 * 86400, n)), unit="s")
    fraud = rng.random(n) < 0.06
    cols = {name: rng.normal(0, 1, n) + fraud for name in FEATURE_NAMES}
    return pd.DataFrame({**cols, "is_fraud": fraud, "event_time": times,
                         "label_time": times + pd.Timedelta(days=2), "amount": cols["amount"],
                         "card_id": rng.integers(0, 300, n).astype(str)})


def main() -> None:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(Settings(state_dir=Path(tmp), mlflow_tracking_uri=None,
                                          model_name="bench"))
        frame = _frame()
        config = TrainConfig(num_boost_round=20, scale_pos_weight=1.0)
        for seed, alias in ((1, "champion"), (2, None)):
            registry.log_and_register(train_model(frame, FEATURE_NAMES, config, seed=seed),
                                      "bench", "fs", alias=alias)
        promote, back = [], []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            rollout.promote(registry, "2", actor="bench")
            promote.append(time.perf_counter() - started)
            started = time.perf_counter()
            rollout.rollback(registry, actor="bench")
            back.append(time.perf_counter() - started)
        out["promote_median_s"] = statistics.median(promote)
        out["rollback_median_s"] = statistics.median(back)
    cards = [f"card-{i}" for i in range(200_000)]
    started = time.perf_counter()
    for card in cards:
        arm_for(card, 0.1, "v7")
    out["routing_per_card_us"] = (time.perf_counter() - started) / len(cards) * 1e6
    rng = np.random.default_rng(1)
    n = 100_000
    champion, canary = (ArmEvidence(s, s >= 0.9, (rng.random(n) < 0.03).astype(float))
                        for s in (rng.beta(1, 8, n), rng.beta(1, 8, n)))
    started = time.perf_counter()
    decide_step(0.5, champion, canary)
    out["gates_100k_decisions_per_arm_s"] = time.perf_counter() - started
    for key, value in out.items():
        print(f"{key:34s} {value:.4f}")
    path = Path("bench-results") / "rollout_bench.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
