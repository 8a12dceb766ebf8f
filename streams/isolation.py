"""Per-record isolation for consumers: a record is data, never a reason to stop.

:class:`RecordGuard` runs one record's processing step. Bad input
(:class:`~infra.errors.InvalidInput`) is dead-lettered at once, with its reason: trying again
cannot make it valid. Any other exception (a bug, a value no one foresaw: ``RecursionError``,
``OverflowError``, ``KeyError`` ...) is retried up to ``tries`` times in place, then
dead-lettered with ``ExceptionType: message``. Either way the consumer goes on with the next
record, and the outcome is counted by reason class (``outcomes``) for metrics.

Without a dead-letter router (topics whose records are the project's own output, e.g.
``scores`` read by the learner and the drift monitor), the record is skipped: logged with
``topic[partition]@offset`` and counted, never silently. A failing *dependency* is not a
record's fault and must not be handled here: callers let ``ServiceError`` through
(``passthrough``) so the worker pauses and retries instead of dead-lettering good data.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from infra.errors import InvalidInput, ServiceError
from streams.dlq import DeadLetterRouter

log = logging.getLogger("fraudstream.streams.isolation")
T = TypeVar("T")
DEFAULT_TRIES = 3


def _call(obj: Any, name: str, default: Any) -> Any:
    method = getattr(obj, name, None)
    if not callable(method):
        return default
    value = method()
    return default if value is None else value


def source_of(message: Any) -> str:
    """``topic[partition]@offset`` of a consumed message (what every log line names)."""
    return (f"{_call(message, 'topic', '')}[{_call(message, 'partition', -1)}]"
            f"@{_call(message, 'offset', -1)}")


class RecordGuard:
    """Runs processing steps for one consumer with bounded tries and a dead-letter exit."""

    def __init__(self, router: DeadLetterRouter | None, *, tries: int = DEFAULT_TRIES,
                 passthrough: tuple[type[BaseException], ...] = (ServiceError,)) -> None:
        if tries < 1:
            raise ValueError("tries must be >= 1")
        self.router = router
        self.tries = tries
        self.passthrough = passthrough
        self.outcomes: Counter[str] = Counter()  # invalid / failed, each dead_lettered|skipped
        self.last_reason: str | None = None

    def run(self, message: Any, step: Callable[[], T]) -> tuple[bool, T | None]:
        """``(True, result)`` if ``step`` succeeded, ``(False, None)`` if the record left
        through the dead-letter topic (or was skipped, without a router)."""
        error: BaseException | None = None
        for _ in range(self.tries):
            try:
                return True, step()
            except self.passthrough:
                raise
            except InvalidInput as exc:
                self._reject(message, exc, "invalid")
                return False, None
            except Exception as exc:  # noqa: BLE001 - a record must not stop the consumer
                error = exc
        assert error is not None  # noqa: S101 - the loop ran at least once and failed
        self._reject(message, error, "failed")
        return False, None

    def _reject(self, message: Any, error: BaseException, kind: str) -> None:
        reason = error.reason if isinstance(error, InvalidInput) else (
            f"{type(error).__name__}: {str(error)[:500]}")
        self.last_reason = reason
        where = source_of(message)
        if self.router is None:
            self.outcomes[f"{kind}_skipped"] += 1
            log.warning("skipping %s (%s): %s", where, kind, reason)
            return
        ts = _call(message, "timestamp", (0, 0))
        self.router.route_raw(
            key=_call(message, "key", None), value=_call(message, "value", None),
            error=error if isinstance(error, InvalidInput) else reason,
            topic=_call(message, "topic", ""), partition=_call(message, "partition", -1),
            offset=_call(message, "offset", -1), timestamp_ms=ts[1] if ts[0] else None)
        self.outcomes[f"{kind}_dead_lettered"] += 1
        log.warning("dead-lettered %s to %s (%s): %s", where, self.router.topic, kind, reason)
