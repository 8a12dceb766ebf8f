"""Feast's Redis online-store layout, read directly (no Feast import on the read path).

Feast's Redis store (``feast/infra/online_stores/redis.py``) keeps one hash per entity:

- key: ``serialize_entity_key(entity_key, version=3) + project``; for one string join key
  that is ``<u32 1><u32 STRING><u32 len><key><u32 STRING><u32 len><value>`` (little endian);
- fields: ``murmur3_32("view:feature")`` as 4 little-endian bytes, plus ``_ts:view``;
- values: serialized ``feast.types.Value`` protobufs; a double is field 5 (wire type 1):
  tag byte ``0x29`` followed by 8 little-endian bytes.

Unit tests check :func:`redis_key`, :func:`feature_fields` and the ``encode_*`` functions
against Feast's own functions and protobufs, and :func:`decode_rows` against ``ValueProto``
parsing, so this stays Feast's data format (the integration test reads rows written here
back through ``get_online_features``).

Next to Feast's rows the feature worker keeps the latest state of each card and terminal
(for the synchronous ``POST /v1/score`` path, :mod:`scoring.state_store`): plain string keys
:func:`card_state_key` / :func:`terminal_state_key` holding the UTF-8 JSON of the core's
``to_dict()`` (a card's without its transaction -> terminal map ``"x"``, which only
resolves labels), with the online TTL.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import mmh3
import numpy as np

# Names of Feast's transaction view and its join key (``features.definitions``, which imports
# feast: ~4 s of CPU the stream stage's start-up does without; a unit test keeps them equal).
TRANSACTION_VIEW = "transaction_features"
ENTITY_JOIN_KEY = "transaction_id"
STRING = 2  # feast.value_type.ValueType.STRING
DOUBLE_TAG = 0x29  # (field 5 << 3) | wire type 1 (64-bit)
_DOUBLE = struct.Struct("<Bd")
_DOUBLE_RECORD = np.dtype([("tag", "u1"), ("value", "<f8")])


def redis_key(join_key: str, value: str, project: bytes) -> bytes:
    """The Redis key Feast uses for a single string join key (serialization v3)."""
    k, v = join_key.encode(), value.encode()
    return b"".join((struct.pack("<III", 1, STRING, len(k)), k,
                     struct.pack("<II", STRING, len(v)), v, project))


def card_state_key(project: str, card_id: str) -> str:
    """Redis key of a card's state snapshot.

    >>> card_state_key("fraudstream", "card-42")
    'fraudstream:card_state:card-42'
    """
    return f"{project}:card_state:{card_id}"


def terminal_state_key(project: str, terminal: str) -> str:
    """Redis key of a terminal's (or merchant's) state snapshot (``terminal`` is
    :func:`features.core.terminal_key`).

    >>> terminal_state_key("fraudstream", "t:t-7")
    'fraudstream:terminal_state:t:t-7'
    """
    return f"{project}:terminal_state:{terminal}"


def feature_fields(view: str, features: Sequence[str]) -> list[bytes]:
    """The hash fields of ``view``'s features, in ``features`` order."""
    return [struct.pack("<Q", mmh3.hash(f"{view}:{name}", signed=False))[:4]
            for name in features]


def encode_double(value: float) -> bytes:
    """A ``Value{double_val}`` protobuf, as Feast stores a Float64 feature."""
    return _DOUBLE.pack(DOUBLE_TAG, value)


def encode_string(value: str) -> bytes:
    """A ``Value{string_val}`` protobuf (field 2, length-delimited)."""
    raw = value.encode()
    return bytes((0x12,)) + _varint(len(raw)) + raw


def encode_timestamp(ms: int) -> bytes:
    """A ``google.protobuf.Timestamp`` (seconds = 1, nanos = 2; zero fields omitted)."""
    seconds, rest = divmod(ms, 1000)
    out = b"\x08" + _varint(seconds) if seconds else b""
    return out + (b"\x10" + _varint(rest * 1_000_000) if rest else b"")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decode_one(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    if len(raw) == 9 and raw[0] == DOUBLE_TAG:
        return float(struct.unpack_from("<d", raw, 1)[0])
    from feast.protos.feast.types.Value_pb2 import Value  # rare: another encoding

    proto = Value.FromString(raw)
    kind = proto.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    return float(getattr(proto, kind))


def decode_rows(replies: Sequence[Sequence[bytes | None]], width: int) -> list[Any]:
    """Feature tuples from ``HMGET`` replies (``None`` for a row with any missing value).

    The common case (every value a 9-byte double) is decoded in one numpy pass.
    """
    out: list[Any] = [None] * len(replies)
    blobs: list[bytes] = []
    fast: list[int] = []
    size = 9 * width
    for i, values in enumerate(replies):
        if None not in values:
            blob = b"".join(values)  # type: ignore[arg-type]
            if len(blob) == size:
                blobs.append(blob)
                fast.append(i)
                continue
        out[i] = _decode_slow(values)
    if fast:
        records = np.frombuffer(b"".join(blobs), dtype=_DOUBLE_RECORD).reshape(len(fast), width)
        good = (records["tag"] == DOUBLE_TAG).all(axis=1).tolist()
        floats: list[list[float]] = records["value"].tolist()
        for row, i in enumerate(fast):
            out[i] = tuple(floats[row]) if good[row] else _decode_slow(replies[i])
    return out


def _decode_slow(values: Sequence[bytes | None]) -> Any:
    decoded = [_decode_one(v) for v in values]
    return None if any(v is None for v in decoded) else tuple(decoded)
