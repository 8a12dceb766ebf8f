"""A canary's live evidence: the ``scores`` records since its last step, with matured labels.

``fraudstream models canary step`` (and ``models report`` without ``--decisions`` while a
canary runs) read:

- the ``scores`` records written since the canary's last ``canary_start`` or
  ``canary_step`` audit record (Kafka timestamps; a hold does not restart the window, so
  evidence accumulates until the canary moves), each carrying its ``arm`` (a record
  without one is the champion's: a scorer that does not route yet);
- the ``labels`` topic (:func:`models.retrain_offline.read_label_topic`).

**Matured labels**: a transaction with a fraud label is fraud whenever the label came; one
without is genuine only once it is older than ``retrain_maturity_days`` (frauds are
reported late, genuine transactions are never labeled), and unknown (NaN) before that.

``models report`` without a canary reads the ``scores`` records since ``--since`` or, by
default, since the ``shadow`` alias last moved (:func:`report_window_ms`).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from infra.errors import ModelError
from infra.settings import Settings
from models import audit
from models.reports import decisions_frame

if TYPE_CHECKING:
    from models.registry import ModelRegistry

MOVES = ("canary_start", "canary_step")


def window_start_ms(records: list[dict[str, Any]], version: str) -> int | None:
    """When the running canary last moved (ms), from its audit records; None if never."""
    moved = [r for r in records if r.get("action") in MOVES and r.get("new_version") == version]
    return int(datetime.fromisoformat(moved[-1]["time"]).timestamp() * 1000) if moved else None


def _event_ms(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(pd.Timestamp(value).value // 1_000_000)
    except (ValueError, TypeError):
        return math.nan


def matured_labels(records: list[dict[str, Any]], frauds: set[str], now_ms: float,
                   maturity_days: float) -> dict[str, int]:
    """Transaction id -> label for the records whose label is known (module doc); pure."""
    cutoff = now_ms - maturity_days * 86_400_000
    out = {}
    for r in records:
        tid = r["transaction_id"]
        if tid in frauds:
            out[tid] = 1
        elif _event_ms(r.get("event_time")) <= cutoff:
            out[tid] = 0
    return out


def report_window_ms(registry: ModelRegistry, name: str) -> int | None:
    """Where a report without ``--since`` starts: the running canary's window, else the
    ``shadow`` alias's last move (its records carry that shadow's scores), else None."""
    version = registry.alias_version("canary", name)
    if version is not None:
        return window_start_ms(audit.read(registry.audit_path, model=name, alias="canary"),
                               version)
    moves = audit.read(registry.audit_path, model=name, alias="shadow")
    if not moves:
        return None
    return int(datetime.fromisoformat(moves[-1]["time"]).timestamp() * 1000)


def live_decisions(settings: Settings, registry: ModelRegistry, *, now_ms: float | None = None,
                   timeout: float = 60.0, since_ms: int | None = None,
                   canary: bool = True) -> pd.DataFrame:
    """The decisions frame of the running canary's window (module doc); with
    ``canary=False``, of the ``scores`` records since ``since_ms`` (None: all of them)."""
    from models.retrain_offline import read_label_topic
    from models.topic_read import read_topic

    name = settings.model_name
    if canary:
        version = registry.alias_version("canary", name)
        if version is None:
            raise ModelError(f"{name} has no canary running")
        since_ms = window_start_ms(audit.read(registry.audit_path, model=name,
                                              alias="canary"), version)
    records = []
    for value, _ in read_topic(settings, settings.topic_scores, since_ms=since_ms,
                               timeout=timeout):
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict) and "transaction_id" in record and "score" in record:
            records.append(record)
    labels = read_label_topic(settings, timeout).labels
    frauds = set(labels.loc[labels["is_fraud"], "transaction_id"].astype(str))
    now = now_ms if now_ms is not None else datetime.now(UTC).timestamp() * 1000
    return decisions_frame(records, matured_labels(records, frauds, now,
                                                   settings.retrain_maturity_days))
