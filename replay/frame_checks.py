"""The boundary's value rules (:mod:`streams.rules`) over whole columns, for history files.

Training, backtest and replay files must meet the rules the stream applies to each message,
whatever their format: a Parquet history is checked exactly like a mapped CSV (it used to
skip validation: duplicate ids, NaN and 1e12 amounts trained and became champion). Each
check returns ``[(what is wrong, row mask)]`` so callers can report every problem at once,
naming the column and the rows (:class:`replay.validation._Problems`).

:func:`validate_frame` checks a history frame already in fraudstream's columns (what
:func:`replay.history.read_history` returns) and raises one
:class:`~infra.errors.InvalidInput` listing every problem; the command line turns it into
``fraudstream: error: ...`` and exit code 2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from infra.errors import InvalidInput
from streams.rules import (
    MAX_AMOUNT,
    MAX_EVENT_MS,
    MAX_ID_CHARS,
    MIN_EVENT_MS,
    MIN_POSITIVE_AMOUNT,
)

ID_FIELDS = ("transaction_id", "card_id", "merchant_id", "terminal_id", "device_id")
REQUIRED_IDS = ("transaction_id", "card_id", "merchant_id")
CHANNELS = ("pos", "ecom", "atm", "moto")
PATTERNS = {"country": r"[A-Z]{2}", "currency": r"[A-Z]{3}", "mcc": r"[0-9]{4}"}
ID_RULE = f"not an id (1-{MAX_ID_CHARS} printable characters)"

Checks = list[tuple[str, np.ndarray]]


def id_problems(values: pd.Series) -> Checks:
    """Non-blank values that are not valid ids (blank = <NA>/None, checked by the caller)."""
    text = values.astype("string")
    blank = text.isna().to_numpy()
    unique = pd.unique(text[~blank].to_numpy(dtype=object))
    good = {v for v in unique if _is_id(v)}  # one Python check per distinct value
    bad = ~blank & ~text.isin(good).fillna(False).to_numpy(dtype=bool)
    return [(ID_RULE, bad)]


def _is_id(value: str) -> bool:
    stripped = value.strip(" ")
    return 0 < len(stripped) <= MAX_ID_CHARS and stripped.isprintable()


def amount_problems(amount: np.ndarray) -> Checks:
    """Finite, ``0 <= a <= MAX_AMOUNT``, and not in ``(0, MIN_POSITIVE_AMOUNT)``."""
    a = np.asarray(amount, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return [
            ("negative amount", a < 0),
            (f"amount above {MAX_AMOUNT:,.0f} or infinite", a > MAX_AMOUNT),
            (f"amount between 0 and {MIN_POSITIVE_AMOUNT} (below every currency's minor "
             f"unit)", (a > 0) & (a < MIN_POSITIVE_AMOUNT)),
        ]


def time_problems(times: pd.Series) -> Checks:
    """Times outside years 2000..2100 (NaT is the caller's business)."""
    ms = times.astype("int64").to_numpy() // 1_000_000
    out = times.notna().to_numpy() & ((ms < MIN_EVENT_MS) | (ms > MAX_EVENT_MS))
    return [("time outside 2000-2100 (wrong time_unit?)", out)]


def validate_frame(df: pd.DataFrame, source: str, *, require_labels: bool = True) -> None:
    """Raise :class:`InvalidInput` listing every rule ``df`` breaks (see module doc)."""
    lines: list[str] = []

    def add(name: str, what: str, mask: np.ndarray) -> None:
        rows = np.flatnonzero(mask)
        if rows.size:
            shown = ", ".join(f"row {i + 1}: {_plain(df[name].iloc[i])!r}" for i in rows[:5])
            more = f" and {rows.size - 5} more" if rows.size > 5 else ""
            lines.append(f"column {name!r}: {what} in {rows.size} row(s) — {shown}{more}")

    for name in ID_FIELDS:
        if name not in df.columns:
            continue
        blank = df[name].isna().to_numpy()
        if name in REQUIRED_IDS:
            add(name, "missing value", blank)
        for what, mask in id_problems(df[name]):
            add(name, what, mask)
    if "transaction_id" in df.columns:
        ids = df["transaction_id"]
        add("transaction_id", "duplicate id",
            ids.duplicated(keep=False).to_numpy() & ids.notna().to_numpy())
    if not pd.api.types.is_numeric_dtype(df["amount"]) or pd.api.types.is_bool_dtype(
            df["amount"]):
        add("amount", "not a number (store amounts as numbers)", np.ones(len(df), bool))
    else:
        a = df["amount"].to_numpy(dtype=np.float64, na_value=np.nan)
        add("amount", "missing or NaN amount", np.isnan(a))
        for what, mask in amount_problems(a):
            add("amount", what, mask)
    add("event_time", "missing time", df["event_time"].isna().to_numpy())
    for name in ("event_time", "label_time"):
        if name in df.columns:
            for what, mask in time_problems(df[name]):
                add(name, what, mask)
    if "channel" in df.columns:
        add("channel", f"invalid channel (one of {CHANNELS})",
            ~df["channel"].isin(CHANNELS).to_numpy())
    for name, pattern in PATTERNS.items():
        if name in df.columns:
            ok = df[name].astype("string").str.fullmatch(pattern).fillna(False)
            add(name, f"invalid {name}", ~ok.to_numpy(dtype=bool))
    if require_labels and "is_fraud" in df.columns:
        add("is_fraud", "missing label", df["is_fraud"].isna().to_numpy())
    if lines:
        raise InvalidInput(f"{source}: {len(lines)} problem(s):\n  - " + "\n  - ".join(lines))


def _plain(value: object) -> object:
    item = getattr(value, "item", None)
    return item() if callable(item) else value
