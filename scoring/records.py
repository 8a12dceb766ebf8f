"""The records the scorer publishes (pure): one in ``scores`` per transaction, one in
``alerts`` per review/decline. Their fields are the external contract (DESIGN.md, topics)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SUMMARY_FIELDS = (
    "event_time",
    "card_id",
    "merchant_id",
    "terminal_id",
    "amount",
    "currency",
    "channel",
    "country",
    "mcc",
)


def score_record(
    record: dict[str, Any],
    *,
    score: float,
    decision: str,
    versions: dict[str, str | None],
    feature_names: Sequence[str],
    vector: Sequence[float],
    latency_ms: int,
    parts: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """The ``scores`` record: the decision, the model versions and the features it used.

    ``score`` is the model's output unrounded: the drift monitor bins it against the
    model's reference profile, whose bin edges are exact model outputs (a boosted model
    gives many transactions the very same score), and a rounded score lands on the wrong
    side of such an edge (see ``tests/unit/test_drift_score_precision.py``).
    """
    out: dict[str, Any] = {
        "transaction_id": record["transaction_id"],
        "event_time": record["event_time"],
        "card_id": record["card_id"],
        "score": float(score),
        "decision": decision,
        "model_version": versions,
        "features": dict(zip(feature_names, vector, strict=True)),
        "latency_ms": latency_ms,
    }
    if parts is not None:
        out["scores"] = {k: None if v is None else round(v, 6) for k, v in parts.items()}
    return out


def alert_record(
    score: dict[str, Any], record: dict[str, Any], reasons: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ``alerts`` record for analysts: decision, score, reasons, versions, summary, and
    the arm (``champion`` or ``canary``) when the scores record has one."""
    out: dict[str, Any] = {
        "transaction_id": score["transaction_id"],
        "decision": score["decision"],
        "score": score["score"],
        "reasons": reasons,
        "model_version": score["model_version"],
        "latency_ms": score["latency_ms"],
        "transaction": {k: record.get(k) for k in SUMMARY_FIELDS},
    }
    if "arm" in score:
        out["arm"] = score["arm"]
    return out


@dataclass
class BatchOutcome:
    """What one micro-batch produced; counted only once its Kafka transaction committed."""

    decisions: list[str] = field(default_factory=list)
    latencies_ms: list[int] = field(default_factory=list)
    alerts: int = 0
    dead_letter_reasons: list[str] = field(default_factory=list)
