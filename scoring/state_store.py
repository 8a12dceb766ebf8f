"""Entity-state snapshots for the synchronous scoring path (``POST /v1/score``).

The stream computes a transaction's features inside the feature worker; a synchronous
caller cannot wait for that, so the API recomputes them with the *same* pure core from the
latest state snapshots of the transaction's card and terminal, which the feature worker
writes to Redis with each micro-batch (the state is *not* written back by the API: the
stream stays the single writer and the transaction, when published, is folded in there).

Redis layout (values are UTF-8 JSON of the core's ``to_dict()``; TTL = online TTL)::

    {feast_project}:card_state:{card_id}              CardState.to_dict() without "x"
    {feast_project}:terminal_state:{terminal_key}     TerminalState.to_dict()

where ``terminal_key`` is :func:`features.core.terminal_key` (``t:<terminal_id>``, or
``m:<merchant_id>`` for a transaction without a terminal). A missing key means a new
entity (empty state), exactly as in the stream. The key functions live in
:mod:`features.redis_layout` (the feature worker writes these keys).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol, cast

from features.core import (
    FEATURE_NAMES,
    CardState,
    Event,
    Features,
    TerminalState,
    card_update,
    terminal_key,
    terminal_update,
)
from features.redis_layout import card_state_key, terminal_state_key
from features.terminal import terminal_peek
from infra.errors import InvalidInput, ServiceError
from infra.settings import Settings
from streams.schema import Transaction

if TYPE_CHECKING:
    import redis


class StateStore(Protocol):
    """Latest card and terminal state snapshots (None = entity never seen)."""

    def read(self, card_id: str, terminal: str) -> tuple[CardState | None, TerminalState | None]:
        ...

    def ping(self) -> bool: ...


class RedisStateStore:
    """:class:`StateStore` over Redis: one ``MGET`` round trip per request."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self._project = settings.feast_project
        self._settings = settings
        self._client = client

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            import redis as redis_lib

            from infra.services import redis_url

            password = self._settings.redis_password
            self._client = redis_lib.Redis.from_url(
                redis_url(self._settings),
                password=password.get_secret_value() if password else None,
                socket_timeout=2.0, socket_connect_timeout=2.0)
        return self._client

    def read(self, card_id: str, terminal: str) -> tuple[CardState | None, TerminalState | None]:
        import redis as redis_lib

        keys = [card_state_key(self._project, card_id), terminal_state_key(self._project, terminal)]
        try:
            card_raw, term_raw = cast(list[Any], self.client.mget(keys))
        except redis_lib.RedisError as exc:
            raise ServiceError(f"redis: cannot read entity state: {exc}") from exc
        return (CardState.from_dict(_json(card_raw)) if card_raw else None,
                TerminalState.from_dict(_json(term_raw)) if term_raw else None)

    def write(self, card_id: str, card: CardState, terminal: str, state: TerminalState) -> None:
        """What the feature worker does per entity (used by tests and tools)."""
        ttl = self._settings.online_ttl_seconds
        pipe = self.client.pipeline(transaction=False)
        pipe.set(card_state_key(self._project, card_id), json.dumps(card.to_dict()), ex=ttl)
        pipe.set(terminal_state_key(self._project, terminal), json.dumps(state.to_dict()), ex=ttl)
        pipe.execute()

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _json(raw: Any) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ServiceError("corrupt entity-state snapshot in redis (not a JSON object)")
    return data


class AlreadyProcessed(InvalidInput):
    """The transaction id is already folded into its card's state (the API answers 409)."""


def to_event(txn: Transaction) -> Event:
    return Event(txn.transaction_id, txn.event_ms, txn.card_id, txn.merchant_id, txn.amount,
                 txn.channel, txn.country, txn.device_id, txn.terminal_id)


def features_for(store: StateStore, txn: Transaction) -> Features:
    """T's full feature vector (:data:`FEATURE_NAMES` order) from the latest snapshots.

    Same composition as the stream's stages: card features, then terminal features, each
    from the pure update of the entity's state with T; a T older than the terminal's last
    item gets :func:`~features.terminal.terminal_peek`, as in the stream. Raises
    :class:`AlreadyProcessed` when the card state already holds T.
    """
    event = to_event(txn)
    terminal = terminal_key(txn.terminal_id, txn.merchant_id)
    card, term = store.read(txn.card_id, terminal)
    _, card_features = card_update(card, event)
    if card_features is None:
        raise AlreadyProcessed(f"transaction {txn.transaction_id} was already processed by the "
                               "stream (duplicate transaction_id); its decision is in `scores`")
    term_state, term_features = terminal_update(term, txn.transaction_id, event.event_ms,
                                                txn.amount)
    if term_features is None:  # behind the terminal's order: what the stream does for late T
        term_features = terminal_peek(term_state)
    vector = card_features + term_features
    if len(vector) != len(FEATURE_NAMES):
        raise ServiceError(f"feature core returned {len(vector)} values, "
                           f"expected {len(FEATURE_NAMES)}")
    return vector
