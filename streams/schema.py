"""The ``Transaction`` event: the contract with upstream services.

Validation is strict on what scoring relies on (types, ranges, required fields, size) and
lenient on the rest (unknown optional fields are ignored, so upstream can add fields first).
The value rules (ids, amounts, times, JSON) live in :mod:`streams.rules` and are shared with
labels and training files; types are strict: no text is read as a number (``"12.50"`` is
refused), no number as text. The one documented conversion: ``mcc`` may be an integer
0..9999, read as its 4-digit code (``742`` -> ``"0742"``).

:func:`parse_transaction` is the one entry point for raw bytes: it raises
:class:`~infra.errors.InvalidInput` with a human-readable reason naming the field, which
workers route to the dead-letter topic and the API maps to a 4xx. The model itself carries
the same rules, so FastAPI bodies validated through it get them too.
"""

from __future__ import annotations

from datetime import datetime
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
from streams.rules import (
    MAX_AMOUNT,
    MAX_EVENT_MS,
    MAX_ID_CHARS,
    MIN_EVENT_MS,
    MIN_POSITIVE_AMOUNT,
    check_amount,
    check_id,
    check_time,
    decode_object,
)

__all__ = [
    "EXAMPLE_TRANSACTIONS", "MAX_AMOUNT", "MAX_EVENT_MS", "MAX_ID_CHARS", "MAX_PAYLOAD_BYTES",
    "MIN_EVENT_MS", "MIN_POSITIVE_AMOUNT", "SCHEMA_VERSION", "Transaction", "parse_transaction",
    "transaction_json_schema", "validate_transaction",
]

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 16 * 1024

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
# JSON Schema can only approximate "printable" (str.isprintable); the validator is exact.
_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS,
              "pattern": r"^[^\u0000-\u001f\u007f-\u009f]+$",
              "description": f"printable text, 1-{MAX_ID_CHARS} characters"}
_Id = Annotated[str, WithJsonSchema(_ID_SCHEMA)]
_OptId = Annotated[str | None, WithJsonSchema({"anyOf": [_ID_SCHEMA, {"type": "null"}]})]
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
# Zero, or at least the smallest minor unit: what the validator accepts, exactly.
_Amount = Annotated[
    float,
    WithJsonSchema({"anyOf": [{"type": "number", "const": 0},
                              {"type": "number", "minimum": MIN_POSITIVE_AMOUNT,
                               "maximum": MAX_AMOUNT}]}),
]
_ID_FIELDS = ("transaction_id", "card_id", "merchant_id", "terminal_id", "device_id")


class Transaction(BaseModel):
    """A card transaction as published to topic ``transactions`` (keyed by ``card_id``)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    transaction_id: _Id
    event_time: _EventTime = Field(description="UTC; ISO-8601 string or epoch milliseconds")
    card_id: _Id
    merchant_id: _Id
    terminal_id: _OptId = None
    amount: _Amount = Field(
        description=f"in major units of currency: 0 (card verification) or "
                    f"{MIN_POSITIVE_AMOUNT} .. {MAX_AMOUNT:.0f}",
    )
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    channel: Channel = "pos"
    country: str = Field(pattern=r"^[A-Z]{2}$")
    mcc: _Mcc = Field(default="5999", pattern=r"^[0-9]{4}$")
    device_id: _OptId = None
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)

    @field_validator(*_ID_FIELDS, mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        return value if value is None else check_id(value)

    @field_validator("event_time", mode="before")
    @classmethod
    def _event_time(cls, value: Any) -> datetime:
        return check_time(value)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> float:
        return check_amount(value)

    @field_validator("currency", "country", "channel", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip(" ") if isinstance(value, str) else value

    @field_validator("mcc", mode="before")
    @classmethod
    def _mcc(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip(" ")
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9999:
            return f"{value:04d}"  # documented: an integer code keeps its leading zeros
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError("integer mcc must be 0..9999")
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
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse_transaction(raw: bytes | str, max_bytes: int = MAX_PAYLOAD_BYTES) -> Transaction:
    """Decode and validate one raw message; raise :class:`InvalidInput` with the reason."""
    return validate_transaction(decode_object(raw, max_bytes))


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
