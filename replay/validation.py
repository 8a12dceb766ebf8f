"""Read a user's CSV or Parquet history and turn it into fraudstream's history frame.

:func:`load_history` reads the file, applies a :class:`~replay.mapping.ColumnMapping` and
:func:`normalize` checks every value the stream would refuse, before anything is published
or scored. All problems are reported at once in one :class:`~infra.errors.InvalidInput`,
each naming the user's column, the field, and up to five offending rows (1-based data row
numbers, i.e. CSV line minus one) with their values.

The result has the columns of :data:`replay.history.HISTORY_COLUMNS`: ids as strings,
``event_time`` / ``label_time`` as ``datetime64[ns, UTC]`` floored to milliseconds (what the
stream carries), ``is_fraud`` bool, ``mcc`` a 4-digit string. Without a label-time column,
``label_time = event_time + label_delay_days``. Rows stay in file order (the event-time order
the stream and the feature core see; ties keep file order).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from infra.errors import ConfigurationError, InvalidInput
from replay.frame_checks import (
    CHANNELS,
    PATTERNS,
    amount_problems,
    id_problems,
    time_problems,
)
from replay.history import HISTORY_COLUMNS
from replay.mapping import (
    FIELDS,
    REQUIRED_FIELDS,
    ColumnMapping,
    Derivation,
    as_text,
    by_value,
    with_derived,
)

_TRUE = {"1", "true", "t", "yes", "y", "fraud", "1.0"}
_FALSE = {"0", "false", "f", "no", "n", "genuine", "0.0"}
_ID_FIELDS = ("transaction_id", "card_id", "merchant_id", "terminal_id", "device_id")
_PATTERNS = PATTERNS


class _Problems:
    """Collects readable problems; raises them together."""

    def __init__(self, columns: dict[str, str],
                 derive: Mapping[str, Derivation] | None = None) -> None:
        self.columns = columns  # field -> user column
        self.derive = derive or {}
        self.lines: list[str] = []

    def where(self, name: str) -> str:
        """``column 'AMT' (amount)``; for a derived field ``column 'category' (channel,
        derived)`` or ``constant 'USA' (country, derived)``."""
        d = self.derive.get(name)
        if d is None:
            return f"column {self.columns.get(name, name)!r} ({name})"
        return f"{d.label()} ({name}, derived)"

    def add(self, name: str, what: str, mask: np.ndarray, values: pd.Series) -> None:
        rows = np.flatnonzero(mask)
        if not rows.size:
            return
        shown = ", ".join(f"row {i + 1}: {_plain(values.iloc[i])!r}" for i in rows[:5])
        more = f" and {rows.size - 5} more" if rows.size > 5 else ""
        self.lines.append(f"{self.where(name)}: {what} in {rows.size} row(s) — {shown}{more}")

    def raise_if_any(self, source: str) -> None:
        if self.lines:
            raise InvalidInput(f"{source}: {len(self.lines)} problem(s):\n  - "
                               + "\n  - ".join(self.lines))


def _plain(value: object) -> object:
    """numpy scalars as Python values, so messages show ``-5.0``, not ``np.float64(-5.0)``."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _times(raw: pd.Series, mapping: ColumnMapping) -> pd.Series:
    """Parse to UTC; unparseable values become NaT (the caller tells them from blanks)."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        times = raw
    elif pd.api.types.is_numeric_dtype(raw):
        times = pd.to_datetime(raw, unit=mapping.time_unit, errors="coerce")
    else:
        text = raw.astype("string").str.strip()
        try:
            times = pd.to_datetime(text, format=mapping.time_format or "ISO8601",
                                   errors="coerce")
        except ValueError:  # mixed offsets: parse each to UTC
            times = pd.to_datetime(text, format=mapping.time_format or "ISO8601",
                                   errors="coerce", utc=True)
    if getattr(times.dtype, "tz", None) is None:
        try:
            times = times.dt.tz_localize(mapping.timezone, ambiguous="NaT",
                                         nonexistent="NaT")
        except Exception as exc:  # noqa: BLE001 - pytz/zoneinfo raise various types
            raise ConfigurationError(f"unknown timezone {mapping.timezone!r}: {exc}") from None
    return times.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").dt.floor("ms")


def _check_times(p: _Problems, name: str, raw: pd.Series, times: pd.Series) -> None:
    blank = raw.isna().to_numpy()
    bad = times.isna().to_numpy() & ~blank
    p.add(name, "unparseable time (set time_format / time_unit / timezone?)", bad, raw)
    for what, mask in time_problems(times):
        p.add(name, what, mask, raw)


def normalize(raw: pd.DataFrame, mapping: ColumnMapping | None = None, *,
              require_labels: bool = True, source: str = "history") -> pd.DataFrame:
    """The history frame for ``raw`` (see module docstring); raises ``InvalidInput``."""
    mapping = mapping or ColumnMapping()
    available = [str(c) for c in raw.columns]
    cols = {n: c for n in FIELDS if (c := mapping.source_of(n, available)) is not None}
    absent = [f"{c!r} (mapped to {n})" for n, c in cols.items() if c not in available]
    absent += [f"{d.source!r} (to derive {n})" for n, d in mapping.derive.items()
               if d.source is not None and d.source not in available]
    if absent:
        raise InvalidInput(f"{source}: mapped column(s) not in the file: {', '.join(absent)}"
                           f" (file columns: {available})")
    raw, derived = with_derived(raw, mapping)
    cols |= derived
    needed = [*REQUIRED_FIELDS, *(("is_fraud",) if require_labels else ())]
    missing = [n for n in needed if n not in cols]
    if "merchant_id" not in cols and "terminal_id" not in cols:
        missing.append("merchant_id (or terminal_id)")
    if missing:
        raise InvalidInput(
            f"{source}: no column for {', '.join(missing)}; map one with "
            f"--map YOUR_COLUMN=field or a mapping file (file columns: {available})")
    p = _Problems(cols, mapping.derive)
    out = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    for name in _ID_FIELDS:
        if name not in cols:
            continue
        values = as_text(raw[cols[name]])
        blank = values.isna().to_numpy()
        if name in ("transaction_id", "card_id", "merchant_id") or (
                name == "terminal_id" and "merchant_id" not in cols):
            p.add(name, "missing value", blank, raw[cols[name]])
        for what, mask in id_problems(values):
            p.add(name, what, mask, raw[cols[name]])
        out[name] = values.astype(object).where(~blank, None)
    if "merchant_id" not in cols:
        out["merchant_id"] = out["terminal_id"]
    dup = out["transaction_id"].duplicated(keep=False).to_numpy() & out[
        "transaction_id"].notna().to_numpy()
    p.add("transaction_id", "duplicate id", dup, raw[cols["transaction_id"]])

    raw_time = raw[cols["event_time"]]
    times = _times(raw_time, mapping)
    p.add("event_time", "missing time", raw_time.isna().to_numpy(), raw_time)
    _check_times(p, "event_time", raw_time, times)
    out["event_time"] = times

    raw_amount = raw[cols["amount"]]
    amount = pd.to_numeric(raw_amount, errors="coerce").astype("float64")
    p.add("amount", "missing or NaN amount", raw_amount.isna().to_numpy(), raw_amount)
    p.add("amount", "not a number", (amount.isna() & raw_amount.notna()).to_numpy(), raw_amount)
    for what, mask in amount_problems(amount.to_numpy()):
        p.add("amount", what, mask, raw_amount)
    out["amount"] = amount + 0.0  # -0.0 -> 0.0

    _codes(p, raw, cols, out, mapping)
    for name in ("terminal_id", "device_id"):
        if name not in out:
            out[name] = None
    out["schema_version"] = np.int16(1)
    _labels(p, raw, cols, out, mapping, require_labels)
    p.raise_if_any(source)
    return _order(out, raw_time, mapping, source, cols)


def _code(name: str, values: pd.Series) -> pd.Series:
    """One code field's distinct values, normalised as the stream expects them."""
    text = as_text(values)
    text = text.str.lower() if name == "channel" else text.str.upper()
    return text.str.zfill(4) if name == "mcc" else text


def _valid_code(name: str, value: str) -> bool:
    if name == "channel":
        return value in CHANNELS
    return re.fullmatch(_PATTERNS[name], value) is not None


def _codes(p: _Problems, raw: pd.DataFrame, cols: dict[str, str], out: pd.DataFrame,
           mapping: ColumnMapping) -> None:
    """channel, country, currency and mcc: normalised, blanks to the default, checked (each
    distinct value once)."""
    for name in ("channel", "country", "currency", "mcc"):
        if name not in cols:
            out[name] = mapping.default(name)
            continue
        values = by_value(raw[cols[name]], partial(_code, name))
        values = values.fillna(mapping.default(name))
        good = [v for v in values.unique() if _valid_code(name, v)]
        p.add(name, f"invalid {name}" + (f" (one of {CHANNELS})" if name == "channel" else ""),
              ~values.isin(good).to_numpy(dtype=bool), raw[cols[name]])
        out[name] = values.astype(object)


def _labels(p: _Problems, raw: pd.DataFrame, cols: dict[str, str], out: pd.DataFrame,
            mapping: ColumnMapping, require_labels: bool) -> None:
    if "is_fraud" in cols:
        text = by_value(raw[cols["is_fraud"]], lambda u: as_text(u).str.lower())
        fraud, genuine = text.isin(_TRUE).to_numpy(), text.isin(_FALSE).to_numpy()
        blank = text.isna().to_numpy()
        p.add("is_fraud", "missing label", blank, raw[cols["is_fraud"]])
        p.add("is_fraud", "label not 0/1, true/false, yes/no or fraud/genuine",
              ~blank & ~fraud & ~genuine, raw[cols["is_fraud"]])
        out["is_fraud"] = fraud
    elif not require_labels:
        out["is_fraud"] = False
    delay = out["event_time"] + pd.Timedelta(days=mapping.label_delay_days)
    if "label_time" in cols:
        raw_lt = raw[cols["label_time"]]
        label_time = _times(raw_lt, mapping)
        _check_times(p, "label_time", raw_lt, label_time)
        early = (label_time < out["event_time"]).to_numpy()
        p.add("label_time", "label time before the event time", early, raw_lt)
        out["label_time"] = label_time.fillna(delay)  # a blank label time: the fixed delay
    else:
        out["label_time"] = delay
    fraud_mask = out["is_fraud"].to_numpy(dtype=bool)
    out["label_source"] = (as_text(raw[cols["label_source"]]).astype(object)
                           if "label_source" in cols
                           else np.where(fraud_mask, "chargeback", "matured"))
    out["scenario"] = (as_text(raw[cols["scenario"]]).fillna("none").astype(object)
                       if "scenario" in cols else np.where(fraud_mask, "unknown", "none"))


def _order(out: pd.DataFrame, raw_time: pd.Series, mapping: ColumnMapping,
           source: str, cols: dict[str, str]) -> pd.DataFrame:
    """Refuse (or, with ``sort``, fix) rows whose event time goes backwards."""
    times = out["event_time"]
    if not times.is_monotonic_increasing:
        if not mapping.sort:
            p = _Problems(cols, mapping.derive)
            back = np.r_[False, np.diff(times.astype("int64").to_numpy()) < 0]
            p.add("event_time", "time earlier than the row before (sort the file, or set "
                  "sort: true / --sort)", back, raw_time)
            p.raise_if_any(source)
        out = out.sort_values("event_time", kind="stable", ignore_index=True)
    return out[list(HISTORY_COLUMNS)]


def read_table(path: Path, id_columns: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV (ids read as text) or Parquet file as a frame; other suffixes are refused."""
    if not path.is_file():
        raise ConfigurationError(f"history file {path} does not exist")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".csv.gz"):
        try:
            return pd.read_csv(path, dtype={c: "string" for c in id_columns},
                               keep_default_na=True, low_memory=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path}: not a readable CSV: {exc}") from None
    raise ConfigurationError(f"history file {path}: use .csv, .csv.gz or .parquet")


def load_history(path: str | Path, mapping: ColumnMapping | None = None, *,
                 require_labels: bool = True) -> pd.DataFrame:
    """Read and :func:`normalize` a user's history file.

    ``attrs["integer_ids"]`` names the id fields the file held as integers
    (:func:`integer_ids`), so outputs can give them back as integers.
    """
    path = Path(path)
    mapping = mapping or ColumnMapping()
    header = _header(path)
    ids = [c for n in _ID_FIELDS if (c := mapping.source_of(n, header)) is not None]
    ids += [d.source for d in mapping.derive.values() if d.source is not None]  # codes as text
    raw = read_table(path, ids)
    history = normalize(raw, mapping, require_labels=require_labels, source=str(path))
    typed = path.suffix in (".parquet", ".pq")  # a CSV's columns have no type
    history.attrs["integer_ids"] = integer_ids(raw, history, mapping, typed=typed)
    return history


_INTEGER = r"-?(?:0|[1-9][0-9]{0,18})"  # what read_csv reads as an integer (no leading 0)
_INT64 = (-(2**63), 2**63 - 1)


def integer_ids(raw: pd.DataFrame, history: pd.DataFrame, mapping: ColumnMapping, *,
                typed: bool) -> tuple[str, ...]:
    """The id fields (``transaction_id``, ``card_id``) the file holds as integers.

    In a ``typed`` file (Parquet) a column of an integer type; in a CSV (no types), and for
    derived ids, a column whose every value is a canonical int64 integer — what
    ``pandas.read_csv`` would read as integers. Ids like ``'007'`` or ``'C12'`` stay text.
    """
    available = [str(c) for c in raw.columns]
    out = []
    for name in ("transaction_id", "card_id"):
        column = mapping.source_of(name, available)
        if column is not None and typed:
            integer = pd.api.types.is_integer_dtype(raw[column])
        else:
            integer = _all_int64(history[name])
        out += [name] if integer else []
    return tuple(out)


def _all_int64(ids: pd.Series) -> bool:
    text = ids.astype("string")
    if not len(text) or not text.str.fullmatch(_INTEGER).fillna(False).all():
        return False
    lengths = text.str.len()
    longest = text[lengths == lengths.max()]  # only 19-digit values can overflow
    return all(_INT64[0] <= int(v) <= _INT64[1] for v in longest.unique())


def _header(path: Path) -> list[str]:
    if path.suffix == ".csv" and path.is_file():
        with path.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        return [re.sub(r'^"|"$', "", c.strip()) for c in first.split(",")]
    return []
