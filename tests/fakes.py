"""In-memory stand-ins shared by unit and integration tests."""

from __future__ import annotations

import json
from typing import Any


class FakeMessage:
    """A consumed record, as confluent-kafka's Message shows it (by default one of
    ``transactions.featurized``, partition 0)."""

    def __init__(self, value: bytes, offset: int, key: bytes = b"C1", *,
                 topic: str = "transactions.featurized", partition: int = 0) -> None:
        self._value, self._offset, self._key = value, offset, key
        self._topic, self._partition = topic, partition

    @classmethod
    def of(cls, record: dict[str, Any], offset: int) -> FakeMessage:
        """The message of a JSON record, keyed by its card."""
        return cls(json.dumps(record).encode(), offset, record["card_id"].encode())

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return self._key

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None
