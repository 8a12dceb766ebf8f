"""Closed loop on the simulator, no manual step: shift -> decay/drift -> retrain -> promote.

One simulated stream (1,000 customers, ~2,500 transactions a day). Compromised terminals
and account takeovers run from day 0; **card testing starts on day SHIFT_DAY** and the first
champion is trained before it. The stream is then processed in event-time order in daily
steps, offline: each day is scored by the current champion loaded from the registry (as
the scorer loads it), the drift window of the day is judged against the champion's
reference profile, and :class:`models.retrain_loop.RetrainLoop` (the step the demo runs
live) observes the champion's matured-window metrics, judges the triggers and, when one
fires, retrains, evaluates, registers and maybe promotes.
Features are computed once by the feature core over the whole stream, as the stream worker
would, labels applied at their label time.

Recall at the 1 % alert budget is measured in hindsight (final labels) on the live scores:
before the shift, between the shift and the promotion, after the promotion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drift.detect import CALENDAR_FEATURES, DriftThresholds, evaluate_window
from drift.reference import SCORE, Reference
from drift.sustained import SustainedDrift
from drift.triggers import TriggerConfig
from features.core import FEATURE_NAMES
from infra.demo_world import WARMING_UP
from infra.settings import Settings
from models.metrics import recall_at_budget
from models.pipeline import training_frame
from models.promotion import PromotionPolicy
from models.registry import ModelRegistry
from models.retrain import RetrainConfig, Retrainer, retrain_log_path, trigger_log_path
from models.retrain_loop import RetrainLoop
from models.train import TrainConfig
from replay.config import ScenarioSpec, SimulationConfig
from replay.simulator import simulate

FIRST_CHAMPION_DAY = 28
SHIFT_DAY = 38
DAYS = 62
SIM = SimulationConfig(
    n_customers=1000, n_terminals=500, n_ecom_merchants=200, days=DAYS, seed=21,
    compromised_terminal=ScenarioSpec(0.003), account_takeover=ScenarioSpec(0.002),
    card_testing=ScenarioSpec(0.004, start_day=SHIFT_DAY),
    analyst_share=0.5, chargeback_days=(1.0, 10.0), genuine_maturity_days=10.0,
)
RETRAIN = RetrainConfig(
    train_days=21.0, eval_days=5.0, maturity_days=3.0, valid_days=5.0,
    booster=TrainConfig(num_boost_round=150, max_depth=4, early_stopping_rounds=20),
)
TRIGGERS = TriggerConfig(min_interval_days=5.0, min_matured_frauds=20, volume_frauds=None,
                         schedule_days=30.0)
POLICY = PromotionPolicy(min_frauds=20)
# the simulator's artefacts, as in the demo (infra.demo_world): card ages, night shares and
# the label-delay windows, which are still filling in a world that starts on day 0
THRESHOLDS = DriftThresholds(skip=(*CALENDAR_FEATURES, "card_age_days",
                                   "card_profile_night_share", *WARMING_UP))


@dataclass
class Timeline:
    events: list[str] = field(default_factory=list)
    detections: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    retrains: list[tuple[int, str, bool]] = field(default_factory=list)  # day, version, promoted
    promotion_day: int | None = None


def _day_of(frame: pd.DataFrame) -> np.ndarray:
    times = pd.to_datetime(frame["event_time"], utc=True)
    return (times - times.min().floor("D")).dt.days.to_numpy()


def _run_loop(tmp_path: Path) -> tuple[pd.DataFrame, np.ndarray, Timeline, Settings]:
    frame = training_frame(simulate(SIM))
    day = _day_of(frame)
    start = pd.Timestamp(SIM.start, tz="UTC")
    settings = Settings(state_dir=tmp_path / "state", mlflow_tracking_uri=None)
    registry = ModelRegistry(settings)
    retrainer = Retrainer(settings, registry, RETRAIN, POLICY)
    timeline = Timeline()

    first = start + pd.Timedelta(days=FIRST_CHAMPION_DAY)
    outcome = retrainer.run(frame, first, "initial champion")
    assert outcome.promoted, outcome.decision.reason
    loop = RetrainLoop(retrainer, TRIGGERS, last_retrain=first)
    reference = Reference.from_profile(registry.load_reference()[1], loop.champion.version)
    sustained = SustainedDrift(3, 5)
    scores = np.full(len(frame), np.nan)
    for d in range(FIRST_CHAMPION_DAY, DAYS):
        rows = day == d
        todays = frame.loc[rows]
        scores[rows] = loop.champion.predict(todays)  # what the scorer decided that day
        now = start + pd.Timedelta(days=d + 1)  # end of the day: the step runs at midnight
        values = {n: todays[n].to_numpy() for n in FEATURE_NAMES} | {SCORE: scores[rows]}
        report = evaluate_window(values, reference, THRESHOLDS,
                                 start_ms=int((now - pd.Timedelta(days=1)).value // 10**6),
                                 end_ms=int(now.value // 10**6))
        step = loop.step(frame, now, sustained.update(report).columns)
        decision = step.decision
        if decision.met:
            timeline.detections.append((d + 1, decision.reasons))
            timeline.events.append(f"day {d + 1}: trigger {list(decision.reasons)} fire="
                                   f"{decision.fire} {decision.details} {decision.suppressed}")
        if step.outcome is None:
            continue
        outcome = step.outcome
        timeline.retrains.append((d + 1, outcome.challenger_version, outcome.promoted))
        timeline.events.append(f"day {d + 1}: retrain v{outcome.challenger_version}: "
                               f"{outcome.decision.reason}")
        if outcome.promoted:
            reference = Reference.from_profile(registry.load_reference()[1],
                                               loop.champion.version)
            sustained.reset()
            if timeline.promotion_day is None and d + 1 > SHIFT_DAY:
                timeline.promotion_day = d + 1
    return frame, scores, timeline, settings


def _recall(frame: pd.DataFrame, scores: np.ndarray, mask: np.ndarray) -> float:
    return recall_at_budget(frame["is_fraud"].to_numpy(dtype=np.int8)[mask], scores[mask],
                            RETRAIN.budget)


def test_closed_loop_recovers_recall_after_a_new_fraud_pattern(tmp_path: Path) -> None:
    frame, scores, timeline, settings = _run_loop(tmp_path)
    day = _day_of(frame)
    promoted = timeline.promotion_day
    print("\n".join(timeline.events))
    assert promoted is not None, "no challenger promoted after the shift"
    before = _recall(frame, scores, (day >= FIRST_CHAMPION_DAY) & (day < SHIFT_DAY))
    during = _recall(frame, scores, (day >= SHIFT_DAY) & (day < promoted))
    after = _recall(frame, scores, day >= promoted)
    detection = next(d for d, reasons in timeline.detections
                     if d > SHIFT_DAY and ({"drift", "decay"} & set(reasons)))
    first_retrain = next(d for d, _, _ in timeline.retrains if d > SHIFT_DAY)
    print(f"shift day {SHIFT_DAY}, detection day {detection}, first retrain day "
          f"{first_retrain}, promotion day {promoted}")
    print(f"recall@1% before {before:.3f}, during {during:.3f}, after {after:.3f}")
    triggers = [json.loads(x) for x in trigger_log_path(settings).read_text().splitlines()]
    steps = [json.loads(x)["step"] for x in retrain_log_path(settings).read_text().splitlines()]
    assert any(t["fire"] for t in triggers) and "promoted" in steps
    assert during < before
    assert after >= 0.9 * before, (before, during, after)


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
