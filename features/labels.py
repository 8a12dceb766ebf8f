"""Label events: the one validator of topic ``labels`` (stream feature stage and learner).

A ``labels`` record is ``{transaction_id, card_id, label: fraud|genuine, source,
label_time}`` keyed by ``card_id`` (the design's contract). The rules are the boundary's
(:mod:`streams.rules`): ids are printable text, ``label_time`` is ISO-8601 with a UTC offset
or whole epoch milliseconds within years 2000..2100 (no overflow near year 1 / 9999, no
``1e300``), ``label`` is exactly ``"fraud"`` or ``"genuine"``, ``source`` optional text.
Types are strict; JSON must be UTF-8 without duplicate keys. Invalid records raise
:class:`~infra.errors.InvalidInput` naming the field; every consumer of ``labels``
dead-letters them to ``labels.dlq`` with that reason (``docs/validation.md``).
"""

from __future__ import annotations

from typing import Any

from features.core import Label
from infra.errors import InvalidInput
from streams.rules import check_id, check_time_ms, decode_object

LABELS = ("fraud", "genuine")
REQUIRED = ("transaction_id", "card_id", "label", "label_time")


def _field(name: str, check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise InvalidInput(f"invalid label: {name}: {exc}") from None


def validate_label(data: Any) -> Label:
    """A validated :class:`~features.core.Label` from a decoded ``labels`` record."""
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a JSON object, got {type(data).__name__}")
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        raise InvalidInput(f"invalid label: {', '.join(missing)}: Field required")
    tid = _field("transaction_id", check_id, data["transaction_id"])
    card = _field("card_id", check_id, data["card_id"])
    if not isinstance(data["label"], str) or data["label"] not in LABELS:
        raise InvalidInput(f"invalid label: label: must be one of {LABELS}, "
                           f"got {str(data['label'])[:40]!r}")
    if data.get("source") is not None:
        _field("source", check_id, data["source"])
    label_ms = _field("label_time", check_time_ms, data["label_time"])
    return Label(tid, card, label_ms, data["label"] == "fraud")


def parse_label(raw: bytes | str, max_bytes: int) -> Label:
    """A validated :class:`~features.core.Label` from a ``labels`` message value."""
    return validate_label(decode_object(raw, max_bytes))

