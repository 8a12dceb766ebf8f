"""Array building blocks of the vectorised feature twin (:mod:`features.vectorised`).

Rows are sorted by entity (card or terminal) and, within an entity, in the order the
streaming core applies them (event time never goes backwards inside an entity). Then:

- :class:`GroupClock` answers "the first row of this entity at or after / strictly after
  time x" for every row at once (window lower bounds) with one ``searchsorted``;
- :func:`sliding_sums` and :func:`day_sums` reproduce a :class:`~features.windows.Sliding`
  or :class:`~features.windows.DayBuckets` running total bit for bit: they lay out the
  stream's own operations (subtract each expired value or day bucket in order, restart at
  ``0.0`` when the window empties, add the new value) and replay them with
  :func:`restart_cumsum`, which adds left to right like the running total does;
- :func:`previous_same` and :func:`distinct_in_window` give last-seen times and the distinct
  counters of the 24 h card window.

Loops here run over *positions* (the k-th row of every run at once), never over rows, so
their Python cost is bounded by the longest run, not by the number of rows.
"""

from __future__ import annotations

import numpy as np

TAIL = 32  # when this few runs are left, finish each with one np.cumsum (sequential too)


def run_starts(groups: np.ndarray) -> np.ndarray:
    """True where a row starts a new value of ``groups`` (sorted or at least contiguous)."""
    first = np.ones(len(groups), dtype=bool)
    first[1:] = groups[1:] != groups[:-1]
    return first


def start_index(first: np.ndarray) -> np.ndarray:
    """For every row, the index of the first row of its run (``first`` from run_starts)."""
    return np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))


class Unsupported(Exception):  # noqa: N818 - an internal signal, not a user error
    """An input the vectorised twin does not reproduce exactly (the caller falls back)."""


class GroupClock:
    """Window lower bounds in rows sorted by group, times non-decreasing within a group.

    A (group, time) pair becomes one integer key ``dense_group * width + time - lowest``
    (sorted like the rows), so a bound query for every row is a single ``searchsorted``.
    Bounds are clipped to ``[lowest, highest + 1]``, which keeps their meaning.
    """

    def __init__(self, groups: np.ndarray, times: np.ndarray, lowest: int, highest: int
                 ) -> None:
        first = run_starts(groups)
        self.values = groups[first]  # sorted distinct group values
        self.begin = np.flatnonzero(first)  # first row of each dense group
        self.dense = np.cumsum(first) - 1
        self.lowest, self.highest = lowest - 1, highest + 1
        self.width = np.int64(self.highest - self.lowest + 2)
        if len(self.values) * float(self.width) >= 2.0**62:
            raise Unsupported("too many entities times too long a time range for int64 keys")
        self.keys = self.dense * self.width + (times - self.lowest)
        self.times = times

    def dense_of(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dense ids of arbitrary group values and whether each is present."""
        pos = np.searchsorted(self.values, groups)
        found = pos < len(self.values)
        found[found] = self.values[pos[found]] == groups[found]
        return np.where(found, pos, 0), found

    def first_after(self, bounds: np.ndarray, dense: np.ndarray | None = None) -> np.ndarray:
        """Index of the first row of the group with time > bound (the group's end if none)."""
        return self._first(self.dense if dense is None else dense, bounds, 1)

    def first_at(self, bounds: np.ndarray, dense: np.ndarray | None = None) -> np.ndarray:
        """Index of the first row of the group with time >= bound (the group's end if none)."""
        return self._first(self.dense if dense is None else dense, bounds, 0)

    def _first(self, dense: np.ndarray, bounds: np.ndarray, strict: int) -> np.ndarray:
        offset = np.clip(bounds, self.lowest, self.highest) - self.lowest + strict
        return np.searchsorted(self.keys, dense * self.width + offset, side="left")


def restart_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` (1-d or rows x columns) restarting at 0.0 where ``starts``.

    Each run is summed left to right, one addition per row, exactly like a running total
    (``starts[0]`` must be True).
    """
    out = np.array(values, dtype=np.float64, copy=True)
    begin = np.flatnonzero(starts)
    length = np.diff(np.append(begin, len(out)))
    order = np.argsort(-length, kind="stable")
    begin, length = begin[order], length[order]
    neg = -length
    for k in range(1, int(length[0]) if len(length) else 0):
        live = int(np.searchsorted(neg, -k, side="left"))  # runs longer than k
        if live <= TAIL:
            for b, n in zip(begin[:live].tolist(), length[:live].tolist(), strict=True):
                out[b + k - 1:b + n] = np.cumsum(out[b + k - 1:b + n], axis=0)
            break
        rows = begin[:live] + k
        out[rows] += out[rows - 1]
    return out


def _previous_bound(lo: np.ndarray) -> np.ndarray:
    prev = np.empty_like(lo)
    prev[:1] = 0
    prev[1:] = lo[:-1]
    return prev


def _fold(add: np.ndarray, sub: np.ndarray, n_sub: np.ndarray, reset: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Replay a running total: for each row j, subtract its ``n_sub[j]`` expired values
    (the next ones of ``sub``), restart at 0.0 if ``reset[j]``, then add ``add[j]``.

    Returns the total after each row and just before its addition.
    """
    add_at = np.cumsum(n_sub + 1) - 1
    ops = np.empty((int(add_at[-1]) + 1 if len(add_at) else 0, *add.shape[1:]))
    is_add = np.zeros(len(ops), dtype=bool)
    is_add[add_at] = True
    ops[add_at] = add
    ops[~is_add] = -sub  # x + (-y) is x - y, bit for bit
    starts = np.zeros(len(ops), dtype=bool)
    starts[add_at[reset]] = True
    total = restart_cumsum(ops, starts)
    before = np.where(reset.reshape(-1, *([1] * (add.ndim - 1))), 0.0, total[add_at - 1])
    return total[add_at], before


def _walk(begin: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``concatenate([arange(b, b + c) for b, c in zip(begin, count)])``, vectorised."""
    offset = np.cumsum(count) - count
    return np.repeat(begin - offset, count) + np.arange(int(count.sum()))


def sliding_sums(values: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A :class:`~features.windows.Sliding` total over rows ``[lo[j], j]`` (and just before
    row j's addition), with the stream's float operations in the stream's order.

    ``lo``: window lower bounds within each row's group, non-decreasing within it. The
    total restarts at 0.0 where the window holds only the row itself (``lo[j] == j``).
    """
    reset = lo == np.arange(len(lo))
    prev = _previous_bound(lo)
    n_sub = np.where(reset, 0, lo - prev)
    return _fold(values, values[_walk(prev, n_sub)], n_sub, reset)


def day_sums(values: np.ndarray, day: np.ndarray, lo: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """A :class:`~features.windows.DayBuckets` total (the stream's float operations).

    Rows are sorted by group then time; ``lo`` is the first row of the span's first day
    (within the row's group). A new day subtracts whole expired buckets, each the running
    sum of its day's rows; the total restarts at 0.0 when no bucket is left in the span.
    """
    n = len(lo)
    new_day = np.ones(n, dtype=bool)
    new_day[1:] = day[1:] != day[:-1]
    new_day |= lo == np.arange(n)  # a group's first row (its window is only itself)
    bucket_sum = restart_cumsum(values, new_day)
    run = np.cumsum(new_day) - 1
    run_end = np.append(np.flatnonzero(new_day)[1:], n) - 1
    reset = lo == np.arange(n)
    prev = _previous_bound(lo)
    n_sub = np.where(reset, 0, run[lo] - run[prev])
    expired = run_end[_walk(run[prev], n_sub)]
    return _fold(values, bucket_sum[expired], n_sub, reset)


def previous_same(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of the previous row of the same group with the same key (-1 if none, or if
    the key is -1, i.e. missing). Rows are in group order."""
    n = len(keys)
    combined = groups.astype(np.int64) * np.int64(int(keys.max(initial=0)) + 2) + keys + 1
    order = np.argsort(combined, kind="stable")
    same = np.zeros(n, dtype=bool)
    same[1:] = combined[order[1:]] == combined[order[:-1]]
    prev = np.full(n, -1, dtype=np.int64)
    prev[order[same]] = order[np.flatnonzero(same) - 1]
    prev[keys < 0] = -1
    return prev


def distinct_in_window(keys: list[np.ndarray], prev: list[np.ndarray],
                       lo: np.ndarray) -> list[np.ndarray]:
    """Distinct non-missing keys among rows ``[lo[j], j]``, for each key array.

    A row i in the window is the first of its key in the window when its previous
    occurrence ``prev[i]`` is before ``lo[j]``; counting those counts distinct keys.
    """
    n = len(lo)
    idx = np.arange(n)
    size = idx - lo + 1
    order = np.argsort(-size, kind="stable")
    neg = -size[order]
    counts = [np.zeros(n, dtype=np.int64) for _ in keys]
    for k in range(int(size.max(initial=0))):
        live = int(np.searchsorted(neg, -k, side="left"))  # windows longer than k
        rows = order[:live]
        i = rows - k
        bound = lo[rows]
        for key, before, count in zip(keys, prev, counts, strict=True):
            count[rows] += (key[i] >= 0) & (before[i] < bound)
    return counts


def put_columns(out: np.ndarray, sel: np.ndarray, columns: list[np.ndarray], first: int
                ) -> None:
    """``out[sel[i], first + k] = columns[k][i]``; a gather when ``sel`` covers every row
    (much faster than a scatter into a column-major array)."""
    if len(sel) == len(out):
        inverse = np.empty(len(sel), dtype=np.int64)
        inverse[sel] = np.arange(len(sel))
        for k, column in enumerate(columns):
            out[:, first + k] = column[inverse]
        return
    for k, column in enumerate(columns):
        out[sel, first + k] = column
