"""The retrainer's training set from the offline store and the ``labels`` topic, no file.

``fraudstream retrain`` without ``--history`` reads:

- **transactions and features** from Feast's offline store (the Parquet part files the
  stream feature worker and backfills write, :mod:`features.offline`), joined point in time
  by :func:`features.offline.training_set` (Feast ``get_historical_features``): each
  transaction gets its feature row as of its own event time;
- **labels** from the ``labels`` topic, read from the beginning up to its current end (a
  bounded read: the end offsets are taken first, then consumed up to them under a
  deadline), parsed by :func:`features.labels.parse_label`; an invalid record is skipped
  and counted (the feature worker dead-letters it), and of several labels of one
  transaction the latest ``label_time`` wins.

The frame has what :func:`models.retrain.labels_as_of` and the trainer need: ``is_fraud``
(fraud label at any time), ``label_time`` (NaT: never labeled, i.e. genuine as of any
``now``), ``event_time``, ``amount``, ``card_id``, ``transaction_id`` and the
FeatureService's columns. ``labels_as_of`` then keeps only labels known at ``now``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
import pyarrow.dataset as ds

from features.core import FEATURE_NAMES
from features.definitions import ENTITY_JOIN_KEY, TIMESTAMP_FIELD
from features.labels import parse_label
from infra.errors import InvalidInput
from infra.settings import Settings

log = logging.getLogger("fraudstream.models.retrain_offline")


@dataclass(frozen=True)
class LabelRead:
    labels: pd.DataFrame  # transaction_id, is_fraud, label_time (UTC)
    invalid: int


def labels_frame(raw: list[bytes], max_bytes: int) -> LabelRead:
    """Parse raw ``labels`` values (pure): latest label per transaction, invalid counted."""
    rows, invalid = [], 0
    for value in raw:
        try:
            label = parse_label(value, max_bytes)
        except InvalidInput:
            invalid += 1
            continue
        rows.append((label.transaction_id, label.fraud, label.label_ms))
    frame = pd.DataFrame(rows, columns=["transaction_id", "is_fraud", "label_ms"])
    frame = frame.sort_values("label_ms", kind="stable").drop_duplicates(
        "transaction_id", keep="last")
    frame["label_time"] = pd.to_datetime(frame.pop("label_ms"), unit="ms", utc=True)
    return LabelRead(frame.reset_index(drop=True), invalid)


def read_label_topic(settings: Settings, timeout: float = 60.0) -> LabelRead:
    """Every record of ``labels`` up to its end at the call, within ``timeout`` seconds."""
    from models.topic_read import read_topic

    raw = [value for value, _ in read_topic(settings, settings.topic_labels, timeout=timeout)]
    return labels_frame(raw, settings.max_message_bytes)


def offline_entities(settings: Settings) -> pd.DataFrame:
    """``transaction_id``, ``card_id``, ``event_time`` of every transaction offline."""
    from features.offline import view_dir

    folder = view_dir(settings)
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not parts:
        raise InvalidInput(f"the offline store {folder} holds no part files: run the "
                           "feature worker or `fraudstream retrain --history FILE`")
    table = ds.dataset([str(p) for p in parts], format="parquet").to_table(
        columns=[ENTITY_JOIN_KEY, "card_id", TIMESTAMP_FIELD])
    frame = table.to_pandas().drop_duplicates(ENTITY_JOIN_KEY)
    return frame.rename(columns={TIMESTAMP_FIELD: "event_time"}).sort_values(
        "event_time", kind="stable").reset_index(drop=True)


def join_labels(entities: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Entities with ``is_fraud`` and ``label_time`` (pure; unlabeled: genuine, NaT)."""
    out = entities.merge(labels, how="left", left_on=ENTITY_JOIN_KEY,
                         right_on="transaction_id", suffixes=("", "_label"))
    if "transaction_id_label" in out:
        out = out.drop(columns=["transaction_id_label"])
    out["is_fraud"] = out["is_fraud"].astype("boolean").fillna(False).astype(bool)
    return out


def offline_training_frame(settings: Settings, timeout: float = 60.0) -> pd.DataFrame:
    """The retrainer's frame from the offline store and the ``labels`` topic (module doc)."""
    from features.offline import training_set

    entities = offline_entities(settings)
    read = read_label_topic(settings, timeout)
    if read.invalid:
        log.warning("skipped %d invalid label records", read.invalid)
    labeled = join_labels(entities, read.labels)
    frame = training_set(settings, labeled)
    missing = int(frame[list(FEATURE_NAMES)].isna().any(axis=1).sum())
    if missing:
        log.warning("%d transactions have no feature row offline: left out", missing)
        frame = frame.loc[~frame[list(FEATURE_NAMES)].isna().any(axis=1)]
    log.info("offline training set: %d transactions, %d labeled fraud", len(frame),
             int(frame["is_fraud"].sum()))
    return frame.reset_index(drop=True)
