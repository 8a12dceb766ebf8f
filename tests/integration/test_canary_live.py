"""A canary judged on live evidence: ``scores`` records since its last step and the
``labels`` topic (real Kafka): a good canary steps, an inverted one is rolled back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from features.core import FEATURE_NAMES
from infra.settings import Settings
from models import audit, rollout_canary
from models.canary import canary_policy_from
from models.live_evidence import live_decisions
from models.registry import ModelRegistry
from models.reports import arm_evidence
from models.train import TrainConfig, train_model
from scoring.routing import arm_for
from streams.clients import make_producer
from tests.integration.test_models_cli import _frame


def _publish(settings: Settings, version: str, start: int, inverted: bool) -> None:
    rng = np.random.default_rng(start)
    producer = make_producer(settings)
    old = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=30)).isoformat()
    for i in range(start, start + 1500):
        card = f"card-{i % 400}"
        fraud = rng.random() < 0.05
        score = float(np.clip(rng.beta(1, 12) + 0.6 * fraud, 0, 1))
        arm = arm_for(card, 0.5, version)
        if inverted and arm == "canary":
            score = 1.0 - score
        tid = f"t{i}"
        record = {"transaction_id": tid, "event_time": old, "card_id": card, "score": score,
                  "decision": "review" if score > 0.5 else "approve", "arm": arm}
        producer.produce(settings.topic_scores, key=card, value=json.dumps(record))
        if fraud:
            label = {"transaction_id": tid, "card_id": card, "label": "fraud",
                     "label_time": old}
            producer.produce(settings.topic_labels, key=card, value=json.dumps(label))
    assert producer.flush(30) == 0


def test_live_canary_steps_then_rolls_back(
    settings: Settings, topic_factory: Callable[..., str]
) -> None:
    settings = settings.model_copy(update={"mlflow_tracking_uri": None, "model_name": "fd-live",
                                           "canary_min_frauds": 10})
    registry = ModelRegistry(settings)
    frame = _frame()
    config = TrainConfig(num_boost_round=20, scale_pos_weight=1.0)
    for seed, alias in ((1, "champion"), (2, None)):
        registry.log_and_register(train_model(frame, FEATURE_NAMES, config, seed=seed),
                                  "fd-live", "fs", alias=alias)
    topic_factory(settings.topic_scores, partitions=2)
    topic_factory(settings.topic_labels, partitions=2)
    policy = canary_policy_from(settings)

    _publish(settings, "2", 0, inverted=False)  # before the canary: outside its window
    time.sleep(1.0)
    rollout_canary.start_canary(registry, "2", actor="ops")
    time.sleep(1.0)
    _publish(settings, "2", 10_000, inverted=False)
    decisions = live_decisions(settings, registry)
    assert len(decisions) == 1500 and set(decisions["arm"]) == {"champion", "canary"}
    assert decisions["is_fraud"].notna().all()  # 30 days old: every label matured
    assert int(decisions["is_fraud"].sum()) > 0
    decision, _ = rollout_canary.step_canary(
        registry, arm_evidence(decisions, "champion"), arm_evidence(decisions, "canary"),
        actor="auto", policy=policy)
    assert decision.action == "step", decision.reason

    time.sleep(1.0)
    _publish(settings, "2", 20_000, inverted=True)
    decisions = live_decisions(settings, registry)
    assert len(decisions) == 1500  # only the records since the step
    decision, _ = rollout_canary.step_canary(
        registry, arm_evidence(decisions, "champion"), arm_evidence(decisions, "canary"),
        actor="auto", policy=policy)
    assert decision.action == "rollback"
    assert registry.alias_version("canary") is None and registry.alias_version("champion") == "1"
    actions = [r["action"] for r in audit.read(registry.audit_path, alias="canary")]
    assert actions == ["canary_start", "canary_step", "canary_rollback"]
