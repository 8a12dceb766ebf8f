"""Shared data for the replay tests: a small simulated history and the same history as a
"user" CSV whose columns are named differently (and whose times are naive local strings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from replay.simulator import SimulationConfig, simulate

USER_COLUMNS = {
    "transaction_id": "TX_ID", "event_time": "TX_DATETIME", "card_id": "CUSTOMER_ID",
    "terminal_id": "TERMINAL_ID", "merchant_id": "SHOP", "amount": "TX_AMOUNT",
    "is_fraud": "TX_FRAUD", "channel": "CHANNEL_TYPE", "country": "CTRY",
    "device_id": "DEVICE", "label_time": "REPORTED_AT",
}
MAPPING_YAML = "columns:\n" + "".join(f"  {u}: {f}\n" for f, u in USER_COLUMNS.items())


@lru_cache(maxsize=1)
def history() -> pd.DataFrame:
    """About 11k transactions over 30 days, ~1% fraud (deterministic)."""
    config = SimulationConfig(n_customers=150, n_terminals=80, n_ecom_merchants=30, days=30,
                              seed=11)
    return simulate(config)


def user_frame(with_label_time: bool = True) -> pd.DataFrame:
    """``history()`` renamed to user columns, times as naive ``YYYY-mm-dd HH:MM:SS.fff``."""
    cols = [c for c in USER_COLUMNS if with_label_time or c != "label_time"]
    frame = history()[cols].rename(columns=USER_COLUMNS)
    for col in ("TX_DATETIME", "REPORTED_AT"):
        if col in frame:
            naive = frame[col].dt.tz_convert("UTC").dt.tz_localize(None)
            frame[col] = naive.dt.strftime("%Y-%m-%d %H:%M:%S.%f").str[:-3]
    frame["TX_FRAUD"] = frame["TX_FRAUD"].astype(int)
    return frame


def write_user_files(folder: Path, with_label_time: bool = True) -> tuple[Path, Path]:
    """``(user.csv, mapping.yaml)`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    csv, mapping = folder / "user.csv", folder / "mapping.yaml"
    user_frame(with_label_time).to_csv(csv, index=False)
    text = MAPPING_YAML if with_label_time else MAPPING_YAML.replace(
        "  REPORTED_AT: label_time\n", "")
    mapping.write_text(text)
    return csv, mapping


def test_user_frame_renames_every_field() -> None:
    frame = user_frame()
    assert set(frame.columns) == set(USER_COLUMNS.values())
    assert frame["TX_DATETIME"].str.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$").all()
