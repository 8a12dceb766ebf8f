"""The value rules of the input boundary, shared by every way input enters fraudstream.

One definition of what a valid id, amount and time is, used by the ``transactions`` and
``labels`` validators (:mod:`streams.schema`, :mod:`features.labels`), the learner, and the
training/backtest file validator (:mod:`replay.validation`). The rules are chosen so that
everything accepted can be computed by the feature core without overflow or non-finite
values (see ``docs/validation.md``):

- **JSON**: UTF-8 only, one object, no duplicate keys (two parsers could disagree on which
  value counts), at most ``max_bytes``; NaN/Infinity tokens reach the field checks, which
  refuse them by field name.
- **ids**: text of 1..:data:`MAX_ID_CHARS` printable characters (letters of any script,
  digits, punctuation and inner spaces: merchant fields hold names such as
  ``"Kutch, Hermiston and Farrell"``); leading/trailing spaces are removed; control,
  format, surrogate and other non-printable characters are refused.
- **amounts**: a JSON number (never a string), finite, ``0 <= amount <= MAX_AMOUNT``. Zero is
  valid ($0 card-verification authorisations are real, and card testing looks exactly like
  them); amounts in ``(0, MIN_POSITIVE_AMOUNT)`` (subnormals, ``1e-300``) are refused: they
  are below the minor unit of every currency and only ever come from broken producers.
  ``-0.0`` is read as ``0.0``.
- **times**: ISO-8601 text *with* a UTC offset, or epoch milliseconds as a whole JSON
  number; within years 2000..2100 (:data:`MIN_EVENT_MS` .. :data:`MAX_EVENT_MS`). Offsets
  near year 1 or 9999 are computed without overflow; ``1e300`` and ``10**30`` are refused.

Each check raises :class:`ValueError` with a reason that reads after the field's name
(pydantic adds the name), or :class:`~infra.errors.InvalidInput` for whole-message problems.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.errors import InvalidInput

MAX_AMOUNT = 1_000_000.0
MIN_POSITIVE_AMOUNT = 0.0001  # smallest minor unit of any ISO 4217 currency (4 decimals)
MAX_ID_CHARS = 128
MAX_TIME_CHARS = 64
# Event and label times outside this range are absurd for card payments (year 2000 .. 2100).
MIN_EVENT_MS = 946_684_800_000
MAX_EVENT_MS = 4_102_444_800_000
_EPOCH_NAIVE = datetime(1970, 1, 1)  # noqa: DTZ001 - offsets are subtracted by hand
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
TIME_FORMS = "ISO-8601 text with a UTC offset (e.g. 2024-05-01T12:30:00Z) or epoch milliseconds"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidInput(f"duplicate key {dup[:40]!r} in JSON object")
    return out


def decode_object(raw: bytes | str, max_bytes: int) -> dict[str, Any]:
    """One JSON object from a message value; :class:`InvalidInput` with the reason otherwise."""
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise InvalidInput(f"payload too large: {size} bytes > {max_bytes}")
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"malformed JSON: not UTF-8 ({exc.reason} at byte "
                               f"{exc.start})") from None
    try:
        data = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as exc:  # syntax, too deep, 4300+ digit ints
        raise InvalidInput(f"malformed JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a JSON object, got {type(data).__name__}")
    return data


def check_id(value: Any) -> str:
    """A valid id (see module doc), with surrounding spaces removed."""
    if not isinstance(value, str):
        raise ValueError(f"must be text, not {type(value).__name__}")
    text = value.strip(" ")
    if not text:
        raise ValueError("must not be empty")
    if len(text) > MAX_ID_CHARS:
        raise ValueError(f"too long: {len(text)} characters > {MAX_ID_CHARS}")
    if not text.isprintable():
        bad = next(c for c in text if not c.isprintable())
        raise ValueError(f"contains a non-printable character U+{ord(bad):04X}")
    return text


def check_amount(value: Any) -> float:
    """A valid amount as a float (see module doc)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a JSON number, not {type(value).__name__}"
                         + (" (amounts as text are refused)" if isinstance(value, str) else ""))
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("Input should be a finite number")
    if value < 0:
        raise ValueError("must be greater than or equal to 0 (negative amounts are refused)")
    if value > MAX_AMOUNT:
        raise ValueError(f"must be less than or equal to {MAX_AMOUNT:.0f}")
    amount = float(value)
    if 0.0 < amount < MIN_POSITIVE_AMOUNT:
        raise ValueError(f"must be 0 or at least {MIN_POSITIVE_AMOUNT} (below every "
                         f"currency's minor unit)")
    return amount + 0.0  # -0.0 -> 0.0


def _iso_delta(text: str) -> timedelta:
    """The exact instant of ISO-8601 text as time since the epoch."""
    if len(text) > MAX_TIME_CHARS:
        raise ValueError(f"too long for a time ({len(text)} characters)")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not ISO-8601: {text[:40]!r}; use {TIME_FORMS}") from None
    return _aware_delta(when)


def _aware_delta(when: datetime) -> timedelta:
    offset = when.utcoffset()
    if offset is None:
        raise ValueError("needs a timezone (UTC offset); naive times are ambiguous")
    # Naive arithmetic on timedeltas cannot overflow, unlike astimezone near year 1 / 9999.
    return when.replace(tzinfo=None) - _EPOCH_NAIVE - offset


def check_time_ms(value: Any) -> int:
    """Epoch milliseconds of a valid time (see module doc)."""
    if isinstance(value, bool):
        raise ValueError(f"must be {TIME_FORMS}, not a boolean")
    if isinstance(value, str):
        ms: int | float = _iso_delta(value) // _MS
    elif isinstance(value, int):
        ms = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite time")
        if not value.is_integer():
            raise ValueError("epoch milliseconds must be a whole number")
        ms = value
    else:
        raise ValueError(f"must be {TIME_FORMS}, not {type(value).__name__}")
    if not MIN_EVENT_MS <= ms <= MAX_EVENT_MS:
        raise ValueError("out of range (years 2000-2100; epoch numbers are milliseconds)")
    return int(ms)


def utc_of_ms(ms: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds in the valid range."""
    return _EPOCH + ms * _MS


def check_time(value: Any) -> datetime:
    """A valid time as an aware UTC datetime (microseconds of ISO text are kept).

    Python callers may also pass an aware :class:`datetime` (same range rule).
    """
    if isinstance(value, datetime):
        exact = _aware_delta(value)
    elif isinstance(value, str):
        exact = _iso_delta(value)
    else:
        return utc_of_ms(check_time_ms(value))
    if not MIN_EVENT_MS <= exact // _MS <= MAX_EVENT_MS:
        raise ValueError("out of range (years 2000-2100; epoch numbers are milliseconds)")
    return _EPOCH + exact
