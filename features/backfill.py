"""Historical backfill: the feature core applied to a whole history, in event-time order.

The stream worker and this backfill call the same :func:`features.core.update`, in the same
per-card order (event time, ties broken by file order, as the replay publishes them), so a
transaction's offline feature vector equals the one served online.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from features.core import FEATURE_NAMES, CardState, Event, update


def events_from_frame(frame: pd.DataFrame) -> Iterator[Event]:
    """Feature-core events from a history frame (columns as written by the simulator)."""
    times = pd.to_datetime(frame["event_time"], utc=True)
    event_ms = (times.astype("int64") // 1_000_000).to_numpy()
    devices = frame["device_id"] if "device_id" in frame else pd.Series([None] * len(frame))
    for tid, ms, card, merchant, amount, channel, country, device in zip(
        frame["transaction_id"].astype(str),
        event_ms,
        frame["card_id"].astype(str),
        frame["merchant_id"].astype(str),
        frame["amount"].astype(float),
        frame["channel"].astype(str),
        frame["country"].astype(str),
        devices,
        strict=True,
    ):
        dev: Any = device
        if dev is not None and isinstance(dev, float) and math.isnan(dev):
            dev = None
        yield Event(tid, int(ms), card, merchant, float(amount), channel, country, dev)


def compute_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Feature vectors for every row of ``frame`` (which must be in event-time order).

    Returns a frame indexed like ``frame`` with one float column per feature.
    """
    states: dict[str, CardState] = {}
    out = np.empty((len(frame), len(FEATURE_NAMES)), dtype=np.float64)
    for i, event in enumerate(events_from_frame(frame)):
        state, feats = update(states.get(event.card_id), event)
        states[event.card_id] = state
        out[i] = feats
    return pd.DataFrame(out, columns=list(FEATURE_NAMES), index=frame.index)
