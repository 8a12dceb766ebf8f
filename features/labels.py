"""Label events on the stream stage's side: validation.

A ``labels`` record is ``{transaction_id, card_id, label: fraud|genuine, source,
label_time}`` keyed by ``card_id`` (the design's contract); ``label_time`` is ISO-8601 UTC or
epoch milliseconds. Invalid records raise :class:`~infra.errors.InvalidInput` (the stage
dead-letters them to ``labels.dlq`` with the reason).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from features.core import Label
from infra.errors import InvalidInput

LABELS = ("fraud", "genuine")


def _label_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidInput("label_time must be ISO-8601 or epoch milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidInput("label_time must be finite")
        return int(value)
    if not isinstance(value, str):
        raise InvalidInput("label_time must be ISO-8601 or epoch milliseconds")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"label_time is not ISO-8601: {value[:40]!r}") from None
    if when.tzinfo is None:
        raise InvalidInput("label_time needs a timezone (UTC)")
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def parse_label(raw: bytes, max_bytes: int) -> Label:
    """A validated :class:`~features.core.Label` from a ``labels`` message."""
    if len(raw) > max_bytes:
        raise InvalidInput(f"payload too large: {len(raw)} bytes > {max_bytes}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("expected a JSON object")
    for name in ("transaction_id", "card_id"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise InvalidInput(f"invalid label: {name} must be a non-empty string")
    if data.get("label") not in LABELS:
        raise InvalidInput(f"invalid label: label must be one of {LABELS}")
    if "label_time" not in data:
        raise InvalidInput("invalid label: label_time is required")
    return Label(data["transaction_id"], data["card_id"], _label_ms(data["label_time"]),
                 data["label"] == "fraud")
