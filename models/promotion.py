"""Champion/challenger promotion policy: pure, judged on one shared evaluation window.

Both models are scored on the same latest matured-label window with the same metric code
(:func:`models.metrics.fraud_metrics`), so the comparison is like for like. The challenger
is promoted only if every check passes:

1. **evidence**: the window holds at least ``min_frauds`` matured frauds (fewer, and AP or
   recall differences are noise) and the challenger's metrics are defined (no NaN);
2. **primary metric** (``average_precision`` by default: threshold-free ranking quality
   over all frauds): challenger >= champion + ``min_improvement`` (absolute);
3. **guardrail**: recall at the alert budget — what the analyst team actually catches —
   does not regress by more than ``recall_tolerance`` (absolute).

With no champion (first model) only the evidence check applies. The decision lists each
check's outcome so that the audit log says why a challenger was or was not promoted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PromotionPolicy:
    """Guardrails; defaults and why are in ``docs/retraining.md``."""

    primary_metric: str = "average_precision"
    min_improvement: float = 0.01
    guardrail_metric: str = "recall_at_budget"
    recall_tolerance: float = 0.02
    min_frauds: int = 30

    def __post_init__(self) -> None:
        if self.min_improvement < 0 or self.recall_tolerance < 0 or self.min_frauds < 1:
            raise ValueError("need min_improvement >= 0, recall_tolerance >= 0, min_frauds >= 1")


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str  # one line, for the alias audit log
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


def _num(metrics: dict[str, float], key: str) -> float:
    value = metrics.get(key, float("nan"))
    return float("nan") if value is None else float(value)


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    policy: PromotionPolicy | None = None,
) -> PromotionDecision:
    """Promote ``challenger`` over ``champion`` (metrics on the same window) or say why not.

    >>> decide({"average_precision": 0.60, "recall_at_budget": 0.70, "n_fraud": 80},
    ...        {"average_precision": 0.50, "recall_at_budget": 0.71, "n_fraud": 80}).promote
    True
    >>> decide({"average_precision": 0.60, "recall_at_budget": 0.60, "n_fraud": 80},
    ...        {"average_precision": 0.50, "recall_at_budget": 0.71, "n_fraud": 80}).reason
    'not promoted: recall_at_budget 0.6000 vs champion 0.7100 (need >= 0.6900)'
    """
    p = policy or PromotionPolicy()
    checks: dict[str, dict[str, Any]] = {}
    frauds = _num(challenger, "n_fraud")
    new_primary = _num(challenger, p.primary_metric)
    new_guard = _num(challenger, p.guardrail_metric)
    checks["evidence"] = {
        "passed": frauds >= p.min_frauds and not math.isnan(new_primary + new_guard),
        "detail": f"{0 if math.isnan(frauds) else int(frauds)} matured frauds "
        f"(need {p.min_frauds}), {p.primary_metric} {new_primary:.4f}, "
        f"{p.guardrail_metric} {new_guard:.4f}",
    }
    if champion is not None:
        old_primary = _num(champion, p.primary_metric)
        old_guard = _num(champion, p.guardrail_metric)
        need = old_primary + p.min_improvement
        checks["primary"] = {
            "passed": math.isnan(old_primary) or new_primary >= need,
            "detail": f"{p.primary_metric} {new_primary:.4f} vs champion {old_primary:.4f} "
            f"(need >= {need:.4f})",
        }
        floor = old_guard - p.recall_tolerance
        checks["guardrail"] = {
            "passed": math.isnan(old_guard) or new_guard >= floor,
            "detail": f"{p.guardrail_metric} {new_guard:.4f} vs champion {old_guard:.4f} "
            f"(need >= {floor:.4f})",
        }
    failed = [check["detail"] for check in checks.values() if not check["passed"]]
    if not failed:
        gain = (checks["primary"]["detail"] + "; " + checks["guardrail"]["detail"]
                if champion is not None else "no champion yet")
        return PromotionDecision(True, f"promoted: {gain}", checks)
    return PromotionDecision(False, "not promoted: " + "; ".join(failed), checks)
