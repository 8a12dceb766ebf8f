from __future__ import annotations

import numpy as np
import pytest

from infra.errors import ConfigurationError
from scoring.policy import Policy


def test_thresholds_are_inclusive() -> None:
    policy = Policy(review=0.5, decline=0.9)
    assert [policy.decide(s) for s in (0.0, 0.4999, 0.5, 0.89, 0.9, 1.0)] == [
        "approve",
        "approve",
        "review",
        "review",
        "decline",
        "decline",
    ]


@pytest.mark.parametrize(("review", "decline"), [(0.9, 0.5), (-0.1, 0.5), (0.5, 1.5)])
def test_inconsistent_thresholds_are_refused(review: float, decline: float) -> None:
    with pytest.raises(ConfigurationError):
        Policy(review=review, decline=decline)


def test_alert_budget_alerts_about_that_share() -> None:
    scores = np.random.default_rng(3).beta(1, 20, size=20_000)
    policy = Policy.from_alert_budget(scores, budget=0.02)
    decisions = policy.decide_many(scores)
    share = sum(d != "approve" for d in decisions) / len(scores)
    assert share == pytest.approx(0.02, abs=0.002)
    assert 0 < sum(d == "decline" for d in decisions) < sum(d == "review" for d in decisions)


def test_alert_budget_must_be_a_share() -> None:
    with pytest.raises(ConfigurationError):
        Policy.from_alert_budget(np.array([0.1, 0.2]), budget=1.5)
