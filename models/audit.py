"""Append-only audit log of model alias moves (who moved which alias, when, why).

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
    new_version: str,
    metrics: dict[str, float] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The audit line for one alias move; ``now`` defaults to the current UTC time."""
    return {
        "time": (now or datetime.now(UTC)).isoformat(),
        "model": model,
        "alias": alias,
        "actor": actor,
        "reason": reason,
        "previous_version": previous_version,
        "new_version": new_version,
        "metrics": {k: (None if math.isnan(v) else float(v)) for k, v in (metrics or {}).items()},
    }


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
    return [
        r
        for r in records
        if (model is None or r["model"] == model) and (alias is None or r["alias"] == alias)
    ]
