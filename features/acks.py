"""Acknowledge held stream messages in offset order, so a commit never passes one.

The feature worker holds some messages unacknowledged after their batch: a label until its
card partition catches up with it, a repartition message until the merge has released its
items. Faust commits, per partition, the first run of consecutive acknowledged offsets, and
faust-streaming 0.15 (``Consumer._new_offset``) does not check that the run starts at the
committed offset when nothing was committed yet, or when only the message at the committed
offset is missing. So with message 7 held and 8, 9 acknowledged, it may commit 10; after a
crash message 7 is never delivered again and its items are lost. (The restart test lost runs
of repartition messages, 1,000-2,100 transactions a run, to this and to the skip that
:class:`OffsetGuard` handles.)

So every message of a topic that holds messages goes through :class:`InOrderAcks`: it is
held when it arrives, the stage says when it is done with it, and acknowledgements go out
in offset order per partition: nothing is acknowledged while an earlier message is held.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any


class Hold:
    """One held message: ``pending`` parts still to be done; :meth:`ack` marks one done.

    It stands for its event where tables need one (``message`` tells the partition), so
    stages keep it as the handle of what they buffer.
    """

    __slots__ = ("event", "message", "pending", "__weakref__")

    def __init__(self, event: Any, pending: int) -> None:
        self.event = event
        self.message = event.message
        self.pending = pending

    def ack(self, n: int = 1) -> None:
        self.pending -= n


class InOrderAcks:
    """Held messages per partition, acknowledged from the oldest while it is done.

    >>> class M:
    ...     def __init__(self, offset): self.tp, self.offset, self.refs = "t", offset, 1
    ...     def incref(self): self.refs += 1
    >>> class E:
    ...     def __init__(self, offset): self.message = M(offset)
    ...     def ack(self): self.message.refs -= 1
    >>> acks = InOrderAcks()
    >>> first, second = acks.hold(E(0), pending=1), acks.hold(E(1), pending=0)
    >>> acks.flush()  # 1 is done, but 0 is held
    0
    >>> first.ack(); acks.flush()
    2
    """

    def __init__(self) -> None:
        self._held: dict[Any, deque[Hold]] = {}

    def hold(self, event: Any, pending: int = 0) -> Hold:
        """Hold ``event``'s message (one reference more) until it and all before it are
        done; ``pending``: how many parts must be marked done (0: done already)."""
        event.message.incref()
        hold = Hold(event, pending)
        self._held.setdefault(event.message.tp, deque()).append(hold)
        return hold

    def flush(self) -> int:
        """Acknowledge, per partition, the done messages before the first one still held;
        returns how many."""
        acked = 0
        for queue in self._held.values():
            while queue and queue[0].pending <= 0:
                queue.popleft().event.ack()
                acked += 1
        return acked

    def held(self) -> int:
        return sum(len(queue) for queue in self._held.values())

    def revoke(self, tp: Any) -> None:
        """Forget a revoked partition's messages (never acknowledged here: the new owner
        gets them again)."""
        self._held.pop(tp, None)


class OffsetGuard:
    """Notices messages the consumer skipped, so that they are read again.

    faust can lose messages around a restart or a rebalance: messages fetched while its
    changelog recovery runs wait in the stream queues, and resuming the flow *clears* those
    queues after it has sought to the committed offsets (faust-streaming 0.15,
    ``Recovery._resume_streams``; ``mode``'s ``FlowControlEvent.resume``). The consumer's
    position is past them, so they never come. (Seen in the restart test: each repartition
    partition jumped from offset 11 to 16-20 and those transactions never got features.)

    A stage checks every message here, in the order it receives them. A message after a gap
    (also the first one after an assignment, when it is beyond the committed offset) is not
    processed and never acknowledged: the stage seeks back to the first missing offset and
    skips what still arrives from before the seek until that offset comes (seeking again
    every ``settle_s``). With ``tries`` set, a gap still there after that many seeks is real
    (a topic written with transactions has offsets without messages) and is accepted; without,
    the stage waits for the offset (a topic whose offsets have no holes).

    >>> guard = OffsetGuard()
    >>> guard.check("t", 5, committed=5), guard.check("t", 6, committed=5)
    ((True, None), (True, None))
    >>> guard.check("t", 9, committed=5)  # 7 and 8 were skipped: seek back to 7
    (False, 7)
    >>> guard.check("t", 10, committed=5)  # fetched before the seek
    (False, None)
    >>> guard.check("t", 7, committed=5)  # read again
    (True, None)
    """

    def __init__(self, settle_s: float = 10.0, tries: int | None = 3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settle_s = settle_s
        self.tries = tries
        self.clock = clock
        self._next: dict[Any, int] = {}  # next offset expected, per partition
        self._seeking: dict[Any, tuple[int, float, int]] = {}  # (offset, when, seeks)

    def check(self, tp: Any, offset: int, committed: int | None) -> tuple[bool, int | None]:
        """``(process it, offset to seek back to or None)`` for ``offset`` of ``tp``."""
        expected = self._next.get(tp, committed)
        if expected is None or offset == expected:
            self._next[tp] = offset + 1
            self._seeking.pop(tp, None)
            return True, None
        if offset < expected:  # a copy of a message already processed
            return False, None
        seeking = self._seeking.get(tp)
        now = self.clock()
        if seeking is not None and seeking[0] == expected:
            if now - seeking[1] < self.settle_s:
                return False, None  # still arriving from before the seek
            if self.tries is not None and seeking[2] >= self.tries:  # a real gap
                self._next[tp] = offset + 1
                del self._seeking[tp]
                return True, None
        tries = seeking[2] + 1 if seeking is not None and seeking[0] == expected else 1
        self._seeking[tp] = (expected, now, tries)
        return False, expected

    def revoke(self, tp: Any) -> None:
        self._next.pop(tp, None)
        self._seeking.pop(tp, None)
