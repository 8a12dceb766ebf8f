"""Canary step policy (pure): 1% -> 10% -> 50% -> 100%, gated on live evidence.

At each step the canary arm is compared with the champion arm on the traffic since the
last step (:class:`~models.reports.ArmEvidence` of each). Gates, in order:

1. **errors**: the canary's error rate (records it failed to score) exceeds the champion's
   by more than ``max_error_excess`` -> fail.
2. **score distribution**: PSI of the canary's scores against the champion's (20 fixed
   bins of [0, 1]) above ``max_score_psi`` -> fail. The arms hold random card sets (hash
   routing), so a model that scores like the champion shows a small PSI; an inverted one a
   huge one. This assumes versions of comparable calibration (same training recipe); a
   recalibrated challenger needs a larger ``max_score_psi`` for its canary.
3. **alert rate**: the canary's alert-rate 95 % interval lies wholly outside
   [champion / ``alert_ratio``, champion x ``alert_ratio``] -> fail: analysts would be
   flooded, or the canary stopped alerting.
4. **rank agreement** (when the canary arm's records also carry the champion's score of
   the same transaction): Spearman correlation below ``min_rank_correlation`` -> fail. The
   surest early sign of a model that ranks backwards, whatever its calibration. The bar is
   0, not higher: most transactions are genuine with scores near 0, ordered by noise, so
   two equally good models agree only loosely (on simulated data a challenger with row
   subsampling, average precision equal to the champion's, gave 0.35-0.44 on 300 shared
   rows, p5-p50; one of depth 4, 0.75-0.80), while an inverted model gives -0.38.
5. **precision and recall on matured labels**: with at least ``min_frauds`` matured frauds
   on both arms, the 95 % upper bound of the difference canary - champion (Newcombe's
   interval, which counts both arms' uncertainty) falls below ``-label_tolerance`` ->
   fail. Labels mature days after the decision, so this gate is *required* (not just
   applied when possible) only for steps to ``label_gate_from`` share and above; before
   that, too few labels means "not judged yet".

A failed gate means **rollback** (automatic, the canary alias is removed); too little
traffic (``min_decisions`` per arm) or a required but unjudged label gate means **hold**
(stay at this share, try again later); all passed means **step** to the next share, or
**complete** when the next share is 100%: the canary becomes champion (so takes all
traffic) and the canary alias is removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from drift.stats import bin_fractions, psi
from infra.settings import Settings
from models.reports import ArmEvidence, newcombe

STEPS: tuple[float, ...] = (0.01, 0.10, 0.50, 1.0)
Action = Literal["step", "hold", "rollback", "complete"]


@dataclass(frozen=True)
class CanaryPolicy:
    """Gate thresholds (``FRAUDSTREAM_CANARY_*``); defaults and why: ``docs/models.md``."""

    steps: tuple[float, ...] = STEPS
    min_decisions: int = 200
    max_error_excess: float = 0.001
    max_score_psi: float = 0.25
    alert_ratio: float = 2.0
    min_rank_correlation: float = 0.0
    min_frauds: int = 20
    label_tolerance: float = 0.05
    label_gate_from: float = 0.50

    def __post_init__(self) -> None:
        if not self.steps or list(self.steps) != sorted(self.steps) or self.steps[-1] != 1.0:
            raise ValueError("steps must ascend and end at 1.0")
        if self.alert_ratio < 1 or self.min_decisions < 1 or self.min_frauds < 1:
            raise ValueError("need alert_ratio >= 1, min_decisions >= 1, min_frauds >= 1")

    def next_share(self, share: float) -> float:
        """The step after ``share`` (the first step when below it)."""
        for step in self.steps:
            if step > share + 1e-12:
                return step
        return 1.0


@dataclass(frozen=True)
class StepDecision:
    action: Action
    share: float  # current share
    next_share: float  # share after this decision (0 after a rollback)
    reason: str
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


def canary_policy_from(settings: Settings) -> CanaryPolicy:
    """The gate thresholds of the ``FRAUDSTREAM_CANARY_*`` settings."""
    return CanaryPolicy(
        min_decisions=settings.canary_min_decisions,
        max_error_excess=settings.canary_max_error_excess,
        max_score_psi=settings.canary_max_score_psi,
        alert_ratio=settings.canary_alert_ratio,
        min_rank_correlation=settings.canary_min_rank_correlation,
        min_frauds=settings.canary_min_frauds,
        label_tolerance=settings.canary_label_tolerance,
    )


def _check(passed: bool | None, detail: str) -> dict[str, Any]:
    """``passed`` None: not judged (too little evidence)."""
    return {"passed": passed, "detail": detail}


SCORE_CUTS = tuple(np.linspace(0.0, 1.0, 21)[1:-1])  # 20 equal-width bins over [0, 1]


def score_psi(champion: np.ndarray, canary: np.ndarray) -> float:
    """PSI of the canary's scores against the champion's on 20 fixed bins of [0, 1].

    Fixed bins, not the champion's quantiles: a boosted model gives many transactions the
    very same score, so quantile cuts sit on those ties and a second model whose scores
    differ by 1e-6 would land in the next bin and look wholly different.
    """
    return psi(bin_fractions(champion, SCORE_CUTS), bin_fractions(canary, SCORE_CUTS))


def gate_checks(champion: ArmEvidence, canary: ArmEvidence,
                policy: CanaryPolicy) -> dict[str, dict[str, Any]]:
    """Each gate's outcome (see module doc)."""
    checks: dict[str, dict[str, Any]] = {}
    c_err, k_err = champion.error_rate.value, canary.error_rate.value
    excess = (k_err if not math.isnan(k_err) else 0.0) - (c_err if not math.isnan(c_err) else 0.0)
    checks["errors"] = _check(excess <= policy.max_error_excess,
                              f"error rate {k_err:.4f} vs champion {c_err:.4f} "
                              f"(allowed excess {policy.max_error_excess})")
    value = score_psi(champion.scores, canary.scores)
    checks["score_distribution"] = _check(value <= policy.max_score_psi,
                                          f"score PSI vs champion {value:.3f} "
                                          f"(max {policy.max_score_psi})")
    base = champion.alert_rate.value
    low, high = canary.alert_rate.ci
    lo_ok, hi_ok = base / policy.alert_ratio, base * policy.alert_ratio
    checks["alert_rate"] = _check(high >= lo_ok and low <= hi_ok,
                                  f"alert rate {canary.alert_rate.value:.4f} "
                                  f"[{low:.4f}, {high:.4f}] vs champion {base:.4f} "
                                  f"(allowed {lo_ok:.4f}-{hi_ok:.4f})")
    paired = canary.paired
    if paired is not None and paired.size >= policy.min_decisions:
        rho = float(stats.spearmanr(paired, canary.scores).statistic)
        checks["rank_agreement"] = _check(bool(rho >= policy.min_rank_correlation),
                                          f"Spearman vs champion on the same rows {rho:.3f} "
                                          f"(min {policy.min_rank_correlation})")
    else:
        checks["rank_agreement"] = _check(None, "no paired champion scores")
    enough = min(champion.matured_frauds, canary.matured_frauds) >= policy.min_frauds
    for name in ("recall", "precision"):
        mine, theirs = getattr(canary, name), getattr(champion, name)
        if not enough or mine.trials == 0 or theirs.trials == 0:
            checks[name] = _check(None, f"{canary.matured_frauds} / {champion.matured_frauds} "
                                  f"matured frauds (need {policy.min_frauds} per arm)")
            continue
        low, high = newcombe(mine, theirs)
        checks[name] = _check(high >= -policy.label_tolerance,
                              f"{name} {mine.value:.4f} vs champion {theirs.value:.4f}: "
                              f"difference [{low:+.4f}, {high:+.4f}] (fails below "
                              f"-{policy.label_tolerance})")
    return checks


def decide_step(share: float, champion: ArmEvidence, canary: ArmEvidence,
                policy: CanaryPolicy | None = None) -> StepDecision:
    """What to do with a canary at ``share`` given the arms' evidence since the last step."""
    p = policy or CanaryPolicy()
    if min(champion.decisions, canary.decisions) < p.min_decisions:
        return StepDecision("hold", share, share,
                            f"hold at {share:.0%}: {canary.decisions} canary / "
                            f"{champion.decisions} champion decisions (need {p.min_decisions})")
    checks = gate_checks(champion, canary, p)
    failed = [f"{k}: {c['detail']}" for k, c in checks.items() if c["passed"] is False]
    if failed:
        return StepDecision("rollback", share, 0.0,
                            f"rolled back at {share:.0%}: " + "; ".join(failed), checks)
    target = p.next_share(share)
    unjudged = [k for k in ("recall", "precision") if checks[k]["passed"] is None]
    if unjudged and target >= p.label_gate_from:
        return StepDecision("hold", share, share,
                            f"hold at {share:.0%}: label gates not judged yet "
                            f"({checks['recall']['detail']})", checks)
    if target >= 1.0:
        return StepDecision("complete", share, 1.0, f"all gates passed at {share:.0%}: "
                            "step to 100%, the canary becomes champion", checks)
    return StepDecision("step", share, target,
                        f"all gates passed at {share:.0%}: step to {target:.0%}", checks)
