"""Input records of the stream stage, parsed and checked (pure: bytes in, items out).

A ``transactions`` or ``labels`` message becomes a :class:`TxnItem` / :class:`LabelItem`,
or a :class:`Rejected` carrying the reason it is dead-lettered. The message key must be the
record's ``card_id`` (UTF-8): a null, non-UTF-8 or different key is rejected, never re-keyed,
because the key chose the partition and so the worker holding the card's state; a record in
the wrong partition would be folded into a state that is not its card's.

``content_hash`` is what the transaction-id registry compares (:mod:`features.stream.ids`):
the validated fields in canonical JSON, so the same transaction re-serialised (other key
order or whitespace) is still the same content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from features.card import Event
from features.core import Label
from features.labels import parse_label
from infra.errors import InvalidInput
from streams.schema import Transaction, parse_transaction

Position = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class TxnItem:
    """A valid transaction and where it came from."""

    event: Event
    record: dict[str, Any]  # the validated transaction, JSON-ready (summary for alerts)
    content_hash: str
    position: Position
    publish_ms: int  # the message's Kafka timestamp (publish -> decision latency)
    raw: bytes | None = None  # the original value (dead letters carry it)

    @property
    def time_ms(self) -> int:
        return self.event.event_ms


@dataclass(frozen=True)
class LabelItem:
    """A valid label and where it came from."""

    label: Label
    position: Position

    @property
    def time_ms(self) -> int:
        return self.label.label_ms


@dataclass(frozen=True)
class Rejected:
    """A record that goes to its topic's dead-letter topic with ``reason``."""

    reason: str
    kind: str  # metric label: invalid, key, conflict, non_finite, model, ...
    key: bytes | None
    value: bytes | None
    position: Position
    timestamp_ms: int | None = None


def to_event(txn: Transaction) -> Event:
    return Event(txn.transaction_id, txn.event_ms, txn.card_id, txn.merchant_id, txn.amount,
                 txn.channel, txn.country, txn.device_id, txn.terminal_id)


def content_hash(record: dict[str, Any]) -> str:
    """A digest of a validated transaction's fields (key order and spacing do not count).

    >>> content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    True
    """
    blob = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def check_key(key: bytes | None, card_id: str) -> str | None:
    """Why ``key`` is not ``card_id`` (None when it is).

    >>> check_key(b"c1", "c1") is None, check_key(None, "c1"), check_key(b"c2", "c1")
    (True, 'message key is null, expected the card_id', "message key 'c2' != card_id 'c1'")
    """
    if key is None:
        return "message key is null, expected the card_id"
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return "message key is not UTF-8"
    if text != card_id:
        return f"message key {text[:40]!r} != card_id {card_id[:40]!r}"
    return None


def parse_txn_message(key: bytes | None, value: bytes | None, position: Position,
                      timestamp_ms: int, max_bytes: int) -> TxnItem | Rejected:
    """A transaction message as an item, or why it is rejected."""
    try:
        txn = parse_transaction(value or b"", max_bytes)
    except InvalidInput as exc:
        return Rejected(exc.reason, "invalid", key, value, position, timestamp_ms)
    bad_key = check_key(key, txn.card_id)
    if bad_key is not None:
        return Rejected(bad_key, "key", key, value, position, timestamp_ms)
    record = txn.to_record()
    return TxnItem(to_event(txn), record, content_hash(record), position, timestamp_ms, value)


def parse_label_message(key: bytes | None, value: bytes | None, position: Position,
                        timestamp_ms: int, max_bytes: int) -> LabelItem | Rejected:
    """A label message as an item, or why it is rejected."""
    try:
        label = parse_label(value or b"", max_bytes)
    except InvalidInput as exc:
        return Rejected(exc.reason, "invalid", key, value, position, timestamp_ms)
    except (ValueError, OverflowError, RecursionError) as exc:  # until parse_label is hardened
        return Rejected(f"invalid label: {exc}", "invalid", key, value, position, timestamp_ms)
    bad_key = check_key(key, label.card_id)
    if bad_key is not None:
        return Rejected(bad_key, "key", key, value, position, timestamp_ms)
    return LabelItem(label, position)
