"""The documented commands on a user's CSV with its own column names (MLflow on sqlite in a
temporary state dir; no Kafka or Redis): one command trains, one backtests; bad files fail
with exit code 2 and a message naming the column and rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from infra.cli import main
from tests.unit.test_replay_helpers import user_frame, write_user_files


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FRAUDSTREAM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FRAUDSTREAM_XGB_NTHREAD", "1")
    return tmp_path


def test_train_then_backtest_a_user_csv(state: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    csv, mapping = write_user_files(state / "data")
    assert main(["train", "--history", str(csv), "--mapping", str(mapping)]) == 0
    assert "registered fraud-detector version 1 (alias champion)" in capsys.readouterr().out

    out = state / "out"
    assert main(["replay", "backtest", str(csv), "--mapping", str(mapping),
                 "--model", "champion", "--train", "--policy", "stream",
                 "--policy", "strict:review=0.2,decline=0.8", "--out", str(out),
                 "--format", "csv"]) == 0
    printed = capsys.readouterr().out
    assert "champion(v1) / stream" in printed and "trained / strict" in printed
    predictions = pd.read_csv(out / "predictions.csv")
    assert {"transaction_id", "score", "decision", "model_version"} <= set(predictions)
    assert predictions["candidate"].nunique() == 6  # champion, trained, baseline x 2
    assert "baseline_lr / stream" in printed  # the textbook baseline, always reported
    champion = predictions[predictions["candidate"] == "champion(v1) / stream"]
    assert champion["model_version"].astype(str).unique().tolist() == ["1"]
    assert champion["transaction_id"].is_unique
    assert set(predictions["decision"]) <= {"approve", "review", "decline"}
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["roc_auc"].between(0.5, 1.0).all()
    assert (out / "report.html").stat().st_size > 10_000


def test_backtest_with_flags_only_and_label_delay(state: Path) -> None:
    csv, _ = write_user_files(state / "data", with_label_time=False)
    flags = ["--map", "TX_ID=transaction_id", "--map", "TX_DATETIME=event_time",
             "--map", "CUSTOMER_ID=card_id", "--map", "TERMINAL_ID=terminal_id",
             "--map", "SHOP=merchant_id", "--map", "TX_AMOUNT=amount",
             "--map", "TX_FRAUD=is_fraud", "--map", "CHANNEL_TYPE=channel",
             "--map", "CTRY=country", "--map", "DEVICE=device_id"]
    out = state / "out"
    assert main(["replay", "backtest", str(csv), *flags, "--label-delay-days", "3",
                 "--out", str(out)]) == 0
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert predictions["model_version"].str.match(r"(trained|baseline_lr)@").all()


def test_backtest_a_file_of_integer_ids_and_categories(state: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """A file shaped like the Fraud Detection Handbook's: integer customers and terminals,
    no transaction id (row numbers), a category for the channel, only a fraud flag.
    predictions.parquet gives the ids back as integers; the last line names every file."""
    frame = user_frame(with_label_time=False)
    user = pd.DataFrame({
        "TX_DATETIME": frame["TX_DATETIME"],
        "CUSTOMER_ID": pd.factorize(frame["CUSTOMER_ID"])[0] + 10**15,
        "TERMINAL_ID": pd.factorize(frame["SHOP"])[0],
        "TX_AMOUNT": frame["TX_AMOUNT"], "TX_FRAUD": frame["TX_FRAUD"],
        "CATEGORY": frame["CHANNEL_TYPE"].map({"ecom": "shopping_net"}).fillna("grocery_pos"),
    })
    csv, mapping = state / "handbook.csv", state / "handbook.yaml"
    user.to_csv(csv, index=False)
    mapping.write_text(
        "columns: {TX_DATETIME: event_time, CUSTOMER_ID: card_id, TERMINAL_ID: terminal_id,"
        " TX_AMOUNT: amount, TX_FRAUD: is_fraud}\n"
        "derive: {transaction_id: {row_number: true}}\n")
    out = state / "out"
    assert main(["replay", "backtest", str(csv), "--mapping", str(mapping), "--derive",
                 "channel=CATEGORY:*_net=ecom,*=pos", "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("wrote ")
    listed = {Path(p) for p in last.removeprefix("wrote ").replace(" and ", ", ").split(", ")}
    assert listed == set(out.iterdir()) and len(listed) == 5
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert str(predictions["transaction_id"].dtype) == "int64"
    assert str(predictions["card_id"].dtype) == "int64"
    row = predictions.iloc[0]
    assert user.loc[row["transaction_id"] - 1, "CUSTOMER_ID"] == row["card_id"]


@pytest.mark.parametrize(("change", "expected"), [
    ("negative_amount", ["'TX_AMOUNT' (amount)", "negative amount", "row 3: -1.0"]),
    ("missing_column", ["no column for amount", "--map YOUR_COLUMN=field"]),
    ("duplicate_id", ["'TX_ID' (transaction_id)", "duplicate id", "row 1", "row 2"]),
    ("unsorted", ["'TX_DATETIME' (event_time)", "earlier than the row before", "row 6"]),
    ("bad_time", ["'TX_DATETIME' (event_time)", "unparseable", "row 4: '06/01/2025'"]),
])
def test_bad_user_files_fail_clearly(state: Path, capsys: pytest.CaptureFixture[str],
                                     change: str, expected: list[str]) -> None:
    frame = user_frame()
    if change == "negative_amount":
        frame.loc[2, "TX_AMOUNT"] = -1.0
    elif change == "missing_column":
        frame = frame.drop(columns=["TX_AMOUNT"])
    elif change == "duplicate_id":
        frame.loc[1, "TX_ID"] = frame.loc[0, "TX_ID"]
    elif change == "unsorted":
        frame.loc[5, "TX_DATETIME"] = "2024-12-31 00:00:00.000"
    else:
        frame.loc[3, "TX_DATETIME"] = "06/01/2025"
    csv, mapping = write_user_files(state / "data")
    frame.to_csv(csv, index=False)
    if change == "missing_column":
        mapping.write_text(mapping.read_text().replace("  TX_AMOUNT: amount\n", ""))
    for argv in (["train", "--history", str(csv), "--mapping", str(mapping)],
                 ["replay", "backtest", str(csv), "--mapping", str(mapping), "--out",
                  str(state / "out")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("fraudstream: error: ")
        for text in expected:
            assert text in err, (text, err)


def test_bad_mapping_and_policy_flags(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv, mapping = write_user_files(state / "data")
    assert main(["replay", "backtest", str(csv), "--map", "TX_ID", "--out", "x"]) == 2
    assert "--map expects YOUR_COLUMN=field" in capsys.readouterr().err
    assert main(["replay", "backtest", str(csv), "--mapping", str(mapping), "--policy",
                 "review=high", "--out", "x"]) == 2
    assert "--policy 'review=high'" in capsys.readouterr().err


def test_a_parquet_history_is_validated_like_a_csv(state: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12 item 7: this file trained and became champion (rc 0) as Parquet."""
    from replay.simulator import SimulationConfig, simulate, write_history

    frame = simulate(SimulationConfig(n_customers=30, n_terminals=10, days=12, seed=5))
    frame.loc[1, "transaction_id"] = frame.loc[0, "transaction_id"]
    frame.loc[2, "amount"] = float("nan")
    frame.loc[3, "amount"] = 1e12
    frame.loc[4, "amount"] = -3.0
    path = write_history(frame, state / "data" / "bad.parquet")
    for argv in (["train", "--history", str(path)], ["retrain", "--history", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("fraudstream: error: history file") and "Traceback" not in err
        for text in ("'transaction_id': duplicate id", "row 1", "row 2",
                     "'amount': missing or NaN amount", "row 3",
                     "'amount': amount above 1,000,000", "row 4",
                     "'amount': negative amount", "row 5"):
            assert text in err, (text, err)
