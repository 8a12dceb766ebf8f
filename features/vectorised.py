"""The offline twin of the feature core: every feature of a whole history with numpy.

:func:`compute_features_vectorised` returns what :func:`features.backfill.compute_features`
returns (which runs :class:`features.core.FeatureCore`, the streaming core, one event at a
time) for the same frame and labels, with about a tenth of the CPU time; the backtest uses
it. It is a *second implementation* of the same definitions, so its equality with the core
is a contract kept by tests, not by construction: ``tests/unit/test_features_vectorised.py``
compares both on simulated and adversarial histories, row by row and feature by feature.

Equality: the twin performs the core's own float operations in the core's order wherever
the result depends on it, so the values come out bit-identical: the running window totals
are replayed operation by operation (add the new value, subtract each expired value or day
bucket, restart at 0.0 when the window empties; :mod:`features.vector_windows`), the slow
profile runs the core's recursion, and ``log1p`` / ``pow`` come from :mod:`math` (numpy's
SIMD versions can differ by an ulp). The documented tolerance is nevertheless
``rtol = atol = 1e-9`` (:data:`RTOL`, :data:`ATOL`): what the tests require, leaving room
for a platform whose libraries round differently; the largest difference observed so far
is 0.0 (``test_features_frozen`` pins bit-identity on its history).

How: rows are sorted by card (and, separately, by terminal in
:func:`~features.terminal.item_order`); window bounds are ``searchsorted`` on (entity, time)
keys; time since previous, novelty and distinct counts come from group-wise previous rows;
labels are resolved to terminals as :meth:`~features.core.FeatureCore.run` resolves them and
become +1 / -1 ranges of a terminal's rows (:mod:`features.vector_terminal`). Inputs it does
not reproduce fall back to the core (same result, core speed): rows not in event-time
order, event times before 1970, a repeated id on a card with more than ``TXN_MAP_CAP`` rows.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.backfill import _ms, compute_features
from features.core import FEATURE_NAMES
from features.vector_card import Rows, applied_rows, card_features
from features.vector_card_labels import card_label_features
from features.vector_terminal import Labels, resolve, terminal_features
from features.vector_windows import Unsupported

log = logging.getLogger("fraudstream.features.vectorised")

RTOL = 1e-9
ATOL = 1e-9


def _strings(values: pd.Series) -> np.ndarray:
    return values.astype(str).to_numpy(dtype=object)


def _optional(values: pd.Series | None, n: int) -> np.ndarray:
    """``features.backfill._optional`` as an object array (None where it gives None)."""
    if values is None:
        return np.full(n, None, dtype=object)
    raw = values.to_numpy(dtype=object)
    out = values.astype(str).to_numpy(dtype=object)
    for i in np.flatnonzero(pd.isna(raw)).tolist():  # only None and float NaN are missing
        v = raw[i]
        if v is None or (isinstance(v, float) and v != v):
            out[i] = None
    return out


def _codes(values: np.ndarray) -> np.ndarray:
    """Dense codes of an object array of str / None (None -> -1)."""
    return pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)


def _rows(frame: pd.DataFrame, tid: np.ndarray, tid_code: np.ndarray,
          card: np.ndarray) -> Rows:
    """Arrays of the fields ``features.backfill.events_from_frame`` reads."""
    n = len(frame)
    ms = _ms(frame["event_time"]).astype(np.int64)
    channel = (_strings(frame["channel"]) if "channel" in frame
               else np.full(n, "pos", dtype=object))
    merchant = _strings(frame["merchant_id"])
    terminal = _optional(frame.get("terminal_id"), n)
    has_terminal = pd.notna(terminal) & (terminal != "")  # terminal_key: falsy -> merchant
    merchant_code = _codes(merchant)
    terminal[~has_terminal] = None
    terminal_code = _codes(terminal)
    entity = np.where(has_terminal, terminal_code,
                      terminal_code.max(initial=-1) + 1 + merchant_code)
    return Rows(
        tid=tid, tid_code=tid_code, ms=ms,
        card=card, merchant=merchant_code, country=_codes(_strings(frame["country"])),
        device=_codes(_optional(frame.get("device_id"), n)),
        terminal=_codes(entity.astype(np.int64)),
        amount=frame["amount"].astype(float).to_numpy(np.float64),
        ecom=channel == "ecom", atm=channel == "atm")


def _label_arrays(frame: pd.DataFrame, labels: pd.DataFrame | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(transaction ids, card ids, label_ms, fraud)`` as ``labels_from_frame`` reads them."""
    source = labels if labels is not None else frame
    if labels is None and not {"label_time", "is_fraud"} <= set(frame.columns):
        return None
    if "label" in source.columns:
        fraud = (source["label"].astype(str) == "fraud").to_numpy()
    else:
        fraud = source["is_fraud"].astype(bool).to_numpy()
    return (_strings(source["transaction_id"]), _strings(source["card_id"]),
            _ms(source["label_time"]).astype(np.int64), fraud.astype(bool))


def _features(frame: pd.DataFrame, labels: pd.DataFrame | None) -> np.ndarray:
    n = len(frame)
    tid, card = _strings(frame["transaction_id"]), _strings(frame["card_id"])
    found = _label_arrays(frame, labels)
    l_tid, l_card, l_ms, l_fraud = found if found is not None else (
        np.empty(0, dtype=object), np.empty(0, dtype=object), np.empty(0, dtype=np.int64),
        np.empty(0, dtype=bool))
    if labels is None:  # a history's own labels: the same ids and cards, row for row
        tid_codes = _codes(tid)
        card_codes = _codes(card)
        l_tid_code = tid_codes if found is not None else tid_codes[:0]
        l_card_code = card_codes if found is not None else card_codes[:0]
    else:
        both = _codes(np.concatenate([tid, l_tid]))
        tid_codes, l_tid_code = both[:n], both[n:]
        both = _codes(np.concatenate([card, l_card]))
        card_codes, l_card_code = both[:n], both[n:]
    if not n:
        return np.empty((0, len(FEATURE_NAMES)))
    rows = _rows(frame, tid, tid_codes, card_codes)
    if (np.diff(rows.ms) < 0).any():
        raise Unsupported("rows are not in event-time order")
    if rows.ms[0] < 0:
        raise Unsupported("event times before 1970")
    out = np.empty((n, len(FEATURE_NAMES)), order="F")  # a column per feature
    cards = card_features(rows, applied_rows(rows.card, rows.tid_code), out)
    labeled = Labels(l_card_code, l_tid_code, l_tid, l_ms, l_fraud)
    n_ids = int(rows.tid_code.max()) + 1  # the frame's ids were coded first: 0 .. n_ids - 1
    if labels is None and found is not None and n_ids == n:
        # the history's own labels, each id once: a genuine label can only withdraw a
        # fraud label of its id, so only the fraud ones count, each for its own row
        own = np.flatnonzero(l_fraud)
        labeled = Labels(l_card_code[own], l_tid_code[own], l_tid[own], l_ms[own],
                         l_fraud[own], row=own)
    resolved = resolve(rows, cards, labeled)
    card_label_features(rows, cards, labeled, resolved, out)
    applied = terminal_features(rows, cards, labeled, out, resolved)
    if n_ids < n:  # repeated ids: every row gets its id's last applied vector
        last = np.full(n_ids, -1, dtype=np.int64)
        np.maximum.at(last, rows.tid_code[applied], applied)
        out = np.asfortranarray(out[last[rows.tid_code]])
    return out


def compute_features_vectorised(frame: pd.DataFrame, labels: pd.DataFrame | None = None
                                ) -> pd.DataFrame:
    """What :func:`features.backfill.compute_features` returns, computed with numpy.

    Same arguments and result (see the module doc for the tolerance); inputs the twin does
    not cover go to the core itself.
    """
    try:
        out = _features(frame, labels)
    except Unsupported as exc:
        log.info("feature core fallback (%s): %d rows", exc, len(frame))
        return compute_features(frame, labels)
    return pd.DataFrame(out, columns=list(FEATURE_NAMES), index=frame.index)
