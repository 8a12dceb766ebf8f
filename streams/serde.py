"""JSON on the wire: one encoder and one decoder for every topic the project writes or reads.

The contract, so every worker and tool agrees on the bytes:

* :func:`dumps` writes compact UTF-8 JSON (``,`` and ``:`` separators, no ASCII escaping) and
  is strict: NaN and infinities are not JSON, so they raise :class:`ValueError` unless the
  caller asks for them as ``null`` (``nan_as_null=True``, e.g. missing feature values).
  Datetimes become ISO-8601 UTC with ``Z``; pydantic models, dataclasses, sets and numpy
  scalars/arrays (anything with ``tolist()``) are converted; other types raise ``TypeError``.
* :func:`loads` is the decoder for input that may be broken: anything that is not strict JSON
  (bad UTF-8, syntax, NaN tokens, absurd nesting, oversized) raises
  :class:`~infra.errors.InvalidInput` with a readable reason, which workers dead-letter.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel

from infra.errors import InvalidInput

_SEPARATORS = (",", ":")


def _default(obj: Any) -> Any:
    """Convert the non-JSON types the project produces; raise ``TypeError`` for the rest."""
    if isinstance(obj, datetime):
        if obj.tzinfo is None:
            raise TypeError("naive datetime cannot be encoded: attach a timezone (UTC)")
        return obj.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays, without importing numpy
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _scrub(obj: Any) -> Any:
    """Replace non-finite floats by ``None``, converting special types on the way down."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    if isinstance(obj, Mapping):
        return {key: _scrub(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_scrub(value) for value in obj]
    return _scrub(_default(obj))


def dumps(obj: Any, *, nan_as_null: bool = False, sort_keys: bool = False) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON bytes.

    Raises ``ValueError`` on NaN/inf (unless ``nan_as_null``) and ``TypeError`` on types
    without a JSON form: both are bugs in the caller, never bad input.
    """
    if nan_as_null:
        obj = _scrub(obj)
    try:
        text = json.dumps(
            obj,
            separators=_SEPARATORS,
            ensure_ascii=False,
            allow_nan=False,
            default=_default,
            sort_keys=sort_keys,
        )
    except ValueError as exc:
        raise ValueError(f"{exc}; pass nan_as_null=True to encode them as null") from None
    return text.encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes | bytearray | str | None, *, max_bytes: int | None = None) -> Any:
    """Decode strict JSON; raise :class:`InvalidInput` naming what is wrong.

    ``None`` (a Kafka tombstone) and empty payloads are invalid input, not ``None``.
    """
    if raw is None:
        raise InvalidInput("empty message: no value (tombstone)")
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size == 0:
        raise InvalidInput("empty message: zero-length value")
    if max_bytes is not None and size > max_bytes:
        raise InvalidInput(f"payload too large: {size} bytes > {max_bytes}")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, too deep, huge ints
        raise InvalidInput(f"malformed JSON: {exc}") from None


def loads_object(
    raw: bytes | bytearray | str | None, *, max_bytes: int | None = None
) -> dict[str, Any]:
    """Like :func:`loads` but the top level must be a JSON object."""
    data = loads(raw, max_bytes=max_bytes)
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a JSON object, got {type(data).__name__}")
    return data


def loads_records(raw: bytes | bytearray | str | None, *,
                  max_bytes: int | None = None) -> list[Any]:
    """The records of a message holding one JSON value or a JSON array of them (the
    feature worker forwards each micro-batch's transactions to a partition as one array).

    >>> loads_records(b'[{"a":1},{"a":2}]'), loads_records(b'{"a":1}')
    ([{'a': 1}, {'a': 2}], [{'a': 1}])
    """
    data = loads(raw, max_bytes=max_bytes)
    return data if isinstance(data, list) else [data]


def encode_key(key: str | bytes | None) -> bytes | None:
    """Message keys are UTF-8 text (``card_id``, feature name); bytes pass through."""
    if key is None or isinstance(key, bytes):
        return key
    return key.encode("utf-8")


def decode_key(key: bytes | str | None) -> str | None:
    """The text of a message key; raise :class:`InvalidInput` if it is not UTF-8."""
    if key is None or isinstance(key, str):
        return key
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"message key is not UTF-8: {key[:32]!r}") from None
