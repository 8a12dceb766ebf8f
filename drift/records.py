"""Wire formats: ``scores`` records read as observations, ``drift`` records written.

``drift``: one record per column and window, keyed by column (feature name or ``score``).

Value (JSON)::

    {"window": {"start": ISO-8601 Z, "end": ISO-8601 Z (exclusive), "kind": "event_time" |
                "count", "rows": records in the window},
     "column": feature name or "score", "rows": finite values, "missing_rate": share,
     "psi", "ks_statistic", "ks_pvalue", "ks_pvalue_adjusted": numbers,
     "severity": "none" | "warn" | "alert", "evaluated": false when no verdict was possible,
     "reason": text, "drifting": every drifting column of the window,
     "reference_model_version": version whose profile is the reference,
     "scored_by": {model version: rows}, "thresholds": the thresholds applied}
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, NamedTuple

import numpy as np

from drift.detect import DriftThresholds, WindowReport
from drift.reference import SCORE
from drift.report import iso
from infra.errors import InvalidInput
from streams.rules import check_time_ms
from streams.serde import loads


class Observation(NamedTuple):
    """One ``scores`` record: event time, column values (NaN = missing), model version."""

    event_ms: int
    values: dict[str, float]
    version: str | None
    partition: int
    offset: int


def _event_ms(value: Any) -> int:
    """By the boundary's rules (:func:`streams.rules.check_time_ms`): no naive or local
    time, no overflow, within years 2000..2100."""
    try:
        return check_time_ms(value)
    except ValueError as exc:
        raise InvalidInput(f"event_time {str(value)[:40]!r}: {exc}") from None


def _reference_score(record: dict[str, Any]) -> Any:
    """The score comparable with the reference (the champion's profile): a canary-arm
    record's own score is the canary's, so its ``scores.champion`` is used instead."""
    if record.get("arm") == "canary":
        champion = (record.get("scores") or {}).get("champion")
        if champion is not None:
            return champion
    return record["score"]


def observation(raw: bytes | None, partition: int = -1, offset: int = -1) -> Observation:
    """A ``scores`` record as an observation; ``InvalidInput`` when it breaks the contract."""
    record = loads(raw or b"")
    try:
        values = {k: np.nan if v is None else float(v) for k, v in record["features"].items()}
        values[SCORE] = float(_reference_score(record))
        when = _event_ms(record["event_time"])
        batch = (record.get("model_version") or {}).get("batch")
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidInput(f"unusable score record: {exc!r}") from None
    return Observation(when, values, None if batch is None else str(batch), partition, offset)


def drift_records(
    report: WindowReport, thresholds: DriftThresholds, kind: str
) -> list[tuple[bytes, dict[str, Any]]]:
    """``(key, value)`` of every column of ``report``, features first, then ``score``."""
    window = {
        "start": iso(report.start_ms),
        "end": iso(report.end_ms),
        "kind": kind,
        "rows": report.rows,
    }
    shared = {
        "drifting": list(report.drifting),
        "reference_model_version": report.reference_version,
        "scored_by": dict(report.scored_by),
        "thresholds": {k: v for k, v in asdict(thresholds).items() if k != "skip"},
    }
    return [
        (
            c.column.encode(),
            {
                "window": window,
                "column": c.column,
                "rows": c.rows,
                "missing_rate": c.missing_rate,
                "psi": c.psi,
                "ks_statistic": c.ks_statistic,
                "ks_pvalue": c.ks_pvalue,
                "ks_pvalue_adjusted": c.ks_pvalue_adjusted,
                "severity": c.severity,
                "evaluated": c.evaluated,
                "reason": c.reason,
                **shared,
            },
        )
        for c in report.columns
    ]
