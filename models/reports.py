"""A/B (champion vs canary arm) and shadow reports from decision records (pure).

Input is a frame of decisions, one row per transaction, with columns:

- ``arm``: ``champion`` or ``canary`` (which model's score was acted on);
- ``score`` (the acted-on score) and ``alert`` (bool: review or decline);
- ``error`` (bool, optional): the arm failed to score it (dead-lettered, fell back);
- ``is_fraud`` (optional): the **matured** label, NaN while still maturing;
- for shadow: ``shadow_score`` and ``shadow_alert``;
- ``champion_score`` (optional, canary arm): the champion's score of the same transaction,
  when the worker scores canary-arm records with both models (it enables the canary's
  rank-agreement gate).

:func:`decisions_frame` builds it from ``scores`` records plus matured labels.

**Confidence intervals** are Wilson score intervals (95 % by default): unlike the normal
approximation they stay inside [0, 1] and stay honest for the handful of frauds a 1 %
canary arm sees, which is exactly when a decision is most tempting and least supported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.metrics import average_precision

Z95 = 1.959963984540054
ALERTS = ("review", "decline")


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; ``(nan, nan)`` without trials.

    >>> [round(x, 4) for x in wilson(8, 10)]
    [0.4902, 0.9433]
    """
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(a: Rate, b: Rate) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) of the difference ``a - b`` of two
    independent proportions, from each one's Wilson interval; ``(nan, nan)`` when either has
    no trials.

    >>> [round(x, 4) for x in newcombe(Rate(56, 70), Rate(48, 80))]
    [0.0524, 0.3339]
    """
    if a.trials <= 0 or b.trials <= 0:
        return math.nan, math.nan
    (l1, u1), (l2, u2) = a.ci, b.ci
    d = a.value - b.value
    return (d - math.sqrt((a.value - l1) ** 2 + (u2 - b.value) ** 2),
            d + math.sqrt((u1 - a.value) ** 2 + (b.value - l2) ** 2))


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson interval."""

    successes: int
    trials: int

    @property
    def value(self) -> float:
        return self.successes / self.trials if self.trials else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        return wilson(self.successes, self.trials)

    def as_dict(self) -> dict[str, Any]:
        low, high = self.ci
        return {"value": self.value, "low": low, "high": high, "n": self.trials}


@dataclass(frozen=True)
class ArmEvidence:
    """What one arm did: its scores and alerts, errors, and matured labels (NaN = unknown)."""

    scores: np.ndarray
    alerts: np.ndarray
    labels: np.ndarray
    errors: int = 0
    paired: np.ndarray | None = None  # canary arm: the champion's scores of the same rows

    @property
    def decisions(self) -> int:
        return int(self.scores.size)

    @property
    def alert_rate(self) -> Rate:
        return Rate(int(self.alerts.sum()), self.decisions)

    @property
    def error_rate(self) -> Rate:
        return Rate(self.errors, self.decisions + self.errors)

    def _matured(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        known = ~np.isnan(self.labels)
        return self.labels[known].astype(np.int8), self.alerts[known], self.scores[known]

    @property
    def recall(self) -> Rate:
        y, alerts, _ = self._matured()
        return Rate(int((alerts & (y == 1)).sum()), int(y.sum()))

    @property
    def precision(self) -> Rate:
        y, alerts, _ = self._matured()
        return Rate(int((alerts & (y == 1)).sum()), int(alerts.sum()))

    @property
    def matured_frauds(self) -> int:
        return int(np.nansum(self.labels))


def arm_evidence(frame: pd.DataFrame, arm: str) -> ArmEvidence:
    """The evidence of ``arm`` in a decisions frame (see module doc)."""
    rows = frame.loc[frame["arm"] == arm]
    errors = rows["error"].fillna(False).astype(bool) if "error" in rows else None
    scored = rows.loc[~errors] if errors is not None else rows
    labels = (scored["is_fraud"].astype(float).to_numpy() if "is_fraud" in scored
              else np.full(len(scored), np.nan))
    paired = (scored["champion_score"].astype(float).to_numpy()
              if "champion_score" in scored and scored["champion_score"].notna().any() else None)
    return ArmEvidence(
        scores=scored["score"].astype(float).to_numpy(),
        alerts=scored["alert"].astype(bool).to_numpy(),
        labels=labels,
        errors=int(errors.sum()) if errors is not None else 0,
        paired=paired,
    )


def ab_report(frame: pd.DataFrame, arms: Iterable[str] = ("champion", "canary")) -> dict[str, Any]:
    """Per-arm decisions, alert rate, error rate, precision and recall on matured labels
    (each with a 95 % Wilson interval) and average precision on matured labels."""
    out: dict[str, Any] = {}
    for arm in arms:
        ev = arm_evidence(frame, arm)
        y, _, scores = ev._matured()
        out[arm] = {
            "decisions": ev.decisions,
            "matured_labels": int(y.size),
            "matured_frauds": int(y.sum()),
            "alert_rate": ev.alert_rate.as_dict(),
            "error_rate": ev.error_rate.as_dict(),
            "precision": ev.precision.as_dict(),
            "recall": ev.recall.as_dict(),
            "average_precision": average_precision(y, scores) if y.size else math.nan,
        }
    return out


def shadow_report(frame: pd.DataFrame) -> dict[str, Any]:
    """Champion (acted-on) vs shadow on the same transactions: alert agreement, score
    correlation (Pearson and Spearman), the alerts each raised, and frauds each caught."""
    rows = frame.dropna(subset=["shadow_score"])
    live, shadow = rows["score"].astype(float), rows["shadow_score"].astype(float)
    a, b = rows["alert"].astype(bool).to_numpy(), rows["shadow_alert"].astype(bool).to_numpy()
    y = rows["is_fraud"].astype(float).to_numpy() if "is_fraud" in rows else np.full(a.size, np.nan)
    fraud = y == 1
    both_defined = a.size > 1 and live.std() > 0 and shadow.std() > 0
    return {
        "transactions": int(a.size),
        "agreement": Rate(int((a == b).sum()), int(a.size)).as_dict(),
        "pearson": float(live.corr(shadow)) if both_defined else math.nan,
        "spearman": float(live.corr(shadow, method="spearman")) if both_defined else math.nan,
        "alerts": {"live": int(a.sum()), "shadow": int(b.sum()), "both": int((a & b).sum()),
                   "live_only": int((a & ~b).sum()), "shadow_only": int((~a & b).sum())},
        "matured_frauds": int(fraud.sum()),
        "frauds_caught": {"live": int((a & fraud).sum()), "shadow": int((b & fraud).sum())},
    }


def decisions_frame(
    score_records: Iterable[dict[str, Any]], labels: dict[str, int] | None = None
) -> pd.DataFrame:
    """Flatten ``scores`` records into a decisions frame; ``labels`` maps a transaction id
    to its matured label (absent = not matured). A record without ``arm`` is the champion's;
    the shadow's score and decision come from the record's ``shadow`` object (``version``,
    ``score``, ``decision``), the champion's paired score from ``scores.champion``.
    """
    rows = []
    labels = labels or {}
    for r in score_records:
        parts = r.get("scores") or {}
        shadow = r.get("shadow") or {}
        rows.append({
            "transaction_id": r["transaction_id"],
            "arm": r.get("arm", "champion"),
            "score": float(r["score"]),
            "alert": r.get("decision") in ALERTS,
            "error": bool(r.get("error", False)),
            "shadow_score": shadow.get("score"),
            "champion_score": parts.get("champion"),
            "shadow_alert": shadow.get("decision") in ALERTS,
            "is_fraud": float(labels[r["transaction_id"]]) if r["transaction_id"] in labels
            else math.nan,
        })
    return pd.DataFrame(rows)


def format_ab(report: dict[str, Any]) -> str:
    """A fixed-width table of :func:`ab_report`."""
    def cell(rate: dict[str, Any]) -> str:
        if math.isnan(rate["value"]):
            return "n/a"
        return f"{rate['value']:.4f} [{rate['low']:.4f}, {rate['high']:.4f}]"

    lines = [f"{'arm':<10} {'decisions':>9} {'frauds':>6}  {'alert rate':<26} "
             f"{'precision':<26} {'recall':<26}"]
    for arm, r in report.items():
        lines.append(f"{arm:<10} {r['decisions']:>9} {r['matured_frauds']:>6}  "
                     f"{cell(r['alert_rate']):<26} {cell(r['precision']):<26} "
                     f"{cell(r['recall']):<26}")
    return "\n".join(lines)
