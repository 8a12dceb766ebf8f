"""The producer helper published for upstream services (payments, checkout).

:class:`TransactionProducer` is the safe way to publish to topic ``transactions``:

* each transaction (a ``dict`` or a :class:`~streams.schema.Transaction`) is validated with the
  published schema *before* it is sent, so an upstream bug raises
  :class:`~infra.errors.InvalidInput` in the caller at once instead of landing in the DLQ;
* the record is keyed by ``card_id`` (per-card order, co-partitioned with scores/labels) and its
  value is the normalized JSON record (``event_time`` ISO-8601 UTC, defaults filled); unknown
  extra fields are kept, so upstream can add fields before fraudstream reads them;
* every delivery report is checked: a failed delivery raises
  :class:`~streams.delivery.DeliveryFailed` from :meth:`~TransactionProducer.flush` or
  :meth:`~TransactionProducer.close`, never silently dropped.

The Kafka record timestamp is left to the producer (ingestion time); event time lives in the
payload, where every worker reads it. The confluent-kafka producer is created lazily from
settings (idempotent, ``acks=all``) or injected, e.g. a fake in tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from infra.errors import InvalidInput, ServiceError
from infra.settings import Settings
from streams import serde
from streams.clients import make_producer
from streams.delivery import DeliveryTracker, ProducerLike
from streams.schema import Transaction, validate_transaction

log = logging.getLogger(__name__)

_FIELDS = frozenset(Transaction.model_fields)


class TransactionProducer:
    """Validating, keyed, delivery-checked publisher of transactions (a context manager)."""

    def __init__(
        self,
        settings: Settings,
        *,
        producer: ProducerLike | None = None,
        topic: str | None = None,
        queue_full_timeout: float = 30.0,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self.topic = topic or settings.topic_transactions
        self._queue_full_timeout = queue_full_timeout
        self._tracker = DeliveryTracker()
        self._closed = False

    @property
    def producer(self) -> ProducerLike:
        """The underlying client, created on first use."""
        if self._closed:
            raise RuntimeError("TransactionProducer is closed")
        if self._producer is None:
            self._producer = make_producer(self._settings)
        return self._producer

    @property
    def delivered(self) -> int:
        """Records acknowledged by the broker so far (served by ``poll``/``flush``)."""
        return self._tracker.delivered

    def encode(self, transaction: Transaction | Mapping[str, Any]) -> tuple[bytes, bytes]:
        """Validate and serialize to ``(key, value)`` bytes; raise ``InvalidInput`` if invalid."""
        _, key, value = self._encode(transaction)
        return key, value

    def _encode(
        self, transaction: Transaction | Mapping[str, Any]
    ) -> tuple[Transaction, bytes, bytes]:
        if isinstance(transaction, Transaction):
            # Re-validate: model_construct() or model_copy(update=...) bypass validation.
            data, extras = dict(transaction), {}
        elif isinstance(transaction, Mapping):
            data = dict(transaction)
            extras = {k: v for k, v in data.items() if k not in _FIELDS}
        else:
            raise InvalidInput(
                f"expected a Transaction or a dict, got {type(transaction).__name__}"
            )
        tx = validate_transaction(data)
        try:
            value = serde.dumps({**extras, **tx.to_record()})
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"extra fields are not JSON: {exc}") from None
        limit = self._settings.max_message_bytes
        if len(value) > limit:
            raise InvalidInput(f"payload too large: {len(value)} bytes > {limit}")
        return tx, tx.card_id.encode("utf-8"), value

    def send(self, transaction: Transaction | Mapping[str, Any]) -> Transaction:
        """Validate, then enqueue one transaction (confirmed by :meth:`flush`); return it parsed."""
        tx, key, value = self._encode(transaction)
        self._produce(self.topic, key, value, tx.transaction_id)
        return tx

    def send_raw(
        self, key: bytes | str | None, value: bytes | None, *, topic: str | None = None
    ) -> None:
        """Publish bytes as they are, *without validation* (tests publish malformed input)."""
        self._produce(topic or self.topic, serde.encode_key(key), value, None)

    def _produce(
        self, topic: str, key: bytes | None, value: bytes | None, label: str | None
    ) -> None:
        producer = self.producer
        callback = self._tracker.callback(topic, key, label)
        deadline = time.monotonic() + self._queue_full_timeout
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=callback)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                if time.monotonic() >= deadline:
                    raise ServiceError(
                        f"producer queue still full after {self._queue_full_timeout}s; "
                        "is Kafka reachable?"
                    ) from None
                producer.poll(0.1)
        producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every queued record; raise ``DeliveryFailed`` if any was not delivered."""
        if self._producer is None:
            self._tracker.raise_if_failed()
            return
        remaining = self._producer.flush(timeout)
        self._tracker.raise_if_failed(undelivered=max(remaining, 0))

    def close(self, timeout: float = 30.0) -> None:
        """Flush and release the client (idempotent); raises like :meth:`flush`."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            self._producer = None

    def __enter__(self) -> TransactionProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        # The body failed: still flush, but let the original exception propagate.
        try:
            self.close()
        except ServiceError as close_error:
            log.error("while closing after %r: %s", exc, close_error)
