"""Request and response bodies of the REST API, and the label record the API produces.

Validation is not duplicated here: a transaction goes through
:func:`streams.schema.parse_transaction` and a label through
:func:`features.labels.parse_label`, the same validators the stream uses, so the API
accepts exactly what the workers accept. What is API-only is checked here: the label's
``source`` and ``note``, which fields a caller may send (the ``actor`` is never one of
them: it is the name of the caller's key), and the alias request (strict types, no
coercion).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from features.labels import parse_label
from scoring.api_http import FieldError, decode_object

SOURCES = ("chargeback", "analyst", "customer")
LABEL_FIELDS = ("transaction_id", "card_id", "label", "source", "label_time", "note")
MAX_NOTE_CHARS = 500


class LabelIn(BaseModel):
    """A verdict on one transaction (fields as in topic ``labels``); documents the body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    transaction_id: str = Field(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")
    card_id: str = Field(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")
    label: Literal["fraud", "genuine"]
    source: Literal["chargeback", "analyst", "customer"] = "analyst"
    label_time: str | None = Field(
        default=None, description="ISO-8601 with a timezone (or epoch ms); default: now")
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds; InvalidInput if unrepresentable."""
    try:
        when = datetime.fromtimestamp(ms / 1000.0, tz=UTC)
    except (OverflowError, ValueError, OSError):
        raise FieldError("label_time", "out of range") from None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def label_record(raw: bytes, actor: str, max_bytes: int, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """The ``labels`` record for a verdict body sent by ``actor`` (a key's name).

    Raises :class:`InvalidInput` naming the field. ``label_time`` defaults to ``now``.
    """
    data = decode_object(raw)
    for name in data:
        if name not in LABEL_FIELDS:
            hint = " (the actor is your API key's name)" if name == "actor" else ""
            raise FieldError(name[:64] or "body", f"unknown field{hint}")
    source = data.get("source", "analyst")
    if not isinstance(source, str) or source not in SOURCES:
        raise FieldError("source", f"must be one of {', '.join(SOURCES)}")
    note = data.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        raise FieldError("note", f"must be a string of at most {MAX_NOTE_CHARS} characters")
    if data.get("label_time") is None:
        stamp = (now or datetime.now(tz=UTC)).astimezone(UTC)
        data["label_time"] = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        label = parse_label(json.dumps(data).encode(), max_bytes)
    except (OverflowError, ValueError, TypeError) as exc:  # a time the validator let through
        raise FieldError("label_time", f"out of range ({str(exc)[:80]})") from None
    record: dict[str, Any] = {
        "transaction_id": label.transaction_id, "card_id": label.card_id,
        "label": "fraud" if label.fraud else "genuine", "source": source,
        "label_time": iso_ms(label.label_ms), "actor": actor,
    }
    if note:
        record["note"] = note
    return record


class LabelOut(BaseModel):
    accepted: bool
    topic: str
    label: dict[str, Any]


class Reason(BaseModel):
    code: str = Field(description="feature name")
    value: float
    contribution: float = Field(description="TreeSHAP log-odds contribution")


class ScoreOut(BaseModel):
    transaction_id: str
    score: float = Field(description="combined fraud probability the decision is made on")
    scores: dict[str, float | None] = Field(description="batch (XGBoost) and online (River)")
    decision: Literal["approve", "review", "decline"]
    reasons: list[Reason] = Field(description="top contributions; alerts only")
    model_version: dict[str, str | None]
    published: bool = Field(description="also published to topic transactions")


class AliasRequest(BaseModel):
    """Move an alias; the audit's actor is the caller's key name (not a field)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    alias: Literal["champion", "challenger", "shadow"]
    reason: str = Field(min_length=3, max_length=500)


class ErrorItem(BaseModel):
    field: str = Field(description="body, a header, a parameter or a field of the body")
    message: str


class ErrorOut(BaseModel):
    detail: str = Field(description="'field: message' for each error")
    errors: list[ErrorItem]


def body_schema(model: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that the route reads itself."""
    schema = model if isinstance(model, dict) else model.model_json_schema()
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}
