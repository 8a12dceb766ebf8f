"""Reading users' files: a renamed CSV equals the original history; each bad input is
refused with the user's column, the field and the offending rows in the message."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from infra.errors import ConfigurationError, InvalidInput
from replay.history import HISTORY_COLUMNS
from replay.mapping import ColumnMapping, load_mapping
from replay.validation import load_history, normalize
from tests.unit.test_replay_helpers import history, write_user_files

FIELDS = ["transaction_id", "event_time", "card_id", "merchant_id", "terminal_id", "amount",
          "channel", "country", "device_id", "is_fraud", "label_time"]


def test_user_csv_reads_back_as_the_history(tmp_path: Path) -> None:
    csv, mapping_file = write_user_files(tmp_path)
    loaded = load_history(csv, load_mapping(mapping_file))
    original = history()
    assert list(loaded.columns) == list(HISTORY_COLUMNS)
    for name in FIELDS:
        assert loaded[name].astype(str).tolist() == original[name].astype(str).tolist(), name
    assert (loaded["currency"] == "EUR").all() and (loaded["mcc"] == "5999").all()  # defaults


def test_without_label_time_a_fixed_delay_applies(tmp_path: Path) -> None:
    csv, mapping_file = write_user_files(tmp_path, with_label_time=False)
    loaded = load_history(csv, load_mapping(mapping_file, label_delay_days=2.5))
    delay = loaded["label_time"] - loaded["event_time"]
    assert (delay == pd.Timedelta(days=2.5)).all()


def base(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({
        "ID": [f"t{i}" for i in range(n)],
        "WHEN": [f"2025-01-06 10:00:0{i}" for i in range(n)],
        "CARD": ["c1", "c2", "c1", "c3"][:n], "TERM": "T1", "AMT": [10.0, 5.5, 7.0, 1.0][:n],
        "FRAUD": [0, 1, 0, 0][:n],
    })


MAP = ColumnMapping({"ID": "transaction_id", "WHEN": "event_time", "CARD": "card_id",
                     "TERM": "terminal_id", "AMT": "amount", "FRAUD": "is_fraud"})


def test_minimal_file_gets_defaults_and_terminal_as_merchant() -> None:
    out = normalize(base(), MAP)
    assert out["merchant_id"].tolist() == ["T1"] * 4
    assert out["channel"].unique().tolist() == ["pos"]
    assert out["country"].unique().tolist() == ["ZZ"]
    assert out["event_time"].dt.tz is not None
    assert out["is_fraud"].tolist() == [False, True, False, False]


def test_timezone_and_epoch_options() -> None:
    paris = normalize(base(), ColumnMapping({**MAP.columns}, timezone="Europe/Paris"))
    assert paris["event_time"].iloc[0] == pd.Timestamp("2025-01-06 09:00:00", tz="UTC")
    epoch = base().assign(WHEN=[1736157600 + i for i in range(4)])
    out = normalize(epoch, ColumnMapping({**MAP.columns}, time_unit="s"))
    assert out["event_time"].iloc[0] == pd.Timestamp("2025-01-06 10:00:00", tz="UTC")


def bad(**changes: object) -> str:
    frame = base()
    for column, value in changes.items():
        frame[column] = value
    with pytest.raises(InvalidInput) as info:
        normalize(frame, MAP, source="user.csv")
    return str(info.value)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"AMT": [10.0, -5.0, 7.0, 0.0]}, ["'AMT' (amount)", "negative amount", "row 2: -5.0"]),
    ({"AMT": [10.0, 1e12, 7.0, 1e-300]}, ["'AMT' (amount)", "above 1,000,000", "row 2",
                                          "below every currency's minor unit", "row 4"]),
    ({"AMT": ["10", "ten", "7", "1"]}, ["'AMT' (amount)", "not a number", "row 2: 'ten'"]),
    ({"AMT": [10.0, None, 7.0, 1.0]}, ["'AMT' (amount)", "missing or NaN amount", "row 2"]),
    ({"ID": ["t0", "t1", "t0", "t3"]}, ["'ID' (transaction_id)", "duplicate id", "row 1",
                                        "row 3"]),
    ({"ID": ["t0", "bad\tid", "t2", "t3"]}, ["'ID' (transaction_id)", "not an id", "row 2"]),
    ({"ID": ["t0", "x" * 129, "t2", "t3"]}, ["'ID' (transaction_id)", "not an id", "row 2"]),
    ({"WHEN": ["2025-01-06 10:00:00", "yesterday", "2025-01-06 10:00:02",
               "2025-01-06 10:00:03"]}, ["'WHEN' (event_time)", "unparseable", "row 2"]),
    ({"WHEN": ["2025-01-06 10:00:00", None, "2025-01-06 10:00:02", "2025-01-06 10:00:03"]},
     ["'WHEN' (event_time)", "missing time", "row 2"]),
    ({"WHEN": ["2025-01-06 10:00:00", "2025-01-06 09:00:00", "2025-01-06 10:00:02",
               "2025-01-06 10:00:03"]}, ["'WHEN' (event_time)", "earlier than the row before",
                                         "row 2"]),
    ({"WHEN": ["1970-01-06 10:00:00"] * 4}, ["outside 2000-2100"]),
    ({"FRAUD": [0, "maybe", 0, 1]}, ["'FRAUD' (is_fraud)", "row 2: 'maybe'"]),
    ({"FRAUD": [0, None, 0, 1]}, ["'FRAUD' (is_fraud)", "missing label", "row 2"]),
    ({"CARD": ["c1", None, "c1", "c3"]}, ["'CARD' (card_id)", "missing value", "row 2"]),
])
def test_each_bad_value_is_named(changes: dict[str, object], expected: list[str]) -> None:
    message = bad(**changes)
    assert message.startswith("user.csv: ")
    for text in expected:
        assert text in message, (text, message)


def test_all_problems_are_reported_together() -> None:
    message = bad(AMT=[-1.0, 5.0, 7.0, 1.0], FRAUD=[0, 2, 0, 0])
    assert "2 problem(s)" in message and "(amount)" in message and "(is_fraud)" in message


def test_optional_columns_are_checked() -> None:
    frame = base().assign(CH=["pos", "ecom", "teleport", None], CO=["fr", "DE", "FRA", "US"],
                          LT=["2025-01-06 09:00:00", None, None, None])
    mapping = ColumnMapping({**MAP.columns, "CH": "channel", "CO": "country",
                             "LT": "label_time"})
    with pytest.raises(InvalidInput) as info:
        normalize(frame, mapping)
    message = str(info.value)
    assert "'CH' (channel)" in message and "row 3: 'teleport'" in message
    assert "'CO' (country)" in message and "row 3: 'FRA'" in message
    assert "'LT' (label_time)" in message and "before the event time" in message


def test_missing_columns_name_the_field_and_list_the_file() -> None:
    with pytest.raises(InvalidInput, match=r"'AMT' \(mapped to amount\) .*file columns"):
        normalize(base().drop(columns=["AMT"]), MAP)
    unmapped = ColumnMapping({k: v for k, v in MAP.columns.items() if k != "AMT"})
    with pytest.raises(InvalidInput, match=r"no column for amount.*--map YOUR_COLUMN=field"):
        normalize(base().drop(columns=["AMT"]), unmapped)
    no_label = ColumnMapping({k: v for k, v in MAP.columns.items() if k != "FRAUD"})
    with pytest.raises(InvalidInput, match="no column for is_fraud"):
        normalize(base().drop(columns=["FRAUD"]), no_label)
    out = normalize(base().drop(columns=["FRAUD"]), no_label, require_labels=False)
    assert not out["is_fraud"].any()


def test_sort_option_sorts_stably() -> None:
    frame = base().assign(WHEN=["2025-01-06 10:00:05", "2025-01-06 10:00:01",
                                "2025-01-06 10:00:05", "2025-01-06 10:00:00"])
    out = normalize(frame, ColumnMapping({**MAP.columns}, sort=True))
    assert out["transaction_id"].tolist() == ["t3", "t1", "t0", "t2"]


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_history(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(ConfigurationError, match="use .csv"):
        load_history(tmp_path / "x.xlsx")
