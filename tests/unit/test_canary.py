"""Canary policy on simulated arms, routing, A/B and shadow reports, rollback replay."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from infra.errors import ModelError
from models import audit, rollout_canary
from models.canary import CanaryPolicy, decide_step, gate_checks
from models.reports import (
    ArmEvidence,
    Rate,
    ab_report,
    decisions_frame,
    newcombe,
    shadow_report,
    wilson,
)
from models.rollout import rollback_target
from scoring.routing import arm_for, arms_for, bucket

RNG_SEED = 5


def _population(n: int, rng: np.random.Generator, matured: float = 1.0) -> tuple[Any, Any]:
    y = (rng.random(n) < 0.03).astype(float)
    signal = rng.normal(0, 1, n) + 2.5 * y
    labels = np.where(rng.random(n) < matured, y, np.nan)
    return signal, labels


def _scores(signal: np.ndarray, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    return 1 / (1 + np.exp(-(signal + rng.normal(0, noise, signal.size) - 3.0)))


def _arms(kind: str, n: int = 6000, matured: float = 1.0, paired: bool = False,
          seed: int = RNG_SEED) -> tuple[ArmEvidence, ArmEvidence]:
    rng = np.random.default_rng(seed)
    sig_a, lab_a = _population(n, rng, matured)
    sig_b, lab_b = _population(n, rng, matured)
    champ = _scores(sig_a, rng)
    threshold = float(np.quantile(champ, 0.97))
    canary = _scores(sig_b, rng)
    if kind == "inverted":
        canary = 1.0 - canary
    champion_of_canary_rows = _scores(sig_b, rng) if paired else None
    return (ArmEvidence(champ, champ >= threshold, lab_a),
            ArmEvidence(canary, canary >= threshold, lab_b, paired=champion_of_canary_rows))


def test_a_good_challenger_passes_every_gate_to_champion() -> None:
    share, actions = 0.01, []
    for step in range(5):
        champion, canary = _arms("good", paired=True, seed=step)
        decision = decide_step(share, champion, canary)
        assert all(c["passed"] is not False for c in decision.checks.values()), decision.checks
        actions.append(decision.action)
        share = decision.next_share
        if decision.action == "complete":
            break
    assert actions == ["step", "step", "complete"] and share == 1.0
    assert decision.checks["recall"]["passed"] is True  # judged on matured labels


def test_an_inverted_challenger_is_rolled_back_at_the_first_step() -> None:
    champion, canary = _arms("inverted", matured=0.0)  # no labels yet: caught without them
    decision = decide_step(0.01, champion, canary)
    assert decision.action == "rollback" and decision.next_share == 0.0
    failed = {k for k, c in decision.checks.items() if c["passed"] is False}
    assert {"score_distribution", "alert_rate"} <= failed
    champion, canary = _arms("inverted", paired=True)
    assert decide_step(0.01, champion, canary).checks["rank_agreement"]["passed"] is False


def test_label_gates_count_both_arms_uncertainty() -> None:
    """Recall/precision fail only when the difference canary - champion is surely below the
    tolerance: a champion's lucky 14 of 20 against the canary's 8 of 20 is not proof (the
    canary's own upper bound alone, 0.61 < 0.65, would have rolled it back); 2 of 20
    against 16 of 20 is."""
    assert newcombe(Rate(8, 20), Rate(14, 20))[1] > -0.05
    assert newcombe(Rate(2, 20), Rate(16, 20))[1] < -0.05
    assert wilson(8, 20)[1] < 14 / 20 - 0.05
    policy = CanaryPolicy(min_frauds=1)

    def evidence(hits: int) -> ArmEvidence:
        y = np.array([1.0] * 20 + [0.0] * 980)
        alerts = np.zeros(1000, dtype=bool)
        alerts[:hits] = True  # `hits` of the 20 frauds alerted, no false alert
        return ArmEvidence(np.where(alerts, 0.9, 0.1), alerts, y)

    noisy = gate_checks(evidence(14), evidence(8), policy)
    assert noisy["recall"]["passed"] is True, noisy["recall"]
    worse = gate_checks(evidence(16), evidence(2), policy)
    assert worse["recall"]["passed"] is False, worse["recall"]


def test_hold_without_enough_traffic_or_labels() -> None:
    champion, canary = _arms("good", n=100)
    assert decide_step(0.01, champion, canary).action == "hold"
    champion, canary = _arms("good", matured=0.0)
    assert decide_step(0.01, champion, canary).action == "step"  # labels not needed yet
    decision = decide_step(0.10, champion, canary)
    assert decision.action == "hold" and "label gates" in decision.reason
    with pytest.raises(ValueError, match="ascend"):
        CanaryPolicy(steps=(0.5, 0.1, 1.0))


class FakeRegistry:
    """The registry surface rollout_canary uses, with the real audit log."""

    def __init__(self, tmp: Path) -> None:
        self.settings = SimpleNamespace(model_name="m")
        self.audit_path = tmp / "aliases.jsonl"
        self.aliases: dict[str, str] = {"champion": "1"}
        self.share = 0.0

    def alias_version(self, alias: str, name: str | None = None) -> str | None:
        return self.aliases.get(alias)

    def set_alias(self, name: str, alias: str, version: str, actor: str, reason: str,
                  metrics: Any = None, *, action: str = "set", extra: Any = None) -> Any:
        record = audit.alias_record(name, alias, actor, reason, self.aliases.get(alias),
                                    version, action=action, extra=extra)
        self.aliases[alias] = version
        audit.append(self.audit_path, record)
        return record

    def delete_alias(self, name: str, alias: str, actor: str, reason: str, *,
                     action: str = "delete", extra: Any = None) -> Any:
        record = audit.alias_record(name, alias, actor, reason, self.aliases.pop(alias, None),
                                    None, action=action, extra=extra)
        audit.append(self.audit_path, record)
        return record

    def set_canary_share(self, name: str, share: float) -> None:
        self.share = share

    def canary_share(self, name: str | None = None) -> float:
        return self.share if "canary" in self.aliases else 0.0

    def load_version(self, version: str, name: str | None = None, **_: Any) -> None:
        return None


def test_canary_operations_write_every_step_and_the_rollback(tmp_path: Path) -> None:
    registry: Any = FakeRegistry(tmp_path)
    rollout_canary.start_canary(registry, "2", actor="ops", served=["f"])
    with pytest.raises(ModelError, match="abort it first"):
        rollout_canary.start_canary(registry, "3", actor="ops", served=["f"])
    decision, _ = rollout_canary.step_canary(registry, *_arms("inverted"), actor="auto")
    assert decision.action == "rollback"
    assert "canary" not in registry.aliases and registry.aliases["champion"] == "1"
    log = audit.read(registry.audit_path, alias="canary")
    assert [r["action"] for r in log] == ["canary_start", "canary_rollback"]
    assert log[-1]["extra"]["checks"]["alert_rate"]["passed"] is False
    assert log[-1]["previous_version"] == "2" and log[-1]["new_version"] is None
    with pytest.raises(ModelError, match="no canary"):
        rollout_canary.step_canary(registry, *_arms("good"), actor="auto")


def test_routing_is_stable_monotone_and_proportional() -> None:
    cards = [f"card-{i}" for i in range(20_000)]
    at_1 = arms_for(cards, 0.01, "v7")
    at_10 = arms_for(cards, 0.10, "v7")
    assert at_1 == arms_for(cards, 0.01, "v7")
    assert all(b == "canary" for a, b in zip(at_1, at_10, strict=True) if a == "canary")
    share = at_10.count("canary") / len(cards)
    assert 0.09 < share < 0.11
    other_salt = arms_for(cards, 0.10, "v8")
    assert other_salt != at_10  # another canary gets another card set
    assert arm_for("x", 0.0) == "champion" and arm_for("x", 1.0) == "canary"
    assert bucket("card-1", "v7") != bucket("card-1", "v8")


def test_ab_and_shadow_reports() -> None:
    records = [
        {"transaction_id": f"t{i}", "score": s, "decision": "review" if s > 0.5 else "approve",
         "arm": "canary" if i % 2 else "champion",
         "shadow": {"version": "9", "score": 1 - s,
                    "decision": "review" if s < 0.5 else "approve"}}
        for i, s in enumerate(np.linspace(0.01, 0.99, 200))
    ]
    labels = {f"t{i}": int(i % 10 == 0) for i in range(0, 200, 2)}
    frame = decisions_frame(records, labels)
    report = ab_report(frame)
    assert report["champion"]["decisions"] == report["canary"]["decisions"] == 100
    assert report["champion"]["matured_labels"] == 100 and report["canary"]["matured_labels"] == 0
    low, high = report["champion"]["alert_rate"]["low"], report["champion"]["alert_rate"]["high"]
    assert low < report["champion"]["alert_rate"]["value"] < high
    shadow = shadow_report(frame)
    assert shadow["pearson"] == pytest.approx(-1.0)
    assert shadow["alerts"]["both"] == 0 and shadow["agreement"]["value"] == 0.0
    assert all(np.isnan(wilson(0, 0)))  # no interval without trials


def test_rollback_target_and_doctests() -> None:
    moves = [{"action": "register", "previous_version": None, "new_version": "1"},
             {"action": "promote", "previous_version": "1", "new_version": "2"}]
    assert rollback_target(moves, "2") == "1"
    assert rollback_target(moves[:1], "1") is None
    for module in ("models.rollout", "models.reports", "models.lineage", "scoring.routing"):
        result = doctest.testmod(importlib.import_module(module))
        assert result.attempted > 0 and result.failed == 0, module


def test_gate_thresholds_come_from_settings() -> None:
    from infra.settings import Settings
    from models.canary import canary_policy_from

    champion, canary = _arms("good")
    strict = canary_policy_from(Settings(canary_min_decisions=10_000))
    assert decide_step(0.01, champion, canary, strict).action == "hold"
    lax = canary_policy_from(Settings(canary_max_score_psi=100.0, canary_alert_ratio=1000.0))
    champion, inverted = _arms("inverted", matured=0.0)
    assert decide_step(0.01, champion, inverted, lax).action == "step"  # gates loosened


def test_live_window_and_matured_labels() -> None:
    from models.live_evidence import matured_labels, window_start_ms

    log = [{"action": "canary_start", "new_version": "2", "time": "2025-01-01T00:00:00+00:00"},
           {"action": "canary_step", "new_version": "2", "time": "2025-01-02T00:00:00+00:00"},
           {"action": "canary_hold", "new_version": "2", "time": "2025-01-03T00:00:00+00:00"}]
    assert window_start_ms(log, "2") == 1_735_776_000_000  # the step, not the hold
    assert window_start_ms(log, "3") is None
    day = 86_400_000
    records = [{"transaction_id": "old", "event_time": 0},
               {"transaction_id": "new", "event_time": 9 * day},
               {"transaction_id": "new-fraud", "event_time": "1970-01-10T00:00:00Z"}]
    labels = matured_labels(records, {"new-fraud"}, now_ms=10 * day, maturity_days=7)
    assert labels == {"old": 0, "new-fraud": 1}  # "new" is not matured yet
