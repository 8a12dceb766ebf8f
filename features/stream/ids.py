"""Transaction-id semantics (DESIGN.md "Guarantees"): the registry's decisions (pure).

Every transaction id the stage decided is registered in Redis
(:func:`registry_key` -> :func:`entry`: content hash, card, source topic/partition/offset),
written in the same ``MULTI`` as the feature rows and kept ``online_ttl_seconds`` (7 days by
default; a repeat older than that is a new transaction again). For a transaction read:

- no entry: ``NEW`` — decided, and registered;
- an entry with the same source position: ``REDELIVERED`` — the batch that registered it
  was rolled back (its Kafka transaction never committed), so it is processed again, and
  its stored feature row is reused (:mod:`features.stream.terminals`);
- same content and card from another position: ``REPEAT`` — the same transaction sent
  twice; no second decision, counted (metric ``stream_repeats``);
- other content or another card: ``CONFLICT`` — dead-lettered, never scored.

Ids seen earlier in the same micro-batch are judged against that earlier record the same
way (:func:`judge_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from features.stream.items import TxnItem

NEW, REDELIVERED, REPEAT, CONFLICT = "new", "redelivered", "repeat", "conflict"


def registry_key(project: str, transaction_id: str) -> str:
    """The registry key of a transaction id.

    >>> registry_key("fs", "tx-1")
    'fs:txid:tx-1'
    """
    return f"{project}:txid:{transaction_id}"


def entry(item: TxnItem) -> bytes:
    topic, partition, offset = item.position
    return orjson.dumps([item.content_hash, item.event.card_id, topic, partition, offset])


def decide(stored: bytes | None, item: TxnItem) -> str:
    """The verdict for ``item`` given its id's registry entry (None: never seen)."""
    if stored is None:
        return NEW
    try:
        digest, card, topic, partition, offset = orjson.loads(stored)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return NEW  # an unreadable entry is overwritten by this record's
    if (topic, partition, offset) == tuple(item.position):
        return REDELIVERED
    if digest == item.content_hash and card == item.event.card_id:
        return REPEAT
    return CONFLICT


def judge_batch(items: Sequence[TxnItem], stored: Sequence[Any]) -> list[str]:
    """Verdicts for a micro-batch's transactions (in order) given their registry entries;
    a later record with an id seen earlier in the batch is judged against that record."""
    seen: dict[str, bytes] = {}
    out: list[str] = []
    for item, raw in zip(items, stored, strict=True):
        tid = item.event.transaction_id
        earlier = seen.get(tid)
        verdict = decide(earlier if earlier is not None else raw, item)
        if verdict == REDELIVERED and earlier is not None:
            verdict = REPEAT  # the same position twice in one batch cannot happen; be safe
        if verdict in (NEW, REDELIVERED) and tid not in seen:
            seen[tid] = entry(item)
        out.append(verdict)
    return out
