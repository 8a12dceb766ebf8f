"""Append-only audit log of model alias moves (who moved which alias, when, why, how).

``action`` says what kind of move it was: ``set`` (a plain move), ``register``,
``promote``, ``rollback``, ``canary_start``, ``canary_step``, ``canary_rollback``,
``canary_abort``, ``canary_complete``; ``new_version`` is null when the alias was removed.
Records written before ``action`` existed read as ``set``. One-command rollback replays this
log (:func:`models.rollout.rollback_target`), so it is the alias's history, not only a log.

One JSON object per line in ``state_dir/audit/model_aliases.jsonl``; lines are written with
a single ``write`` in append mode, so concurrent writers on one local file system do not
interleave. NaN metrics are written as ``null`` to keep every line strict JSON.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.settings import Settings


def audit_path(settings: Settings) -> Path:
    return settings.state_dir / "audit" / "model_aliases.jsonl"


def alias_record(
    model: str,
    alias: str,
    actor: str,
    reason: str,
    previous_version: str | None,
    new_version: str | None,
    metrics: dict[str, float] | None = None,
    now: datetime | None = None,
    *,
    action: str = "set",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit line for one alias move; ``now`` defaults to the current UTC time."""
    record = {
        "time": (now or datetime.now(UTC)).isoformat(),
        "model": model,
        "alias": alias,
        "action": action,
        "actor": actor,
        "reason": reason,
        "previous_version": previous_version,
        "new_version": new_version,
        "metrics": {k: (None if math.isnan(v) else float(v)) for k, v in (metrics or {}).items()},
    }
    if extra:
        record["extra"] = _finite(extra)
    return record


def _finite(value: Any) -> Any:
    """``value`` with NaN/inf floats as None, so the line stays strict JSON."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    with path.open("a", encoding="utf-8") as out:
        out.write(line)


def read(path: Path, model: str | None = None, alias: str | None = None) -> list[dict[str, Any]]:
    """Records in write order, optionally only those of one model and/or alias."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    for r in records:
        r.setdefault("action", "set")
    return [
        r
        for r in records
        if (model is None or r["model"] == model) and (alias is None or r["alias"] == alias)
    ]
