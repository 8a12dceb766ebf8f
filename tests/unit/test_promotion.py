"""Promotion policy: minimum improvement, recall guardrail, evidence, first model."""

from __future__ import annotations

import math

from models.promotion import PromotionPolicy, decide

CHAMPION = {"average_precision": 0.50, "recall_at_budget": 0.70, "n_fraud": 100.0}


def metrics(ap: float, recall: float, frauds: float = 100.0) -> dict[str, float]:
    return {"average_precision": ap, "recall_at_budget": recall, "n_fraud": frauds}


def test_better_on_both_is_promoted() -> None:
    d = decide(metrics(0.60, 0.75), CHAMPION)
    assert d.promote and d.reason.startswith("promoted")
    assert all(c["passed"] for c in d.checks.values())


def test_improvement_below_the_minimum_is_not_promoted() -> None:
    d = decide(metrics(0.505, 0.75), CHAMPION, PromotionPolicy(min_improvement=0.01))
    assert not d.promote and not d.checks["primary"]["passed"]
    assert "average_precision 0.5050" in d.reason


def test_recall_regression_beyond_tolerance_blocks_promotion() -> None:
    policy = PromotionPolicy(recall_tolerance=0.02)
    assert decide(metrics(0.60, 0.685), CHAMPION, policy).promote  # within tolerance
    d = decide(metrics(0.60, 0.67), CHAMPION, policy)
    assert not d.promote and not d.checks["guardrail"]["passed"]
    assert d.checks["primary"]["passed"]


def test_too_few_frauds_is_not_evidence() -> None:
    d = decide(metrics(0.9, 0.9, frauds=10), CHAMPION, PromotionPolicy(min_frauds=30))
    assert not d.promote and not d.checks["evidence"]["passed"]


def test_undefined_challenger_metrics_are_not_promoted() -> None:
    d = decide(metrics(math.nan, 0.9), None)
    assert not d.promote


def test_first_model_needs_only_evidence() -> None:
    d = decide(metrics(0.3, 0.4), None)
    assert d.promote and set(d.checks) == {"evidence"} and "no champion" in d.reason


def test_champion_with_undefined_metrics_does_not_block() -> None:
    d = decide(metrics(0.3, 0.4), metrics(math.nan, math.nan))
    assert d.promote


def test_other_primary_metric() -> None:
    policy = PromotionPolicy(primary_metric="roc_auc", min_improvement=0.0)
    champion = {**CHAMPION, "roc_auc": 0.90}
    assert not decide({**metrics(0.9, 0.9), "roc_auc": 0.89}, champion, policy).promote
    assert decide({**metrics(0.1, 0.9), "roc_auc": 0.91}, champion, policy).promote
