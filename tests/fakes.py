"""In-memory stand-ins shared by unit and integration tests."""

from __future__ import annotations


class FakeMessage:
    """A consumed record, as confluent-kafka's Message shows it (by default one of
    ``transactions``, partition 0)."""

    def __init__(self, value: bytes, offset: int, key: bytes = b"C1", *,
                 topic: str = "transactions", partition: int = 0) -> None:
        self._value, self._offset, self._key = value, offset, key
        self._topic, self._partition = topic, partition

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
