"""Delivery reports: a produced record is either acknowledged or reported, never dropped quietly.

confluent-kafka reports each record's fate asynchronously through an ``on_delivery`` callback
served by ``poll()``/``flush()``. :class:`DeliveryTracker` hands out those callbacks, counts
acknowledgements and keeps failures until the owner calls :meth:`DeliveryTracker.raise_if_failed`
(the producer helper does so on ``flush()``/``close()``), which raises :class:`DeliveryFailed`
listing what was lost. The protocols here describe the few client methods the project uses, so
tests inject fakes instead of brokers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from infra.errors import ServiceError

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[Any, Any], None]


class ProducerLike(Protocol):
    """The subset of ``confluent_kafka.Producer`` used by the helpers (fakes implement it)."""

    def produce(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        *,
        on_delivery: DeliveryCallback | None = ...,
    ) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...


@dataclass(frozen=True)
class DeliveryFailure:
    """One record the broker did not acknowledge; ``label`` says which (e.g. transaction_id)."""

    topic: str
    key: bytes | None
    label: str | None
    error: str

    def __str__(self) -> str:
        what = self.label or (self.key.decode("utf-8", "replace") if self.key else "<no key>")
        return f"{self.topic} {what}: {self.error}"


class DeliveryFailed(ServiceError):
    """Records were not delivered; ``failures`` lists them, ``undelivered`` counts unconfirmed."""

    def __init__(self, failures: Sequence[DeliveryFailure], undelivered: int = 0) -> None:
        self.failures = tuple(failures)
        self.undelivered = undelivered
        parts = []
        if self.failures:
            shown = "; ".join(str(f) for f in self.failures[:3])
            more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
            parts.append(f"{len(self.failures)} record(s) failed delivery: {shown}{more}")
        if undelivered:
            parts.append(f"{undelivered} record(s) still unconfirmed after flush timeout")
        super().__init__("; ".join(parts) or "delivery failed")


class DeliveryTracker:
    """Collects delivery reports for one producer; not thread-safe (callbacks run in poll)."""

    def __init__(self) -> None:
        self._failures: list[DeliveryFailure] = []
        self.delivered = 0

    def callback(self, topic: str, key: bytes | None, label: str | None = None) -> DeliveryCallback:
        """An ``on_delivery`` callback for one record, remembering what to report if it fails."""

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is None:
                self.delivered += 1
                return
            failure = DeliveryFailure(topic=topic, key=key, label=label, error=_describe(err))
            log.error("delivery failed: %s", failure)
            self._failures.append(failure)

        return on_delivery

    @property
    def failures(self) -> tuple[DeliveryFailure, ...]:
        return tuple(self._failures)

    def raise_if_failed(self, undelivered: int = 0) -> None:
        """Raise :class:`DeliveryFailed` for failures seen so far (then forget them)."""
        if not self._failures and not undelivered:
            return
        failures, self._failures = self._failures, []
        raise DeliveryFailed(failures, undelivered)


def _describe(err: Any) -> str:
    """``KafkaError`` has ``str()`` (reason) and ``name()``; fakes may pass plain strings."""
    text = err.str() if callable(getattr(err, "str", None)) else str(err)
    name = err.name() if callable(getattr(err, "name", None)) else None
    return f"{name}: {text}" if name else text
