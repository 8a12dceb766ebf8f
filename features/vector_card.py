"""The card features of :func:`features.card.card_update`, for a whole history at once.

Same definitions, same order of the 31 values (:data:`features.card.CARD_FEATURE_NAMES`);
see :mod:`features.vectorised` for the contract and the tolerance. Rows are the
transactions the card state folds in (a repeated id among the card's last
:data:`~features.card.DEDUP_SIZE` is dropped before, by :func:`applied_rows`), sorted by card
and, within a card, in stream order (event time never goes backwards there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from features.card import (
    DEDUP_SIZE,
    HALF_LIFE_MS,
    HOUR_MS,
    MINUTE_MS,
    NO_PREVIOUS_SECONDS,
    NOVELTY_DAYS,
    RATIO_CAP,
    ZSCORE_CAP,
    ZSCORE_STD_FLOOR,
)
from features.vector_windows import (
    GroupClock,
    day_sums,
    distinct_in_window,
    previous_same,
    put_columns,
    run_starts,
    sliding_sums,
    start_index,
)
from features.windows import DAY_MS


@dataclass(frozen=True)
class Rows:
    """One history's transactions as arrays, in stream (event-time) order (``ms`` sorted).

    Codes are dense integers per distinct string; ``device`` is -1 where it is missing;
    ``terminal`` codes the terminal entity (:func:`features.card.terminal_key`).
    """

    tid: np.ndarray  # object array of str
    tid_code: np.ndarray
    ms: np.ndarray
    card: np.ndarray
    merchant: np.ndarray
    country: np.ndarray
    device: np.ndarray
    terminal: np.ndarray
    amount: np.ndarray
    ecom: np.ndarray  # bool
    atm: np.ndarray  # bool


@dataclass(frozen=True)
class CardPass:
    """The card side's result: applied rows in card order and what later steps reuse."""

    sel: np.ndarray  # row indices, by card then stream order
    clock: GroupClock  # over ``sel``
    position: np.ndarray  # each one's index among its card's applied rows


def applied_rows(card: np.ndarray, tid_code: np.ndarray) -> np.ndarray:
    """Rows the card state folds in: False for a repeated id among the card's last
    ``DEDUP_SIZE`` applied ones (the only rows ``card_update`` returns None for)."""
    applied = np.ones(len(card), dtype=bool)
    pair = card.astype(np.int64) * np.int64(int(tid_code.max(initial=0)) + 1) + tid_code
    _, first, counts = np.unique(pair, return_index=True, return_counts=True)
    if (counts == 1).all():
        return applied
    cards = np.unique(card[first[counts > 1]])
    recent: dict[int, list[int]] = {}
    for r in np.flatnonzero(np.isin(card, cards)).tolist():  # few cards: a plain loop
        seen = recent.setdefault(int(card[r]), [])
        t = int(tid_code[r])
        if t in seen:
            applied[r] = False
            continue
        seen.append(t)
        if len(seen) > DEDUP_SIZE:
            del seen[0]
    return applied


def _python(fn: Callable[..., float], *args: Iterable[float], n: int) -> np.ndarray:
    """``fn`` of :mod:`math` element-wise, as the core computes it: numpy's SIMD log1p and
    pow may differ from the C library by an ulp, and C ``pow(x, 2)`` from ``x * x``."""
    return np.fromiter(map(fn, *args), dtype=np.float64, count=n)


def _profile(first: np.ndarray, t: np.ndarray, amount: np.ndarray, ecom: np.ndarray,
             night: np.ndarray) -> np.ndarray:
    """The slow profile *before* each row (``features.card._profile``), the same float
    operations in the same order, run position by position across all cards."""
    n = len(t)
    gap = np.zeros(n)
    # within a card only: across cards the gap can be hugely negative and 0.5 ** -gap
    # overflows (the first row of a card never uses its decay)
    gap[1:] = np.where(first[1:], 0, t[1:] - t[:-1]) / HALF_LIFE_MS
    decay = _python(math.pow, repeat(0.5), gap.tolist(), n=n)  # the core's 0.5 ** gap
    begin = np.flatnonzero(first)
    length = np.diff(np.append(begin, n))
    order = np.argsort(-length, kind="stable")
    begin, length = begin[order], length[order]
    neg = -length
    out = np.empty((n, 3))
    out[begin, 0], out[begin, 1:] = amount[begin], 0.0  # no history: (amount, 0, 0)
    state = np.zeros((len(begin), 4))  # weight, amount, ecom, nights
    state[:, 0] = 1.0
    state[:, 1], state[:, 2], state[:, 3] = amount[begin], ecom[begin], night[begin]
    for k in range(1, int(length[0]) if len(length) else 0):
        live = int(np.searchsorted(neg, -k, side="left"))
        rows = begin[:live] + k
        s = state[:live] * decay[rows, None]  # dt == 0 decays by exactly 1.0
        weight = s[:, 0]
        positive = weight > 0
        out[rows, 0] = np.where(positive, s[:, 1] / np.where(positive, weight, 1.0),
                                amount[rows])
        out[rows, 1] = np.where(positive, s[:, 2] / np.where(positive, weight, 1.0), 0.0)
        out[rows, 2] = np.where(positive, s[:, 3] / np.where(positive, weight, 1.0), 0.0)
        s[:, 0] += 1.0
        s[:, 1] += amount[rows]
        s[:, 2] += ecom[rows]
        s[:, 3] += night[rows]
        state[:live] = s
    return out


def card_features(rows: Rows, applied: np.ndarray, out: np.ndarray) -> CardPass:
    """Write the card features of every applied row into its row of ``out`` (columns
    ``0 .. N_CARD - 1``, in :data:`~features.card.CARD_FEATURE_NAMES` order)."""
    sel = np.flatnonzero(applied)
    sel = sel[np.argsort(rows.card[sel], kind="stable")]
    g, t, a = rows.card[sel], rows.ms[sel], rows.amount[sel]
    n = len(sel)
    idx = np.arange(n)
    first = run_starts(g)
    begin = start_index(first)
    clock = GroupClock(g, t, int(rows.ms[0]), int(rows.ms[-1]))
    day = t // DAY_MS
    lo = {span: clock.first_after(t - span) for span in (10 * MINUTE_MS, HOUR_MS, DAY_MS)}
    lo7 = clock.first_at((day - 6) * DAY_MS)
    lo30 = clock.first_at((day - 29) * DAY_MS)

    sums = [sliding_sums(a, lo[span])[0] for span in (10 * MINUTE_MS, HOUR_MS, DAY_MS)]
    s7 = day_sums(a, day, lo7)[0]
    s30_after, s30_before = day_sums(np.column_stack([a, a * a]), day, lo30)
    n7, n30 = (idx - lo7 + 1).astype(np.float64), (idx - lo30 + 1).astype(np.float64)
    prior_n = (idx - lo30).astype(np.float64)
    prior_sum, prior_sq = s30_before[:, 0], s30_before[:, 1]
    has_prior = prior_n > 0
    safe_n = np.where(has_prior, prior_n, 1.0)
    prior_mean = np.where(has_prior, prior_sum / safe_n, 0.0)
    mean_sq = _python(math.pow, prior_mean.tolist(), repeat(2.0), n=n)  # prior_mean**2
    var = np.maximum(0.0, prior_sq / safe_n - mean_sq)
    prior_std = np.where(prior_n > 2, np.sqrt(var), 0.0)
    prior_std = np.maximum(prior_std, ZSCORE_STD_FLOOR * prior_mean)
    scored = (prior_std > 0) & (prior_n > 2)
    with np.errstate(over="ignore"):  # an overflow to inf is clipped, as in the core
        z = np.where(scored, (a - prior_mean) / np.where(scored, prior_std, 1.0), 0.0)
        z = np.maximum(-ZSCORE_CAP, np.minimum(ZSCORE_CAP, z))
        positive_mean = prior_mean > 0
        ratio = np.where(positive_mean, np.minimum(
            RATIO_CAP, a / np.where(positive_mean, prior_mean, 1.0)), 1.0)

    since = np.full(n, NO_PREVIOUS_SECONDS)
    later = ~first
    since[later] = np.maximum(0.0, (t[later] - t[idx[later] - 1]) / 1000.0)

    keys = [rows.merchant[sel], rows.country[sel], rows.device[sel]]
    prev = [previous_same(g, k) for k in keys]
    distinct = distinct_in_window(keys, prev, lo[DAY_MS])
    horizon = t - NOVELTY_DAYS * DAY_MS
    last_seen = [np.where(p >= 0, t[np.maximum(p, 0)], -1) for p in prev]
    new_merchant = (last_seen[0] < horizon) & has_prior
    new_country = (last_seen[1] < horizon) & has_prior
    new_device = (keys[2] >= 0) & (last_seen[2] < horizon)

    night = ((t // HOUR_MS) % 24 < 6).astype(np.float64)
    weekend = ((day + 3) % 7 >= 5).astype(np.float64)
    ecom = rows.ecom[sel].astype(np.float64)
    profile = _profile(first, t, a, ecom, night)
    columns = [
        a, _python(math.log1p, a.tolist(), n=n), night, weekend, ecom, rows.atm[sel],
        idx - lo[10 * MINUTE_MS] + 1, idx - lo[HOUR_MS] + 1, idx - lo[DAY_MS] + 1, n7, n30,
        sums[0], sums[1], sums[2], s7, s30_after[:, 0], s7 / n7, s30_after[:, 0] / n30,
        z, ratio, since, *distinct, new_merchant, new_device, new_country,
        (t - t[begin]) / DAY_MS, profile[:, 0], profile[:, 1], profile[:, 2],
    ]
    put_columns(out, sel, columns, 0)
    return CardPass(sel, clock, idx - begin)
