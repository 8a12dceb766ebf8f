"""A canary judged on live evidence: ``scores`` records since its last step and the
``labels`` topic (real Kafka): a good canary steps, an inverted one is rolled back. And the
live shadow report: the records since the shadow alias moved."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.core import FEATURE_NAMES
from infra.cli import main
from infra.settings import Settings
from infra.workers import settings_env
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


def test_live_shadow_report_reads_the_records_since_the_shadow_moved(
    settings: Settings, topic_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"mlflow_tracking_uri": None,
                                           "model_name": "fd-shadow"})
    registry = ModelRegistry(settings)
    result = train_model(_frame(), FEATURE_NAMES, TrainConfig(num_boost_round=5), seed=1)
    for alias in ("champion", None):
        registry.log_and_register(result, "fd-shadow", "fs", alias=alias)
    topic_factory(settings.topic_scores, partitions=2)
    topic_factory(settings.topic_labels, partitions=2)
    for key, value in settings_env(settings).items():
        if key.startswith("FRAUDSTREAM_"):
            monkeypatch.setenv(key, value)
    rng = np.random.default_rng(5)
    producer = make_producer(settings)

    def publish(start: int, n: int, shadow: bool) -> None:
        for i in range(start, start + n):
            score = float(rng.beta(1, 12))
            record = {"transaction_id": f"s{i}", "card_id": f"c{i % 50}", "score": score,
                      "event_time": "2025-01-06T00:00:00Z",
                      "decision": "review" if score > 0.3 else "approve"}
            if shadow:
                twin = float(np.clip(score + rng.normal(0, 0.02), 0, 1))
                record["shadow"] = {"version": "2", "score": twin,
                                    "decision": "review" if twin > 0.3 else "approve"}
            producer.produce(settings.topic_scores, key=record["card_id"],
                             value=json.dumps(record))
        assert producer.flush(30) == 0

    publish(0, 300, shadow=False)  # before the shadow: outside the report's window
    time.sleep(1.0)
    registry.set_alias("fd-shadow", "shadow", "2", actor="ops", reason="watch v2")
    time.sleep(1.0)
    publish(1000, 500, shadow=True)
    html = tmp_path / "report.html"
    assert main(["models", "report", "--json", "--html", str(html)]) == 0
    out = json.loads(capsys.readouterr().out.split("\n", 1)[1])  # after "wrote ..."
    assert out["ab"]["champion"]["decisions"] == 500
    assert out["shadow"]["transactions"] == 500 and out["shadow"]["spearman"] > 0.9
    assert 'id="shadow"' in html.read_text()
    assert main(["models", "report", "--json", "--since", "2000-01-01"]) == 0
    assert json.loads(capsys.readouterr().out)["ab"]["champion"]["decisions"] == 800
    assert main(["models", "report", "--since", "yesterday-ish"]) == 2
