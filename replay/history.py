"""The historical file format: one Parquet file of transactions with their eventual labels.

Columns (in this order):

- the :class:`~streams.schema.Transaction` fields (:data:`TRANSACTION_COLUMNS`), with
  ``event_time`` a timezone-aware UTC timestamp (millisecond precision);
- ``is_fraud`` (bool), ``scenario`` (``"none"`` for genuine rows), ``label_time`` (UTC:
  when the label becomes known) and ``label_source`` (``chargeback``, ``analyst`` or
  ``matured`` for genuine rows) — :data:`LABEL_COLUMNS`;
- optionally ``fraud_incident`` (int, -1 for genuine), for analysis only: never a feature.

Rows are sorted by ``event_time`` and ``transaction_id`` is unique. Files from elsewhere
can be read with a column ``rename`` map; naive timestamps are refused, not guessed.
Every value must meet the stream's rules (:mod:`replay.frame_checks`: ids, amounts, times,
codes, unique ids); :func:`read_history` refuses a file that does not, listing each problem.
The live stream carries no labels: :func:`iter_transactions` strips them and
:func:`label_records` turns them into the events of topic ``labels``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from infra.errors import ConfigurationError, InvalidInput
from streams.schema import SCHEMA_VERSION, Transaction

TRANSACTION_COLUMNS: tuple[str, ...] = tuple(Transaction.model_fields)
LABEL_COLUMNS: tuple[str, ...] = ("is_fraud", "scenario", "label_time", "label_source")
EXTRA_COLUMNS: tuple[str, ...] = ("fraud_incident",)
HISTORY_COLUMNS: tuple[str, ...] = TRANSACTION_COLUMNS + LABEL_COLUMNS
_OPTIONAL = ("terminal_id", "device_id")
_UTC_MS = pa.timestamp("ms", tz="UTC")
_TYPES: dict[str, pa.DataType] = {
    "event_time": _UTC_MS, "label_time": _UTC_MS, "amount": pa.float64(),
    "schema_version": pa.int16(), "is_fraud": pa.bool_(), "fraud_incident": pa.int64(),
}


def _iso_ms(times: pd.Series) -> np.ndarray:
    """ISO-8601 UTC strings with millisecond precision and a ``Z`` suffix."""
    raw = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    return np.char.add(np.datetime_as_string(raw, unit="ms"), "Z")


def write_history(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a history (as made by :func:`~replay.simulator.simulate`) to Parquet."""
    missing = [c for c in HISTORY_COLUMNS if c not in df.columns]
    if missing:
        raise InvalidInput(f"history lacks columns: {missing}")
    columns = [*HISTORY_COLUMNS, *(c for c in EXTRA_COLUMNS if c in df.columns)]
    schema = pa.schema([(c, _TYPES.get(c, pa.string())) for c in columns])
    table = pa.Table.from_pandas(df[columns], schema=schema, preserve_index=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path


def read_history(path: str | Path, *, rename: Mapping[str, str] | None = None,
                 require_labels: bool = True) -> pd.DataFrame:
    """Read a history file, mapping foreign column names with ``rename``.

    Event times must be timezone-aware; the frame is returned sorted by event time, with
    timestamps as ``datetime64[ns, UTC]`` and ``mcc`` as a 4-digit string.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"history file {path} does not exist")
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InvalidInput(f"history file {path} is not a readable Parquet file: {exc}") from None
    if rename:
        df = df.rename(columns=dict(rename))
    needed: tuple[str, ...] = ("transaction_id", "event_time", "card_id", "merchant_id",
                               "amount", "country")
    needed += LABEL_COLUMNS if require_labels else ()
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise InvalidInput(f"history file {path} lacks columns: {missing}")
    for column in ("event_time", "label_time"):
        if column in df.columns:
            if getattr(df[column].dtype, "tz", None) is None:
                raise InvalidInput(f"{column} in {path} has no time zone; store UTC timestamps")
            df[column] = df[column].dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if "mcc" in df.columns:
        df["mcc"] = df["mcc"].astype(str).str.zfill(4)
    for column in ("transaction_id", "card_id", "merchant_id", "terminal_id", "device_id"):
        if column in df.columns and pd.api.types.is_integer_dtype(df[column]):
            df[column] = df[column].astype(str)  # integer ids are read as their text
    from replay.frame_checks import validate_frame  # the stream's rules, every format

    validate_frame(df, f"history file {path}", require_labels=require_labels)
    if not df["event_time"].is_monotonic_increasing:
        df = df.sort_values("event_time", kind="stable", ignore_index=True)
    return df


def iter_transactions(df: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """JSON-ready ``Transaction`` dicts in frame order; labels and extras are stripped.

    ``event_time`` is ISO-8601 UTC (``...T12:34:56.789Z``); absent optional fields are None.
    """
    present = [c for c in TRANSACTION_COLUMNS if c in df.columns]
    columns: dict[str, Any] = {c: df[c].to_numpy(dtype=object) for c in present}
    columns["event_time"] = _iso_ms(df["event_time"])
    columns["amount"] = df["amount"].to_numpy(dtype=np.float64)
    if "schema_version" not in columns:
        columns["schema_version"] = np.full(len(df), SCHEMA_VERSION)
    names = list(columns)
    for values in zip(*(columns[c] for c in names), strict=True):
        record = dict(zip(names, values, strict=True))
        record["amount"] = float(record["amount"])
        record["event_time"] = str(record["event_time"])
        record["schema_version"] = int(record["schema_version"])
        for key in _OPTIONAL:  # a float NaN stands for a null in some foreign files
            value = record.get(key)
            if value is not None and value != value:
                record[key] = None
        yield record


def to_transaction_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """All of :func:`iter_transactions` as a list."""
    return list(iter_transactions(df))


def label_records(df: pd.DataFrame, *, include_genuine: bool = True) -> Iterator[dict[str, Any]]:
    """Label events for topic ``labels``, in ``label_time`` order.

    Each is ``{transaction_id, card_id, label: "fraud"|"genuine", source, label_time}``.
    ``include_genuine=False`` keeps only the fraud verdicts (chargebacks, analysts).
    """
    rows = df if include_genuine else df[df["is_fraud"].astype(bool)]
    rows = rows.sort_values(["label_time", "transaction_id"], kind="stable")
    label = np.where(rows["is_fraud"].to_numpy(dtype=bool), "fraud", "genuine")
    yield from (
        {"transaction_id": tid, "card_id": card, "label": str(lab), "source": src,
         "label_time": str(when)}
        for tid, card, lab, src, when in zip(
            rows["transaction_id"], rows["card_id"], label, rows["label_source"],
            _iso_ms(rows["label_time"]), strict=True)
    )
