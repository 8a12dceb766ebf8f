"""Historical backfill: the feature core over a whole history, transactions and labels merged.

:func:`compute_features` runs :class:`features.core.FeatureCore` — the code the stream
worker runs — over a history frame in the order the replay publishes it (event time, ties in
file order) together with its label events, so a transaction's offline vector equals the
one served online. Labels count from their ``label_time`` on (never earlier), so training
rows see only labels known at their time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from features.core import FEATURE_NAMES, Event, FeatureCore, Label


def _optional(values: pd.Series | None, n: int) -> list[str | None]:
    if values is None:
        return [None] * n
    return [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]


def _ms(times: pd.Series) -> np.ndarray:
    return (pd.to_datetime(times, utc=True).astype("datetime64[ns, UTC]").astype("int64")
            // 1_000_000).to_numpy()


def events_from_frame(frame: pd.DataFrame) -> Iterator[Event]:
    """Feature-core events from a history frame (columns as written by the simulator)."""
    n = len(frame)
    channel = frame["channel"].astype(str) if "channel" in frame else pd.Series(["pos"] * n)
    for tid, ms, card, merchant, amount, chan, country, device, terminal in zip(
        frame["transaction_id"].astype(str), _ms(frame["event_time"]),
        frame["card_id"].astype(str), frame["merchant_id"].astype(str),
        frame["amount"].astype(float), channel, frame["country"].astype(str),
        _optional(frame.get("device_id"), n), _optional(frame.get("terminal_id"), n),
        strict=True,
    ):
        yield Event(tid, int(ms), card, merchant, float(amount), chan, country, device, terminal)


def labels_from_frame(frame: pd.DataFrame) -> list[Label]:
    """Label events from a labels frame (``transaction_id, card_id, label, label_time``) or
    from a history's ``is_fraud`` / ``label_time`` columns."""
    if "label" in frame.columns:
        fraud = (frame["label"].astype(str) == "fraud").to_numpy()
    else:
        fraud = frame["is_fraud"].astype(bool).to_numpy()
    return [
        Label(str(tid), str(card), int(ms), bool(f))
        for tid, card, ms, f in zip(frame["transaction_id"], frame["card_id"],
                                    _ms(frame["label_time"]), fraud, strict=True)
    ]


def label_from_record(record: dict[str, Any]) -> Label:
    """A :class:`Label` from a ``labels`` topic record (``label`` is fraud or genuine)."""
    ms = int(pd.Timestamp(record["label_time"]).value // 1_000_000)
    return Label(str(record["transaction_id"]), str(record["card_id"]), ms,
                 record["label"] == "fraud")


def compute_features(frame: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature vectors for every row of ``frame`` (in event-time order, as published).

    Labels come from ``labels`` when given, else from the frame's own label columns when it
    has them (a history file), else there are none. Returns a frame indexed like ``frame``
    with one float column per feature, in :data:`FEATURE_NAMES` order.
    """
    if labels is not None:
        label_events = labels_from_frame(labels)
    elif {"label_time", "is_fraud"} <= set(frame.columns):
        label_events = labels_from_frame(frame)
    else:
        label_events = []
    vectors = FeatureCore().run(events_from_frame(frame), label_events)
    ids = frame["transaction_id"].astype(str)
    out = np.array([vectors[t] for t in ids], dtype=np.float64).reshape(len(frame), -1)
    return pd.DataFrame(out, columns=list(FEATURE_NAMES), index=frame.index)
