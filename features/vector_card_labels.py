"""The label-aware card features of :func:`features.card.label_features`, for a whole history.

Part of the vectorised twin (:mod:`features.vectorised`; same contract and tolerance). The
core folds a label into its card with :func:`~features.card.card_label` once every
transaction before ``label_ms`` was folded in, so card row T sees the labels with
``label_ms < T.ms`` that resolve to a transaction the card's id map still holds (the same
labels :func:`features.vector_terminal.resolve` finds). A fraud verdict adds its
transaction (event time ``ev``) to the card's known frauds and a later genuine verdict
withdraws it, so each label that changes the set is a +1 / -1 over the card's rows with
``label_ms < T.ms < ev + W`` (``W`` = the feature's horizon): a difference array per
feature, summed in card order. Counts are whole numbers, so the values are exact.
"""

from __future__ import annotations

import numpy as np

from features.card import CARD_FEATURE_NAMES, COMPROMISED_DAYS, KNOWN_FRAUD_DAYS, TXN_MAP_DAYS
from features.vector_card import CardPass, Rows
from features.vector_terminal import Labels
from features.vector_windows import put_columns
from features.windows import DAY_MS

FIRST = CARD_FEATURE_NAMES.index("card_known_fraud_count_30d")


def _pruned_at(cards: CardPass, card: np.ndarray, lms: np.ndarray) -> np.ndarray:
    """When the card last pruned its state before a label at ``lms`` resolved: the time of
    its first row on the day of its last row with ``ms <= lms`` (far past if none)."""
    clock = cards.clock
    dense = clock.dense_of(card)[0]
    last = clock.first_after(lms, dense) - 1
    has = last >= clock.begin[dense]
    day_ms = clock.times[np.maximum(last, 0)] // DAY_MS * DAY_MS
    first = clock.first_at(day_ms, dense)
    return np.where(has, clock.times[np.minimum(first, len(clock.times) - 1)],
                    np.iinfo(np.int64).min // 2)


def _effects(rows: Rows, cards: CardPass, labels: Labels, which: np.ndarray,
             row: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(label index, event ms, +1 / -1)`` of each resolved label that changes its card's
    set of known frauds (labels of one (card, id) applied in the core's label order; an
    entry the card pruned, older than 60 days at a prune, can be added again)."""
    fraud = labels.fraud[which]
    ev = rows.ms[row]
    if labels.row is not None:  # every id once and only fraud labels: each one adds
        keep = np.flatnonzero(fraud)
        return keep, ev[keep], np.ones(len(keep), dtype=np.int64)
    width = np.int64(int(labels.tid_code.max(initial=0)) + 1)
    key = labels.card[which].astype(np.int64) * width + labels.tid_code[which]
    lms = labels.ms[which]
    effect = np.zeros(len(which), dtype=np.int64)
    eff_ms = ev.copy()
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    single = counts[inverse] == 1
    effect[single & fraud] = 1
    multi = np.flatnonzero(~single)
    known: dict[int, int] = {}
    seq = multi[np.lexsort((which[multi], lms[multi], key[multi]))]
    pruned = dict(zip(seq.tolist(), (_pruned_at(cards, rows.card[row[seq]], lms[seq])
                                     - TXN_MAP_DAYS * DAY_MS).tolist(), strict=True))
    for i in seq.tolist():
        k = int(key[i])
        if k in known and known[k] < pruned[i]:
            del known[k]
        if fraud[i] and k not in known:
            effect[i], known[k] = 1, int(ev[i])
        elif not fraud[i] and k in known:
            effect[i], eff_ms[i] = -1, known.pop(k)
    moving = np.flatnonzero(effect != 0)
    return moving, eff_ms[moving], effect[moving]


def card_label_features(rows: Rows, cards: CardPass, labels: Labels,
                        resolved: tuple[np.ndarray, np.ndarray], out: np.ndarray) -> None:
    """Write ``card_known_fraud_count_30d`` and ``card_known_compromised`` of every row the
    cards apply (``resolved``: :func:`features.vector_terminal.resolve`'s result)."""
    which, row = resolved
    n = len(cards.sel)
    at, ev, effect = _effects(rows, cards, labels, which, row)
    clock = cards.clock
    dense, found = clock.dense_of(rows.card[row[at]])
    if not found.all():  # cannot happen: a resolved label's row was applied by its card
        raise AssertionError("a resolved label's card has no applied rows")
    start = clock.first_after(labels.ms[which[at]], dense)
    columns = []
    for days in (KNOWN_FRAUD_DAYS, COMPROMISED_DAYS):
        end = clock.first_at(ev + days * DAY_MS, dense)
        live = end > start
        diff = np.zeros(n + 1, dtype=np.int64)
        np.add.at(diff, start[live], effect[live])
        np.add.at(diff, end[live], -effect[live])
        columns.append(np.cumsum(diff[:-1]))
    count, compromised = columns
    put_columns(out, cards.sel, [count.astype(np.float64),
                                 (compromised > 0).astype(np.float64)], FIRST)
