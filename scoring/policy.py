"""Decision policy: score -> approve / review / decline (pure, no I/O).

Thresholds are on the combined fraud probability. ``review`` and ``decline`` decisions are
alerts for analysts. Thresholds can also be derived from an alert budget: the score quantile
that sends the given share of (historical) transactions to review.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from infra.errors import ConfigurationError

Decision = Literal["approve", "review", "decline"]
ALERT_DECISIONS: frozenset[str] = frozenset({"review", "decline"})


@dataclass(frozen=True)
class Policy:
    """Approve below ``review``, review from ``review``, decline from ``decline``.

    >>> Policy(review=0.5, decline=0.9).decide_many(np.array([0.1, 0.5, 0.95]))
    ['approve', 'review', 'decline']
    """

    review: float = 0.5
    decline: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.decline <= 1.0:
            raise ConfigurationError(
                f"need 0 <= review ({self.review}) <= decline ({self.decline}) <= 1"
            )

    def decide(self, score: float) -> Decision:
        if score >= self.decline:
            return "decline"
        if score >= self.review:
            return "review"
        return "approve"

    def decide_many(self, scores: npt.NDArray[np.float64]) -> list[Decision]:
        return [self.decide(float(s)) for s in scores]

    @classmethod
    def from_alert_budget(
        cls, scores: npt.NDArray[np.float64], budget: float, decline_share: float = 0.2
    ) -> Policy:
        """Thresholds that alert on ``budget`` (e.g. 0.01 = 1%) of ``scores``.

        The top ``decline_share`` of the alerted transactions are declined outright.

        >>> p = Policy.from_alert_budget(np.linspace(0, 1, 1001), budget=0.1)
        >>> round(p.review, 3), round(p.decline, 3)
        (0.9, 0.98)
        """
        if not 0.0 < budget < 1.0:
            raise ConfigurationError(f"alert budget must be in (0, 1), got {budget}")
        if len(scores) == 0:
            raise ConfigurationError("cannot derive thresholds from no scores")
        review = float(np.quantile(scores, 1.0 - budget))
        decline = float(np.quantile(scores, 1.0 - budget * decline_share))
        return cls(review=review, decline=max(review, decline))


def policy_for(review: float | None, decline: float, budget_threshold: float | None) -> Policy:
    """The configured thresholds; an unset ``review`` falls back to the model's threshold at
    its alert budget (recorded at training), and ``decline`` is never below ``review``."""
    if review is None:
        if budget_threshold is None or not 0.0 <= budget_threshold <= 1.0:
            raise ConfigurationError(
                "no review threshold configured and the model records no alert-budget threshold"
            )
        review = budget_threshold
    return Policy(review=review, decline=max(review, decline))
