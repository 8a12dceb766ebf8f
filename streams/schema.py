"""The ``Transaction`` event: the contract with upstream services.

Validation is strict on what scoring relies on (types, ranges, required fields, size) and
lenient on the rest (unknown optional fields are ignored, so upstream can add fields first).
:func:`parse_transaction` is the one entry point for raw bytes: it raises
:class:`~infra.errors.InvalidInput` with a human-readable reason, which workers route to the
dead-letter topic and the API maps to a 4xx.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from infra.errors import InvalidInput

SCHEMA_VERSION = 1
MAX_AMOUNT = 1_000_000.0
MAX_PAYLOAD_BYTES = 16 * 1024
# Event times outside this range are absurd for card payments (year 2000 .. 2100).
MIN_EVENT_MS = 946_684_800_000
MAX_EVENT_MS = 4_102_444_800_000

# Published in the JSON Schema's ``examples``; unit tests check that each one validates.
EXAMPLE_TRANSACTIONS: tuple[dict[str, Any], ...] = (
    {
        "transaction_id": "tx-000001",
        "event_time": "2024-05-01T12:30:00Z",
        "card_id": "card-42",
        "merchant_id": "m-1001",
        "terminal_id": "t-7",
        "amount": 59.9,
        "currency": "EUR",
        "channel": "pos",
        "country": "FR",
        "mcc": "5411",
        "schema_version": 1,
    },
    {
        "transaction_id": "tx-000002",
        "event_time": 1714566600000,
        "card_id": "card-42",
        "merchant_id": "m-2002",
        "amount": 1250.0,
        "currency": "USD",
        "channel": "ecom",
        "country": "US",
        "mcc": 5732,
        "device_id": "dev-9f3a",
    },
)

Channel = Literal["pos", "ecom", "atm", "moto"]
_ID = r"^[A-Za-z0-9_.:\-]{1,64}$"
# The published JSON Schema must accept what the validator accepts (epoch ms, integer mcc).
_EventTime = Annotated[
    datetime,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "minimum": MIN_EVENT_MS, "maximum": MAX_EVENT_MS},
            ]
        }
    ),
]
_Mcc = Annotated[
    str,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^[0-9]{4}$"},
                {"type": "integer", "minimum": 0, "maximum": 9999},
            ]
        }
    ),
]


class Transaction(BaseModel):
    """A card transaction as published to topic ``transactions`` (keyed by ``card_id``)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    transaction_id: str = Field(pattern=_ID)
    event_time: _EventTime = Field(description="UTC; ISO-8601 string or epoch milliseconds")
    card_id: str = Field(pattern=_ID)
    merchant_id: str = Field(pattern=_ID)
    terminal_id: str | None = Field(default=None, pattern=_ID)
    amount: float = Field(
        gt=0.0, le=MAX_AMOUNT, allow_inf_nan=False, description="in major units of currency"
    )
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    channel: Channel = "pos"
    country: str = Field(pattern=r"^[A-Z]{2}$")
    mcc: _Mcc = Field(default="5999", pattern=r"^[0-9]{4}$")
    device_id: str | None = Field(default=None, pattern=_ID)
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)

    @field_validator("event_time", mode="before")
    @classmethod
    def _event_time(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("event_time must be ISO-8601 or epoch milliseconds")
        if isinstance(value, int | float):
            if not math.isfinite(value) or not MIN_EVENT_MS <= value <= MAX_EVENT_MS:
                raise ValueError("epoch milliseconds out of range (years 2000-2100)")
            return datetime.fromtimestamp(value / 1000.0, tz=UTC)
        return value

    @field_validator("event_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("event_time needs a timezone (UTC); naive times are ambiguous")
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:59-01:00 has no UTC datetime
            raise ValueError("event_time out of range (years 2000-2100)") from None
        ms = value.timestamp() * 1000.0
        if not MIN_EVENT_MS <= ms <= MAX_EVENT_MS:
            raise ValueError("event_time out of range (years 2000-2100)")
        return value

    @field_validator("amount", "schema_version", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # JSON true/false would otherwise pass as 1/0
            raise ValueError("must be a number, not a boolean")
        return value

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("amount must be finite")
        return value

    @field_validator("mcc", mode="before")
    @classmethod
    def _mcc(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:04d}"
        return value

    @property
    def event_ms(self) -> int:
        """Event time as integer epoch milliseconds (what feature math uses)."""
        return int(round(self.event_time.timestamp() * 1000))

    def to_record(self) -> dict[str, Any]:
        """JSON-ready dict with ``event_time`` as ISO-8601 UTC."""
        record = self.model_dump(mode="json")
        record["event_time"] = self.event_time.isoformat().replace("+00:00", "Z")
        return record


def _first_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_transaction(raw: bytes | str, max_bytes: int = MAX_PAYLOAD_BYTES) -> Transaction:
    """Decode and validate one raw message; raise :class:`InvalidInput` with the reason."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise InvalidInput(f"payload too large: {size} bytes > {max_bytes}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad UTF-8/JSON, too deep, 4300+ digit ints
        raise InvalidInput(f"malformed JSON: {exc}") from None
    return validate_transaction(data)


def validate_transaction(data: Any) -> Transaction:
    """Validate an already-decoded object; raise :class:`InvalidInput` with the reason."""
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a JSON object, got {type(data).__name__}")
    try:
        return Transaction.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid transaction: {_first_error(exc)}") from None


def transaction_json_schema() -> dict[str, Any]:
    """The JSON Schema published for upstream teams (``fraudstream schema``)."""
    schema = Transaction.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"fraudstream/transaction/v{SCHEMA_VERSION}"
    schema["examples"] = [dict(example) for example in EXAMPLE_TRANSACTIONS]
    return schema
