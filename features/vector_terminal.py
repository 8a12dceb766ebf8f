"""Terminal features and label events of :mod:`features.terminal`, for a whole history.

Reproduces :meth:`features.core.FeatureCore.run` on the terminal side; see
:mod:`features.vectorised` for the contract. The rules it relies on (all from the core):

- A terminal applies its items in :func:`~features.terminal.item_order`
  ``(time, kind, transaction_id)``: transactions of the same millisecond in id order, a
  label before the transactions of its millisecond, and a transaction whose
  ``(time, id)`` the terminal already applied is dropped (``terminal_update`` -> None).
- A label is resolved through its card's state once every transaction of the card up to
  its ``label_ms`` was folded in, i.e. to the *last applied* row of (card, id) with
  ``event_ms <= label_ms`` that the card's id map still holds (the newest
  :data:`~features.card.TXN_MAP_CAP`); otherwise it is dropped (also a missing label time,
  which becomes a far-past ``label_ms``).
- A fraud label counts +1 in the day bucket of its transaction when that bucket exists,
  i.e. the terminal applied a transaction that day before the label (``ms < label_ms``),
  and is within the longest span (``d + 30`` days) of the label's day; a later genuine
  verdict withdraws it. Fraud counts of T then sum the counted labels with
  ``label_ms <= T`` in each of T's day spans; delayed windows are differences of spans.
- ``d`` is the process's :func:`~features.terminal.label_delay`, read once per call of
  :func:`terminal_features` (the core's new states take the same value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.card import CARD_FEATURE_NAMES, HOUR_MS, TXN_MAP_CAP
from features.terminal import DELAYED_WINDOWS, day_spans, delay_of, known_days
from features.vector_card import CardPass, Rows
from features.vector_windows import GroupClock, Unsupported, put_columns, sliding_sums
from features.windows import DAY_MS

N_CARD = len(CARD_FEATURE_NAMES)


@dataclass(frozen=True)
class Labels:
    """Label events as arrays: card and id codes shared with :class:`Rows`."""

    card: np.ndarray
    tid_code: np.ndarray
    tid: np.ndarray  # object array of str (item order compares ids as strings)
    ms: np.ndarray
    fraud: np.ndarray  # bool
    row: np.ndarray | None = None  # each label's own row, when ids are unique (see resolve)


def terminal_order(rows: Rows, applied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Card-applied rows in terminal item order, and which of them the terminal applies."""
    sel = np.flatnonzero(applied)
    sel = sel[np.argsort(rows.terminal[sel], kind="stable")]  # (terminal, ms, stream)
    term, ms = rows.terminal[sel], rows.ms[sel]
    tie = np.zeros(len(sel), dtype=bool)
    tie[1:] = (term[1:] == term[:-1]) & (ms[1:] == ms[:-1])
    if tie.any():  # same terminal and millisecond: transaction id order, then stream order
        tie[:-1] |= tie[1:]
        tid_rank = np.zeros(len(sel), dtype=np.int64)
        tid_rank[tie] = np.unique(rows.tid[sel[tie]], return_inverse=True)[1]
        sel = sel[np.lexsort((sel, tid_rank, ms, term))]
    code = rows.tid_code[sel]
    again = np.zeros(len(sel), dtype=bool)
    again[1:] = ((rows.terminal[sel[1:]] == rows.terminal[sel[:-1]])
                 & (rows.ms[sel[1:]] == rows.ms[sel[:-1]]) & (code[1:] == code[:-1]))
    return sel, ~again


def resolve(rows: Rows, cards: CardPass, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """``(label indices, row indices)``: the transaction each resolvable label points at.

    With ``labels.row`` (a history's own labels, every id once, so every row applied) the
    candidate is the label's own row; otherwise the last applied row of (card, id) up to
    ``label_ms`` is searched for.
    """
    sel = cards.sel
    if labels.row is not None:
        position = np.empty(len(rows.ms), dtype=np.int64)
        position[sel] = np.arange(len(sel))
        which = np.flatnonzero(rows.ms[labels.row] <= labels.ms)
        return _in_card_map(cards, labels, which, position[labels.row[which]])
    width = np.int64(int(max(rows.tid_code.max(initial=0), labels.tid_code.max(initial=0)))
                     + 1)
    pair = rows.card[sel].astype(np.int64) * width + rows.tid_code[sel]
    by_pair = np.argsort(pair, kind="stable")  # (card, id), then stream order
    pairs = GroupClock(pair[by_pair], rows.ms[sel[by_pair]], int(rows.ms[0]),
                       int(rows.ms[-1]))
    dense, found = pairs.dense_of(labels.card.astype(np.int64) * width + labels.tid_code)
    hit = pairs.first_after(labels.ms, dense) - 1  # last row with ms <= label_ms
    ok = found & (hit >= 0)
    ok[ok] = pairs.dense[hit[ok]] == dense[ok]
    which, at = np.flatnonzero(ok), by_pair[hit[ok]]  # ``at``: index into cards.sel
    repeated = np.flatnonzero(np.diff(pairs.begin, append=len(pair)) > 1)
    if len(repeated):  # a repeated id keeps its old place in the card's id map
        size = np.diff(cards.clock.begin, append=len(sel))
        crowded = size[cards.clock.dense[by_pair[pairs.begin[repeated]]]] > TXN_MAP_CAP
        if crowded.any():
            raise Unsupported("repeated ids on a card with more than TXN_MAP_CAP rows")
    return _in_card_map(cards, labels, which, at)


def _in_card_map(cards: CardPass, labels: Labels, which: np.ndarray, at: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Keep the labels whose transaction (``at``: index into ``cards.sel``) the card's id
    map still holds: its newest TXN_MAP_CAP transactions up to ``label_ms``."""
    card = cards.clock.dense[at]
    folded = cards.clock.first_after(labels.ms[which], card) - cards.clock.begin[card]
    kept = cards.position[at] >= folded - TXN_MAP_CAP
    return which[kept], cards.sel[at[kept]]


def label_effects(rows: Rows, order: np.ndarray, clock: GroupClock, labels: Labels,
                  which: np.ndarray, row: np.ndarray, spans: tuple[int, ...]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(terminal dense id, label_ms, day, +1 / -1)`` of every label that moves a count.

    ``order`` / ``clock``: the terminal-applied rows in item order and their clock;
    ``spans``: the terminals' day spans (:func:`~features.terminal.day_spans`).
    """
    term = rows.terminal[row]
    dense, found = clock.dense_of(term)
    if not found.all():
        raise Unsupported("a label resolved to a terminal without transactions")
    lms, fraud = labels.ms[which], labels.fraud[which]
    day = rows.ms[row] // DAY_MS
    lday = lms // DAY_MS
    first = clock.first_at(day * DAY_MS, dense)  # the terminal's first row on that day
    inside = first < len(order)
    first_ms = np.where(inside, clock.times[np.minimum(first, len(order) - 1)], lms)
    exists = inside & (clock.dense[np.minimum(first, len(order) - 1)] == dense) & (
        first_ms < (day + 1) * DAY_MS) & (first_ms < lms)
    counted = exists & (day > lday - spans[-1])
    # labels of the same (terminal, id) interact (fraud, then genuine withdraws it)
    key = dense.astype(np.int64) * np.int64(int(labels.tid_code.max(initial=0)) + 1) + (
        labels.tid_code[which])
    if labels.row is not None:  # every id once: one label per (terminal, id)
        single = np.ones(len(which), dtype=bool)
    else:
        _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        single = counts[inverse] == 1
    effect = np.where(single & fraud & counted, 1, 0).astype(np.int64)
    eday = day.copy()
    multi = np.flatnonzero(~single)
    if len(multi):
        seq = multi[np.lexsort((which[multi], lms[multi], key[multi]))]
        known: dict[int, int] = {}
        for i in seq.tolist():  # in item order within each (terminal, id)
            k = int(key[i])
            if k in known and known[k] < lday[i] - known_days(spans):
                del known[k]
            if fraud[i] and k not in known:
                if counted[i]:
                    effect[i], known[k] = 1, int(day[i])
            elif not fraud[i] and k in known:
                effect[i], eday[i] = -1, known.pop(k)
    moving = effect != 0
    return dense[moving], lms[moving], eday[moving], effect[moving]


def terminal_features(rows: Rows, cards: CardPass, labels: Labels, out: np.ndarray,
                      resolved: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Write the terminal features of every row the terminals apply into its row of
    ``out`` (the columns after the card's); return those rows. ``resolved``: the result
    of :func:`resolve` when the caller has it already."""
    spans = day_spans()
    applied = np.zeros(len(rows.ms), dtype=bool)
    applied[cards.sel] = True
    order, keep = terminal_order(rows, applied)
    sel = order[keep]
    term, t, amount = rows.terminal[sel], rows.ms[sel], rows.amount[sel]
    clock = GroupClock(term, t, int(rows.ms[0]), int(rows.ms[-1]))
    idx = np.arange(len(sel))
    day = t // DAY_MS
    lo1h = clock.first_after(t - HOUR_MS)
    lo24 = clock.first_after(t - DAY_MS)
    n = {span: idx - clock.first_at((day - span + 1) * DAY_MS) + 1 for span in spans}
    n24 = idx - lo24 + 1
    mean24 = sliding_sums(amount, lo24)[0] / n24
    which, row = resolved if resolved is not None else resolve(rows, cards, labels)
    dense, lms, eday, effect = label_effects(rows, sel, clock, labels, which, row, spans)
    frauds: dict[int, np.ndarray] = {}
    for span in spans:  # a label counts for T with label_ms <= T.ms < (its day + span) days
        start = clock.first_at(lms, dense)
        end = clock.first_at((eday + span) * DAY_MS, dense)
        live = end > start
        diff = np.zeros(len(sel) + 1, dtype=np.int64)
        np.add.at(diff, start[live], effect[live])
        np.add.at(diff, end[live], -effect[live])
        frauds[span] = np.cumsum(diff[:-1])
    columns = [idx - lo1h + 1, n24, n[7], n[30], mean24, frauds[7], frauds[30],
               frauds[7] / n[7], frauds[30] / n[30], *_delayed(n, frauds, spans)]
    put_columns(out, sel, columns, N_CARD)
    return sel


def _delayed(n: dict[int, np.ndarray], frauds: dict[int, np.ndarray],
             spans: tuple[int, ...]) -> list[np.ndarray]:
    """:func:`features.terminal._delayed` for every row: counts as exact integers, then
    the rate as one float division (as the core divides two whole-number floats)."""
    d = delay_of(spans)
    counts = [(n[d + w] - n[d]).astype(np.float64) for w in DELAYED_WINDOWS]
    fraud = [(frauds[d + w] - frauds[d]).astype(np.float64) for w in DELAYED_WINDOWS]
    rates = [np.where(c > 0, f / np.where(c > 0, c, 1.0), 0.0)
             for c, f in zip(counts, fraud, strict=True)]
    return [*counts, *fraud, *rates, frauds[spans[-1]].astype(np.float64)]
