"""One micro-batch, I/O-free but for the Redis adapter: released records in, outputs out.

:func:`process` takes the records released for processing (per input partition, offset
order) and returns what the Kafka transaction must carry — decisions, dead letters, card
changelog entries — after writing the feature rows, terminal states, id registry and API
snapshots to Redis (before any decision is produced, as DESIGN.md requires). Card states
are changed in :class:`~features.stream.cards.CardStates` (working copies until commit).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from features.card import card_label, card_update
from features.stream.cards import CardStates, StateNotRestored
from features.stream.decide import Decided, Decider
from features.stream.ids import CONFLICT, REDELIVERED, REPEAT, entry, judge_batch
from features.stream.items import LabelItem, Rejected, TxnItem
from features.stream.redis_io import StageRedis, Writes
from features.stream.release import TP, Item, card_order
from features.stream.terminals import (
    Late,
    TerminalItem,
    apply_items,
    label_item,
    terminal_of,
    txn_item,
)
from features.terminal import LabelEvent, TerminalState

log = logging.getLogger("fraudstream.features.stream.batch")


@dataclass
class Outcome:
    decided: list[Decided] = field(default_factory=list)
    rejected: list[tuple[str, Rejected]] = field(default_factory=list)  # (input role, record)
    changelog: list[tuple[int, str, bytes, bytes]] = field(default_factory=list)
    late: list[Late] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)
    unresolved_labels: int = 0


def _reject(item: TxnItem, reason: str, kind: str) -> Rejected:
    return Rejected(reason, kind, item.event.card_id.encode(), item.raw, item.position,
                    item.publish_ms)


Split = tuple[dict[int, list[TxnItem]], dict[int, list[LabelItem]], list[tuple[str, Rejected]]]


def split(released: dict[TP, list[Item]], txn_topic: str) -> Split:
    txns: dict[int, list[TxnItem]] = {}
    labels: dict[int, list[LabelItem]] = {}
    rejected: list[tuple[str, Rejected]] = []
    for (topic, p), items in released.items():
        role = "transactions" if topic == txn_topic else "labels"
        for it in items:
            if isinstance(it, Rejected):
                rejected.append((role, it))
            elif isinstance(it, TxnItem):
                txns.setdefault(p, []).append(it)
            else:
                labels.setdefault(p, []).append(it)
    return txns, labels, rejected


def process(released: dict[TP, list[Item]], txn_topic: str, cards: CardStates,
            redis: StageRedis, decider: Decider, now_ms: int) -> Outcome:
    out = Outcome()
    txns, labels, out.rejected = split(released, txn_topic)
    flat = [t for p in sorted(txns) for t in txns[p]]
    stored, rows = redis.read_ids([t.event.transaction_id for t in flat])
    verdicts = dict(zip((id(t) for t in flat), judge_batch(flat, stored), strict=True))
    writes = Writes()
    items: list[TerminalItem] = []
    card_late: list[Late] = []  # labels that reached a card behind its later transactions
    for p in sorted(set(txns) | set(labels)):
        keep = []
        for t in txns.get(p, []):
            verdict = verdicts[id(t)]
            out.verdicts[verdict] = out.verdicts.get(verdict, 0) + 1
            if verdict == CONFLICT:
                out.rejected.append(("transactions", _reject(
                    t, "transaction id conflict: the id was decided with other content or "
                    "another card", "conflict")))
            elif verdict != REPEAT:
                keep.append(t)
                writes.registry.append((t.event.transaction_id, entry(t)))
        for it in card_order(keep, labels.get(p, [])):
            if isinstance(it, TxnItem):
                before = cards.get(it.event.card_id, p)  # StateNotRestored aborts the batch
                try:
                    state, feats = card_update(before, it.event)
                except Exception as exc:  # noqa: BLE001 - one record never stops the batch
                    out.rejected.append(("transactions", _reject(
                        it, f"feature core failed: {type(exc).__name__}: {exc}", "core")))
                    continue
                cards.put(it.event.card_id, state, p)
                if feats is not None:
                    items.append(txn_item(it, feats))
            else:
                try:
                    resolved = _resolve(cards, it, p, card_late)
                except StateNotRestored:
                    raise  # the batch, not the label, is wrong: abort it
                except Exception as exc:  # noqa: BLE001 - one record never stops the batch
                    out.rejected.append(("labels", Rejected(
                        f"feature core failed: {type(exc).__name__}: {exc}", "core", None,
                        None, it.position)))
                    continue
                if resolved is None:
                    out.unresolved_labels += 1
                    log.info("label of %s (card %s) %s[%d]@%d: transaction unknown to the card",
                             it.label.transaction_id, it.label.card_id, *it.position)
                else:
                    items.append(label_item(resolved))
    redelivered = {t.event.transaction_id for t in flat if verdicts[id(t)] == REDELIVERED}
    reuse = {tid: v for tid, v in rows.items() if tid in redelivered}
    # one record per id is decided: a repeat or conflict of an id kept in this same batch
    # shares its vector and must neither be scored again nor lend its fields to the row
    kept = [t for t in flat if verdicts[id(t)] not in (REPEAT, CONFLICT)]
    by_id = {t.event.transaction_id: t for t in kept}
    vectors: dict[str, tuple[float, ...]] = {}
    out.changelog = cards.encode_changed()
    writes.cards = [(card, served) for _, card, _, served in out.changelog]
    base_rows = list(writes.rows)

    def compute(states: dict[str, TerminalState | None],
                marks: dict[str, Any]) -> tuple[Writes, set[str]]:
        result = apply_items(states, items, reuse, marks, frozenset(redelivered))
        vectors.clear()
        vectors.update(result.vectors)
        writes.rows = base_rows + [
            (tid, by_id[tid].event.card_id, terminal_of(by_id[tid]), by_id[tid].event.event_ms,
             vec) for tid, vec in result.vectors.items() if tid not in reuse and _finite(vec)]
        writes.late = result.late + card_late
        return writes, result.changed

    scored: list[tuple[list[Decided], list[tuple[str, Rejected]]]] = []

    def score() -> None:  # while Redis writes the batch; again if it had to recompute
        scored[:] = [_decide(kept, vectors, decider, now_ms)]

    redis.write(sorted({_terminal(it) for it in items}), compute, score)
    out.late = writes.late
    out.decided, rejected = scored[0]
    out.rejected += rejected
    return out


def _terminal(item: TerminalItem) -> str:
    payload = item[1]
    return payload.terminal if isinstance(payload, LabelEvent) else terminal_of(payload[0])


def _resolve(cards: CardStates, item: LabelItem, partition: int,
             late: list[Late]) -> LabelEvent | None:
    """Apply a label to its card (and return its terminal item), as the core does.

    The core applies a label before the card's transactions after ``label_ms``. A label that
    arrives once the card already folded in such a transaction (labels published late) is
    applied now and recorded as late: the label-derived card features of the card's
    transactions in ``(label_ms, last_ms]`` may differ from the core's (kind ``card_label``,
    ``terminal`` = ``card:<card_id>``).
    """
    label = item.label
    state = cards.get(label.card_id, partition)
    hit = state.transaction_terminal(label.transaction_id) if state else None
    if state is None or hit is None:
        return None
    if state.last_ms is not None and state.last_ms > label.label_ms:
        late.append(Late(label.transaction_id, "card_label", f"card:{label.card_id}",
                         label.label_ms + 1, state.last_ms))
    cards.put(label.card_id, card_label(state, label.transaction_id, label.label_ms,
                                        label.fraud), partition)
    return LabelEvent(label.transaction_id, hit[0], hit[1], label.label_ms, label.fraud)


def _finite(vector: tuple[float, ...]) -> bool:
    """Every value finite: a finite sum says so at C speed (a NaN or an infinity never sums
    to a finite number); only a sum that overflowed is checked value by value.

    >>> _finite((1.0, 2.0)), _finite((1.0, float("nan"))), _finite((float("inf"), -1e308))
    (True, False, False)
    >>> _finite((1e308, 1e308))  # the sum overflows, the values are finite
    True
    """
    return math.isfinite(sum(vector)) or all(math.isfinite(v) for v in vector)


def _decide(flat: list[TxnItem], vectors: dict[str, tuple[float, ...]], decider: Decider,
            now_ms: int) -> tuple[list[Decided], list[tuple[str, Rejected]]]:
    """The records of ``flat``'s scorable transactions, and the ones rejected."""
    ready: list[TxnItem] = []
    rejected: list[tuple[str, Rejected]] = []
    for t in flat:
        vec = vectors.get(t.event.transaction_id)
        if vec is None:
            continue  # a card-level repeat of a recent id (no new features)
        if not _finite(vec):
            rejected.append(("transactions", _reject(
                t, "non-finite feature value; not written or scored", "non_finite")))
            continue
        ready.append(t)
    decided, failed = decider.decide(
        ready, [vectors[t.event.transaction_id] for t in ready], now_ms)
    rejected += [("transactions", _reject(ready[i], "model error on this vector", "model"))
                 for i in failed]
    return decided, rejected
