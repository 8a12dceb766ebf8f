"""Dead-letter routing: bad input leaves the pipeline with its reason, and nothing is lost.

A dead-letter record on topic ``transactions.dlq`` is keyed by the original key; its value is
JSON (:class:`DeadLetter`): the original key and value as base64 (bytes survive exactly, even
when they are not UTF-8), the human-readable reason, where the record came from
(``topic[partition]@offset``), when it was dead-lettered and by which worker. The time is wall
clock on purpose (operational metadata, not event time) and comes from an injected ``clock``.

:func:`make_dead_letter` and :func:`dead_letter_record` are pure (given the clock).
:class:`DeadLetterRouter` is the thin adapter: it only calls ``producer.produce``, so it works
with a plain producer or inside a Kafka transaction, where the transaction's commit carries the
delivery guarantee; outside one, pass ``on_delivery`` (e.g. a
:class:`~streams.delivery.DeliveryTracker` callback) and flush before committing offsets.
An original value larger than ``max_value_bytes`` is truncated (and flagged) so the
dead-letter record itself always fits.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, field_validator

from infra.errors import InvalidInput
from streams import serde
from streams.delivery import DeliveryCallback, ProducerLike

FORMAT: Final = "fraudstream.dead-letter/v1"
MAX_VALUE_BYTES = 512 * 1024  # base64 + metadata stays well below Kafka's 1 MB default
MAX_REASON_CHARS = 2000

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


class DeadLetter(BaseModel):
    """The decoded value of a dead-letter record (its JSON fields, one to one)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: Literal["fraudstream.dead-letter/v1"] = FORMAT
    reason: str
    error_type: str | None = None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key_b64: str | None
    value_b64: str | None
    value_size: int
    value_truncated: bool = False
    dead_lettered_at: AwareDatetime
    worker: str | None = None

    @field_validator("key_b64", "value_b64")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error as exc:
                raise ValueError(f"not base64: {exc}") from None
        return value

    @property
    def key(self) -> bytes | None:
        """The original key bytes."""
        return None if self.key_b64 is None else base64.b64decode(self.key_b64)

    @property
    def value(self) -> bytes | None:
        """The original value bytes (only the first ``max_value_bytes`` if truncated)."""
        return None if self.value_b64 is None else base64.b64decode(self.value_b64)

    @property
    def source(self) -> str:
        """Where it came from, as logged everywhere: ``topic[partition]@offset``."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


def describe_error(error: str | BaseException) -> tuple[str, str | None]:
    """``(reason, error_type)``: ``InvalidInput`` keeps its reason, others get the class name."""
    if isinstance(error, str):
        return error, None
    if isinstance(error, InvalidInput):
        return error.reason, type(error).__name__
    return f"{type(error).__name__}: {error}", type(error).__name__


def make_dead_letter(
    *,
    key: bytes | None,
    value: bytes | None,
    error: str | BaseException,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None = None,
    worker: str | None = None,
    clock: Clock = wall_clock,
    max_value_bytes: int = MAX_VALUE_BYTES,
) -> DeadLetter:
    """The :class:`DeadLetter` for one bad input record (pure but for ``clock``)."""
    reason, error_type = describe_error(error)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3] + "..."
    truncated = value is not None and len(value) > max_value_bytes
    return DeadLetter(
        reason=reason,
        error_type=error_type,
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=timestamp_ms,
        key_b64=_b64(key),
        value_b64=_b64(value[:max_value_bytes] if truncated and value else value),
        value_size=0 if value is None else len(value),
        value_truncated=truncated,
        dead_lettered_at=clock(),
        worker=worker,
    )


def dead_letter_record(letter: DeadLetter) -> tuple[bytes | None, bytes]:
    """The ``(key, value)`` to produce: keyed by the original key, value compact JSON."""
    return letter.key, serde.dumps(letter.model_dump(mode="json"))


def parse_dead_letter(raw: bytes | str | None) -> DeadLetter:
    """Decode a dead-letter record's value; raise :class:`InvalidInput` if it is not one."""
    data = serde.loads_object(raw)
    try:
        return DeadLetter.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "value"
        raise InvalidInput(f"invalid dead letter: {where}: {err['msg']}") from None


class MessageLike(Protocol):
    """The accessors of ``confluent_kafka.Message`` the router reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class DeadLetterRouter:
    """Produces dead-letter records for one worker to ``topic`` through an injected producer."""

    def __init__(
        self,
        producer: ProducerLike,
        topic: str,
        *,
        worker: str | None = None,
        clock: Clock = wall_clock,
        max_value_bytes: int = MAX_VALUE_BYTES,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._worker = worker
        self._clock = clock
        self._max_value_bytes = max_value_bytes
        self._on_delivery = on_delivery
        self.routed = 0

    def route(self, message: MessageLike, error: str | BaseException) -> DeadLetter:
        """Dead-letter one consumed message with the reason taken from ``error``."""
        ts_type, ts = message.timestamp()
        return self.route_raw(
            key=message.key(),
            value=message.value(),
            error=error,
            topic=message.topic() or "",
            partition=_or(message.partition(), -1),
            offset=_or(message.offset(), -1),
            timestamp_ms=ts if ts_type else None,  # 0 == TIMESTAMP_NOT_AVAILABLE
        )

    def route_raw(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        error: str | BaseException,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int | None = None,
    ) -> DeadLetter:
        """Dead-letter a record given by its parts (for callers without a ``Message``)."""
        letter = make_dead_letter(
            key=key,
            value=value,
            error=error,
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp_ms=timestamp_ms,
            worker=self._worker,
            clock=self._clock,
            max_value_bytes=self._max_value_bytes,
        )
        out_key, out_value = dead_letter_record(letter)
        self._producer.produce(
            self.topic, value=out_value, key=out_key, on_delivery=self._on_delivery
        )
        self.routed += 1
        return letter


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
