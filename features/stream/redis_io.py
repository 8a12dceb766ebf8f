"""The stage's Redis I/O: reads before a batch, one ``MULTI`` after it (every call bounded).

Keys (project-prefixed, all with the online TTL):

- Feast's feature rows (:mod:`features.redis_layout`, the layout ``write_to_online_store``
  writes): one hash per transaction id, with its ``card_id`` field, so a row is only ever
  reused for the card it was computed for;
- terminal states (:func:`~features.redis_layout.terminal_state_key`, the core's JSON —
  also the REST API's snapshot), card snapshots for the API
  (:func:`~features.redis_layout.card_state_key`);
- the transaction-id registry (:mod:`features.stream.ids`) and the late-item log
  ``{project}:late`` (hash: id -> JSON of :class:`~features.stream.terminals.Late`).

:meth:`StageRedis.write` runs ``WATCH`` on the batch's terminal keys, reads their states,
lets the caller compute, and commits everything in one ``MULTI``, scoring the batch while
Redis runs it; when another worker changed one of those terminals in between (``EXEC``
answers nil) the caller recomputes on fresh states. Any Redis failure surfaces as
:class:`~infra.errors.ServiceError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import orjson
import redis as redis_lib

from features.core import FEATURE_NAMES, Features
from features.redis_layout import (
    DOUBLE_TAG,
    ENTITY_JOIN_KEY,
    TRANSACTION_VIEW,
    card_state_key,
    decode_rows,
    encode_string,
    encode_timestamp,
    feature_fields,
    redis_key,
    terminal_state_key,
)
from features.stream.ids import registry_key
from features.stream.terminals import Late
from features.terminal import TerminalState
from infra.errors import ServiceError
from infra.settings import Settings

T = TypeVar("T")
WATCH_RETRIES = 20
KNOWN_TERMINALS = 50_000  # decoded terminal states kept between batches (oldest dropped)

_FIELDS = feature_fields(TRANSACTION_VIEW, FEATURE_NAMES)
_CARD_FIELD, _TERMINAL_FIELD = feature_fields(TRANSACTION_VIEW, ["card_id", "terminal"])
_TS_FIELD = f"_ts:{TRANSACTION_VIEW}"
_WIDTH = len(FEATURE_NAMES)
# one feature value as Feast stores it (a Value{double_val} protobuf: tag byte, LE double)
_CELL = np.dtype([("tag", "u1"), ("value", "<f8")])

# A batch's writes as ONE command inside the MULTI. KEYS: the feature rows' keys, then the
# keys SET to one value each (terminal states, id registry, card snapshots). ARGV: ttl, the
# number of rows, the number of features, their hash fields, then per row its values (one
# string of 9-byte protobuf cells) and its card/terminal/timestamp field-value pairs, then
# the SET values. As separate redis-py commands (an HSET of 110 arguments and an EXPIRE per
# row, a SET per id and card, each queued, packed and answered twice inside MULTI) the
# client took ~35 % of the stage's time draining (py-spy); Redis splits the cells instead.
WRITE_BATCH = """
local ttl, rows, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4 + n
for i = 1, rows do
  local cells, h = ARGV[a], {}
  for j = 1, n do
    h[2 * j - 1] = ARGV[3 + j]
    h[2 * j] = string.sub(cells, 9 * j - 8, 9 * j)
  end
  for k = 1, 6 do h[2 * n + k] = ARGV[a + k] end
  redis.call('HSET', KEYS[i], unpack(h))
  redis.call('EXPIRE', KEYS[i], ttl)
  a = a + 7
end
for i = rows + 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[a], 'EX', ttl)
  a = a + 1
end
return rows
"""


@dataclass
class Writes:
    """What one batch writes to Redis (terminal states are added by the caller's compute)."""

    rows: list[tuple[str, str, str, int, Features]] = field(default_factory=list)
    registry: list[tuple[str, bytes]] = field(default_factory=list)  # tid, entry
    cards: list[tuple[str, bytes]] = field(default_factory=list)  # card, served JSON
    late: list[Late] = field(default_factory=list)


class StageRedis:
    """Owns a Redis client with finite socket timeouts."""

    def __init__(self, settings: Settings, client: redis_lib.Redis | None = None) -> None:
        self.settings = settings
        self.project = settings.feast_project
        self._pkey = settings.feast_project.encode()
        self._client = client
        # terminal states as this stage last wrote them: (stored JSON, state, mark)
        self._known: dict[str, tuple[bytes, TerminalState, Any]] = {}

    @property
    def client(self) -> redis_lib.Redis:
        if self._client is None:
            from infra.services import redis_url

            pw = self.settings.redis_password
            t = self.settings.stream_call_timeout_s
            self._client = redis_lib.Redis.from_url(
                redis_url(self.settings), password=pw.get_secret_value() if pw else None,
                socket_timeout=t, socket_connect_timeout=t)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _row_key(self, tid: str) -> bytes:
        return redis_key(ENTITY_JOIN_KEY, tid, self._pkey)

    def read_ids(self, tids: Sequence[str]) -> tuple[list[Any], dict[str, Features]]:
        """Registry entries of ``tids`` and their stored rows (``tid -> vector``), each
        row only when it belongs to the card the registry names... checked by the caller
        through the registry (same card, or the record is a conflict)."""
        if not tids:
            return [], {}
        try:
            stored = list(self.client.mget([registry_key(self.project, t) for t in tids]))  # type: ignore[arg-type]
            # only a registered id can have a row to reuse (a redelivery): usually none
            seen = [t for t, raw in zip(tids, stored, strict=True) if raw is not None]
            if not seen:
                return stored, {}
            with self.client.pipeline(transaction=False) as pipe:
                for tid in seen:
                    pipe.hmget(self._row_key(tid), _FIELDS)  # type: ignore[arg-type]
                replies = pipe.execute()
        except redis_lib.RedisError as exc:
            raise ServiceError(f"redis read failed: {exc}") from exc
        vectors = decode_rows(replies, len(FEATURE_NAMES))
        return stored, {t: v for t, v in zip(seen, vectors, strict=True) if v is not None}

    def write(self, terminals: list[str],
              compute: Callable[[dict[str, TerminalState | None], dict[str, Any]],
                                tuple[Writes, set[str]]],
              overlap: Callable[[], None] = lambda: None) -> Writes:
        """Load ``terminals`` under WATCH, ``compute(states, marks) -> (writes, changed
        keys)`` (``states`` and ``marks`` — each terminal's latest applied item order, kept
        in the state's JSON as ``"ll"`` — mutated in place), then write it all in one
        MULTI. ``overlap()`` runs while Redis executes that MULTI (the batch scores its
        vectors meanwhile); after a conflict it runs again with the recomputed ones.

        WATCH and the read go in one round trip, the MULTI in another (raw commands on one
        pooled connection; a connection left mid-reply by any failure is closed)."""
        keys = [terminal_state_key(self.project, t) for t in terminals]
        pool = self.client.connection_pool
        try:
            for _ in range(WATCH_RETRIES):
                conn = pool.get_connection()
                try:
                    raws = _call(conn, [("WATCH", *keys), ("MGET", *keys)])[1] if keys else []
                    states, marks = self._decode(terminals, raws)
                    writes, changed = compute(states, marks)
                    commands, written = self._commands(writes, states, changed, marks)
                    conn.send_packed_command(conn.pack_commands(
                        [("MULTI",), *commands, ("EXEC",)]))
                    overlap()
                    if _exec(conn, len(commands)):
                        self._remember(written)
                        return writes
                except BaseException:
                    conn.disconnect()  # mid-reply or still watching: a new socket next time
                    raise
                finally:
                    pool.release(conn)
        except redis_lib.RedisError as exc:
            raise ServiceError(f"redis write failed: {exc}") from exc
        raise ServiceError(f"terminal states kept changing under this batch "
                           f"({WATCH_RETRIES} tries)")

    def _decode(self, terminals: list[str], raws: list[Any]
                ) -> tuple[dict[str, TerminalState | None], dict[str, Any]]:
        """States and marks of ``terminals`` from their stored JSON. A state this stage
        wrote itself and nobody changed since (the same bytes) is taken from memory instead
        of decoded; it leaves the memory while in use (a batch mutates it in place and may
        fail), and comes back with what :meth:`write` commits."""
        states: dict[str, TerminalState | None] = {}
        marks: dict[str, Any] = {}
        for t, raw in zip(terminals, raws, strict=True):
            known = self._known.pop(t, None)
            if known is not None and raw == known[0]:
                states[t], marks[t] = known[1], known[2]
            elif raw:
                data = orjson.loads(raw)
                states[t], marks[t] = TerminalState.from_dict(data), data.get("ll")
            else:
                states[t] = marks[t] = None
        return states, marks

    def _remember(self, written: dict[str, tuple[bytes, TerminalState, Any]]) -> None:
        self._known.update(written)
        while len(self._known) > KNOWN_TERMINALS:
            self._known.pop(next(iter(self._known)))

    def _commands(self, writes: Writes, states: dict[str, TerminalState | None],
                  changed: set[str], marks: dict[str, Any]
                  ) -> tuple[list[tuple[Any, ...]], dict[str, tuple[bytes, TerminalState, Any]]]:
        """The batch's writes (one :data:`WRITE_BATCH` call, plus the late log when there
        is one) and the terminal states they write (bytes, state, mark)."""
        ttl, p = self.settings.online_ttl_seconds, self.project
        written = {}
        keys: list[bytes | str] = [self._row_key(tid) for tid, *_ in writes.rows]
        args: list[Any] = [ttl, len(writes.rows), _WIDTH, *_FIELDS]
        if writes.rows:
            cells = np.empty((len(writes.rows), _WIDTH), dtype=_CELL)
            cells["tag"] = DOUBLE_TAG
            cells["value"] = [vector for *_, vector in writes.rows]
            blob, size = cells.tobytes(), _WIDTH * _CELL.itemsize
            for i, (_, card, terminal, event_ms, _) in enumerate(writes.rows):
                args += (blob[i * size:(i + 1) * size], _CARD_FIELD, encode_string(card),
                         _TERMINAL_FIELD, encode_string(terminal), _TS_FIELD,
                         encode_timestamp(event_ms))
        for key in set(changed) | {k for k, m in marks.items() if m is not None}:
            state = states.get(key)
            if state is not None:
                data = state.to_dict()
                data["ll"] = marks.get(key)
                raw = orjson.dumps(data)
                keys.append(terminal_state_key(p, key))
                args.append(raw)
                written[key] = (raw, state, marks.get(key))
        for tid, value in writes.registry:
            keys.append(registry_key(p, tid))
            args.append(value)
        for card, served in writes.cards:
            keys.append(card_state_key(p, card))
            args.append(served)
        commands: list[tuple[Any, ...]] = []
        if keys:
            commands.append(("EVAL", WRITE_BATCH, len(keys), *keys, *args))
        if writes.late:
            late_key = f"{p}:late"
            late = (x for lt in writes.late
                    for x in (f"{lt.kind}:{lt.item_id}:{lt.to_ms}", orjson.dumps(lt.__dict__)))
            commands += [("HSET", late_key, *late), ("EXPIRE", late_key, ttl)]
        return commands, written


def _call(conn: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """``commands`` sent in one write on ``conn``, their replies read in order."""
    conn.send_packed_command(conn.pack_commands(commands))
    return [conn.read_response() for _ in commands]


def _exec(conn: Any, queued: int) -> bool:
    """Read the replies of a sent ``MULTI``, ``queued`` commands and ``EXEC``: False when a
    watched key changed (nothing was written); a command that failed raises."""
    errors = []
    for _ in range(queued + 1):  # +OK, then +QUEUED each (or the error queuing it)
        try:
            conn.read_response()
        except redis_lib.ResponseError as exc:
            errors.append(exc)
    try:
        replies = conn.read_response()
    except redis_lib.ResponseError as exc:  # EXECABORT: a command was refused at queuing
        raise (errors[0] if errors else exc) from exc
    if replies is None:
        return False
    failed = [r for r in replies if isinstance(r, redis_lib.ResponseError)]
    if failed:
        raise failed[0]
    return True


def read_late(client: redis_lib.Redis, project: str) -> list[dict[str, Any]]:
    """Every late item recorded for ``project`` (tests and audits)."""
    raw: dict[bytes, bytes] = client.hgetall(f"{project}:late")  # type: ignore[assignment]
    return [orjson.loads(v) for v in raw.values()]
