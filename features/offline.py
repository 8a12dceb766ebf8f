"""Feast's offline store (Parquet part files) and point-in-time training sets.

The view's offline source is a folder of Parquet part files (``definitions.offline_path``),
filled by the same feature core from two places:

- the stream worker (:class:`OfflineWriter`: one part per flush, ``part-stream-*``);
- :func:`backfill_offline` over a historical file (one part per file, ``part-backfill-*``,
  rewritten when the same file is backfilled again).

A transaction's row has the same values whichever wrote it (the core is deterministic), so
duplicates are harmless: the point-in-time join picks either. :func:`training_set` builds
training rows with Feast's ``get_historical_features`` over labeled transactions: each row
gets the feature row of its transaction as of its event time, i.e. only events and labels
known at that time.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.backfill import compute_features
from features.core import FEATURE_NAMES, terminal_key
from features.definitions import ENTITY_JOIN_KEY, TIMESTAMP_FIELD, offline_path
from features.store import OnlineFeatures, Row, frame_columns
from infra.settings import Settings

log = logging.getLogger("fraudstream.features.offline")

SCHEMA = pa.schema(
    [(ENTITY_JOIN_KEY, pa.string()), ("card_id", pa.string()), ("terminal", pa.string()),
     (TIMESTAMP_FIELD, pa.timestamp("us", tz="UTC"))]
    + [(name, pa.float64()) for name in FEATURE_NAMES]
)


def view_dir(settings: Settings) -> Path:
    return offline_path((settings.feast_dir / "offline").resolve())


def write_part(folder: Path, name: str, rows: Sequence[Row]) -> Path:
    """Write rows as one Parquet part (atomically: temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pydict(frame_columns(rows), schema=SCHEMA)
    path = folder / f"{name}.parquet"
    tmp = folder / f".{name}.tmp"
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


class OfflineWriter:
    """Buffers the stream worker's rows; a part file per ``flush`` (at most every
    ``interval`` seconds, or when ``max_rows`` are buffered). Rows still buffered when the
    process dies are missing offline (the online store has them); a backfill refills them.
    """

    def __init__(self, settings: Settings, interval: float = 5.0, max_rows: int = 50_000):
        self.folder = view_dir(settings)
        self.interval = interval
        self.max_rows = max_rows
        self._rows: list[Row] = []
        self._last = time.monotonic()

    def add(self, rows: Sequence[Row]) -> None:
        """Buffer rows (the caller flushes when :meth:`due`, e.g. in a thread)."""
        self._rows.extend(rows)

    def due(self) -> bool:
        return bool(self._rows) and (
            len(self._rows) >= self.max_rows or time.monotonic() - self._last >= self.interval
        )

    def flush(self) -> Path | None:
        self._last = time.monotonic()
        if not self._rows:
            return None
        rows, self._rows = self._rows, []
        name = f"part-stream-{rows[0][3]}-{uuid.uuid4().hex[:8]}"
        return write_part(self.folder, name, rows)


def backfill_offline(settings: Settings, history_path: str | Path) -> int:
    """Compute the features of a history file with the core and write them offline.

    Labels come from the file's own label columns, applied at their ``label_time``.
    Applies the Feast definitions first (idempotent). Returns the number of rows written.
    """
    from replay.history import read_history

    history = read_history(history_path)
    features = compute_features(history)
    ms = (history["event_time"].astype("int64") // 1_000_000).tolist()
    terminals = [terminal_key(t if isinstance(t, str) else None, m)
                 for t, m in zip(history.get("terminal_id", [None] * len(history)),
                                 history["merchant_id"], strict=True)]
    rows: list[Row] = [
        (str(tid), str(card), term, int(t), tuple(vec))
        for tid, card, term, t, vec in zip(
            history["transaction_id"], history["card_id"], terminals, ms,
            features.to_numpy().tolist(), strict=True)
    ]
    OnlineFeatures(settings).apply()
    digest = hashlib.sha256(str(Path(history_path).resolve()).encode()).hexdigest()[:12]
    path = write_part(view_dir(settings), f"part-backfill-{digest}", rows)
    log.info("backfilled %d rows into %s", len(rows), path)
    return len(rows)


def training_set(settings: Settings, labeled: pd.DataFrame) -> pd.DataFrame:
    """Training rows by Feast point-in-time join: ``labeled``'s columns + the feature service.

    ``labeled`` needs ``transaction_id`` and ``event_time`` (UTC); its other columns (the
    label, label_time, ...) are carried through. Rows keep ``labeled``'s order; a row whose
    transaction has no feature row offline gets NaN features.
    """
    online = OnlineFeatures(settings)
    entity = labeled.rename(columns={"event_time": TIMESTAMP_FIELD}).copy()
    entity[TIMESTAMP_FIELD] = pd.to_datetime(entity[TIMESTAMP_FIELD], utc=True)
    entity[ENTITY_JOIN_KEY] = entity[ENTITY_JOIN_KEY].astype(str)
    entity["_row"] = range(len(entity))
    job = online.store.get_historical_features(
        entity_df=entity, features=online.feature_service()
    )
    out = job.to_df().sort_values("_row").set_index(labeled.index)
    out = out.rename(columns={TIMESTAMP_FIELD: "event_time"}).drop(columns=["_row"])
    carried = [c for c in labeled.columns if c in out.columns]
    return out[carried + [c for c in FEATURE_NAMES]]
