"""The wire JSON: compact and strict out, InvalidInput (never a crash) in."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from infra.errors import InvalidInput
from streams import serde
from streams.schema import EXAMPLE_TRANSACTIONS, validate_transaction


class Vector:
    """Stands in for a numpy array or scalar: anything with ``tolist()``."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def tolist(self) -> list[float]:
        return self.values


@dataclasses.dataclass
class Point:
    x: int
    when: datetime


def test_dumps_is_compact_utf8_bytes() -> None:
    assert serde.dumps({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'.encode()
    assert serde.dumps({"b": 1, "a": 2}, sort_keys=True) == b'{"a":2,"b":1}'


def test_dumps_converts_the_types_workers_produce() -> None:
    paris = timezone(timedelta(hours=2))
    tx = validate_transaction(EXAMPLE_TRANSACTIONS[0])
    data = {
        "utc": datetime(2024, 1, 1, 10, tzinfo=paris),
        "day": date(2024, 1, 2),
        "tags": {"b", "a"},
        "vector": Vector(0.5, 1.5),
        "point": Point(1, datetime(2024, 1, 1, tzinfo=UTC)),
        "tx": tx,
    }
    decoded = serde.loads(serde.dumps(data))
    assert decoded["utc"] == "2024-01-01T08:00:00Z"
    assert decoded["day"] == "2024-01-02"
    assert decoded["tags"] == ["a", "b"]
    assert decoded["vector"] == [0.5, 1.5]
    assert decoded["point"] == {"x": 1, "when": "2024-01-01T00:00:00Z"}
    assert validate_transaction(decoded["tx"]) == tx


def test_dumps_refuses_what_json_cannot_say() -> None:
    with pytest.raises(ValueError, match="nan_as_null"):
        serde.dumps({"score": math.nan})
    with pytest.raises(TypeError, match="naive datetime"):
        serde.dumps({"t": datetime(2024, 1, 1)})  # noqa: DTZ001 - the point of the test
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        serde.dumps({"x": object()})


def test_nan_as_null_for_missing_values() -> None:
    data = {"f": [1.0, math.nan, math.inf], "g": Vector(math.nan, 2.0), "h": (None, True)}
    assert serde.loads(serde.dumps(data, nan_as_null=True)) == {
        "f": [1.0, None, None],
        "g": [None, 2.0],
        "h": [None, True],
    }


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (None, "tombstone"),
        (b"", "zero-length"),
        (b"{oops", "malformed JSON"),
        (b"\xff\xfe\xfa", "malformed JSON"),
        (b'{"x": NaN}', "NaN is not valid JSON"),
        (b"[Infinity]", "Infinity is not valid JSON"),
        (b"[" * 10_000, "malformed JSON"),
        (b"9" * 5000, "malformed JSON"),
    ],
)
def test_loads_turns_every_bad_payload_into_invalid_input(raw: bytes | None, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        serde.loads(raw)


def test_loads_size_limit_and_object_check() -> None:
    assert serde.loads('{"a":1}', max_bytes=7) == {"a": 1}
    with pytest.raises(InvalidInput, match="payload too large: 8 bytes > 7"):
        serde.loads(b'{"a":12}', max_bytes=7)
    assert serde.loads_object(b'{"a":1}') == {"a": 1}
    with pytest.raises(InvalidInput, match="expected a JSON object, got list"):
        serde.loads_object(b"[]")


@pytest.mark.parametrize("key", ["card-1", b"card-1"])
def test_keys_are_utf8(key: Any) -> None:
    assert serde.encode_key(key) == b"card-1"
    assert serde.decode_key(serde.encode_key(key)) == "card-1"
    assert serde.encode_key(None) is None and serde.decode_key(None) is None


def test_non_utf8_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="not UTF-8"):
        serde.decode_key(b"\xff\xfe")
