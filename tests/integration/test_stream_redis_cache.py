"""StageRedis keeps the terminal states it wrote decoded, but only while Redis still holds
exactly what it wrote: another writer's change, a failed batch or a lost key is decoded
from Redis again (real Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from features.stream.redis_io import StageRedis, Writes
from features.terminal import TerminalState
from infra.errors import ServiceError
from infra.settings import Settings

pytestmark = pytest.mark.integration


Seen = list[tuple[TerminalState | None, Any]]


def _bump(seen: Seen, last: int) -> Any:
    """A compute that records the state it got for ``t`` (and its ``last`` then) and marks
    it with ``last``."""

    def compute(states: dict[str, TerminalState | None], marks: dict[str, Any]
                ) -> tuple[Writes, set[str]]:
        got = states["t"]
        seen.append((got, list(got.last) if got and got.last else None))
        state = states["t"] or TerminalState()
        state.last = [last, 0, f"tx-{last}"]
        states["t"] = state
        return Writes(), {"t"}

    return compute


def _drop(redis: StageRedis, project: str) -> None:
    keys: list[Any] = list(redis.client.keys(f"{project}:*"))  # type: ignore[arg-type]
    if keys:
        redis.client.delete(*keys)


def test_reuses_its_own_state_and_rereads_anothers(settings: Settings) -> None:
    project = settings.feast_project
    mine, other = StageRedis(settings), StageRedis(settings)
    seen: Seen = []
    try:
        mine.write(["t"], _bump(seen, 1))
        mine.write(["t"], _bump(seen, 2))
        assert seen[0] == (None, None)
        kept = seen[1][0]
        assert kept is not None and seen[1][1] == [1, 0, "tx-1"]
        mine.write(["t"], _bump(seen, 3))
        assert seen[2][0] is kept  # the same object: not decoded again
        assert seen[2][1] == [2, 0, "tx-2"]

        other.write(["t"], _bump([], 4))  # another worker changes the terminal
        mine.write(["t"], _bump(seen, 5))
        assert seen[3][0] is not kept  # decoded from Redis: the other's state
        assert seen[3][1] == [4, 0, "tx-4"]

        def fail(states: dict[str, TerminalState | None], marks: dict[str, Any]
                 ) -> tuple[Writes, set[str]]:
            seen.append((states["t"], None))
            states["t"].last = [99, 0, "never-written"]  # type: ignore[union-attr]
            raise ServiceError("batch failed after mutating the state")

        with pytest.raises(ServiceError):
            mine.write(["t"], fail)
        mine.write(["t"], _bump(seen, 6))
        assert seen[-1][0] is not seen[-2][0]  # the mutated copy was not kept
        assert seen[-1][1] == [5, 0, "tx-5"]

        _drop(mine, project)
        mine.write(["t"], _bump(seen, 7))
        assert seen[-1] == (None, None)  # a lost key is not served from memory
    finally:
        for redis in (mine, other):
            _drop(redis, project)
            redis.close()


def test_a_conflict_recomputes_and_overlaps_again(settings: Settings) -> None:
    """Another worker writes a watched terminal between the read and the MULTI: nothing of
    the first attempt is written, the batch is recomputed on the other's state and the work
    overlapped with the write (scoring) runs again on it. Work that fails while Redis
    writes leaves the connection usable."""
    project = settings.feast_project
    mine, other = StageRedis(settings), StageRedis(settings)
    seen: Seen = []
    overlapped: list[Any] = []
    bump = _bump(seen, 1)

    def compute(states: dict[str, TerminalState | None], marks: dict[str, Any]
                ) -> tuple[Writes, set[str]]:
        if not seen:  # the first attempt: the other worker writes in between
            other.write(["t"], _bump([], 9))
        return bump(states, marks)

    try:
        mine.write(["t"], compute, lambda: overlapped.append(seen[-1][1]))
        assert seen == [(None, None), (seen[1][0], [9, 0, "tx-9"])]
        assert overlapped == [None, [9, 0, "tx-9"]]

        def fail() -> None:
            raise RuntimeError("scoring failed")

        with pytest.raises(RuntimeError):
            mine.write(["t"], _bump(seen, 2), fail)
        mine.write(["t"], _bump(seen, 3))
        assert seen[-1][1] == [2, 0, "tx-2"]  # the MULTI was sent before scoring failed
    finally:
        for redis in (mine, other):
            _drop(redis, project)
            redis.close()


def test_a_batch_is_written_in_one_call_as_feast_reads_it(settings: Settings) -> None:
    """The batch's one EVAL leaves each feature row as the Feast layout (read back by the
    stage's own reader), with the registry entries, card snapshots, terminal states and
    the online TTL on every key."""
    import numpy as np

    from features.core import FEATURE_NAMES
    from features.redis_layout import (
        TRANSACTION_VIEW,
        card_state_key,
        encode_string,
        feature_fields,
        terminal_state_key,
    )

    project = settings.feast_project
    redis = StageRedis(settings)
    values = np.random.default_rng(3).uniform(-1e6, 1e6, (300, len(FEATURE_NAMES)))
    vectors = {f"tx-{i}": tuple(v) for i, v in enumerate(values.tolist())}

    def compute(states: dict[str, TerminalState | None], marks: dict[str, Any]
                ) -> tuple[Writes, set[str]]:
        states["t:T1"] = TerminalState()
        writes = Writes(
            rows=[(tid, f"card-{i % 7}", "t:T1", 1_700_000_000_123 + i, v)
                  for i, (tid, v) in enumerate(vectors.items())],
            registry=[(tid, f"entry-{tid}".encode()) for tid in vectors],
            cards=[(f"card-{j}", f"served-{j}".encode()) for j in range(7)])
        return writes, {"t:T1"}

    try:
        redis.write(["t:T1"], compute)
        stored, rows = redis.read_ids(list(vectors))
        assert stored == [f"entry-{tid}".encode() for tid in vectors]
        assert rows == vectors  # every value, bit for bit
        client = redis.client
        card_field, terminal_field = feature_fields(TRANSACTION_VIEW, ["card_id", "terminal"])
        row = client.hmget(redis._row_key("tx-8"), [card_field, terminal_field])  # type: ignore[arg-type]
        assert row == [encode_string("card-1"), encode_string("t:T1")]
        assert client.get(card_state_key(project, "card-3")) == b"served-3"
        assert client.get(terminal_state_key(project, "t:T1")) is not None
        keys: list[Any] = list(client.keys(f"*{project}*"))  # type: ignore[arg-type]
        assert len(keys) == 300 * 2 + 7 + 1
        assert all(0 < client.ttl(k) <= settings.online_ttl_seconds for k in keys)  # type: ignore[operator]
    finally:
        _drop(redis, project)
        for key in [redis._row_key(tid) for tid in vectors]:
            redis.client.delete(key)
        redis.close()
