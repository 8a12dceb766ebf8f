"""Card states of the partitions a worker owns: in memory, committed through a changelog.

Each card partition ``p`` of ``transactions``/``labels`` has its states in partition ``p`` of
the compacted changelog topic (key: card_id, value: the state's JSON, including the
transaction -> terminal map that resolves labels). A micro-batch's changed states are
produced to the changelog in the batch's Kafka transaction, so the changelog always holds
exactly the states of the committed input offsets. :class:`CardStates` keeps

- ``committed``: per partition, the JSON of each card as last committed (what the
  changelog holds; restored from it on assignment, :mod:`features.stream.changelog`);
- ``live``: decoded states (the working copies, a bounded LRU), which a batch mutates;
  :meth:`rollback` drops the ones a failed batch touched, so they are decoded from
  ``committed`` again — the redo starts from exactly the committed state.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import orjson

from features.card import CardState

WARM_CARDS = 20_000


class StateNotRestored(RuntimeError):
    """A record of a partition whose card states this worker has not restored."""


def encode_card(state: CardState) -> tuple[bytes, bytes]:
    """``(stored, served)`` JSON of a card state: ``served`` (the REST API's snapshot,
    :func:`~features.redis_layout.card_state_key`) leaves out the transaction -> terminal
    map, which only resolves labels and is most of the bytes.

    >>> stored, served = encode_card(CardState())
    >>> CardState.from_dict(orjson.loads(stored)).to_dict() == CardState().to_dict()
    True
    >>> b'"x"' in stored, b'"x"' in served
    (True, False)
    """
    data = state.to_dict()
    txns = data.pop("x")
    served = orjson.dumps(data)
    return served[:-1] + b',"x":' + orjson.dumps(txns) + b"}", served


@dataclass
class CardStates:
    """Committed and working card states by partition (see the module doc)."""

    capacity: int = WARM_CARDS
    committed: dict[int, dict[str, bytes]] = field(default_factory=dict)
    live: OrderedDict[str, CardState] = field(default_factory=OrderedDict)
    changed: dict[str, int] = field(default_factory=dict)  # card -> partition, this batch

    def load_partition(self, partition: int, states: dict[str, bytes]) -> None:
        self.committed[partition] = states

    def drop_partition(self, partition: int) -> None:
        cards = self.committed.pop(partition, {})
        for card in cards:
            self.live.pop(card, None)

    def owns(self, partition: int) -> bool:
        return partition in self.committed

    def get(self, card: str, partition: int) -> CardState | None:
        """``card``'s working state; None for a card the partition has never seen.

        Raises :class:`StateNotRestored` for a partition whose states were not restored:
        reading it as empty would start every card of it afresh (silently wrong card
        features), so a record of such a partition is never processed."""
        if partition not in self.committed:
            raise StateNotRestored(f"card states of partition {partition} are not restored")
        state = self.live.get(card)
        if state is not None:
            self.live.move_to_end(card)
            return state
        raw = self.committed[partition].get(card)
        if raw is None:
            return None
        state = CardState.from_dict(orjson.loads(raw))
        self._keep(card, state)
        return state

    def put(self, card: str, state: CardState, partition: int) -> None:
        """``state`` is ``card``'s working state now (changed in this batch)."""
        self.changed[card] = partition
        self._keep(card, state)

    def encode_changed(self) -> list[tuple[int, str, bytes, bytes]]:
        """``(partition, card, stored, served)`` of every state changed in this batch."""
        out = []
        for card, partition in self.changed.items():
            stored, served = encode_card(self.live[card])
            out.append((partition, card, stored, served))
        return out

    def commit(self, encoded: list[tuple[int, str, bytes, bytes]]) -> None:
        """The batch committed: its states are the committed ones now."""
        for partition, card, stored, _ in encoded:
            self.committed.setdefault(partition, {})[card] = stored
        self.changed.clear()
        self._trim()

    def rollback(self) -> None:
        """The batch failed: forget its working copies (decoded again when needed)."""
        for card in self.changed:
            self.live.pop(card, None)
        self.changed.clear()

    def _keep(self, card: str, state: CardState) -> None:
        self.live[card] = state
        self.live.move_to_end(card)

    def _trim(self) -> None:
        while len(self.live) > self.capacity:
            self.live.popitem(last=False)
