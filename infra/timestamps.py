"""Timestamps given by users and configs, read as UTC."""

from __future__ import annotations

from typing import Any

import pandas as pd


def utc(value: Any) -> pd.Timestamp:
    """``value`` as a UTC timestamp: a naive one is taken to be UTC, an aware one converted.

    >>> utc("2024-03-01") == utc("2024-03-01T02:00+02:00"), utc("2024-03-01").tz
    (True, datetime.timezone.utc)
    """
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
