"""``fraudstream retrain --history FILE``: clear errors for bad files and options; on a good
file (a user CSV with a mapping) a first run registers a champion, a later one checks the
triggers, ``--force`` retrains. MLflow on sqlite in a temporary state dir; no services."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from infra.cli import main
from tests.unit.test_replay_helpers import write_user_files

# The shared test history has 30 days of ~370 transactions: shorter windows than the
# production defaults, set the way an operator would.
SMALL_WINDOWS = {"RETRAIN_TRAIN_DAYS": "14", "RETRAIN_EVAL_DAYS": "7",
                 "RETRAIN_MATURITY_DAYS": "2", "RETRAIN_VALID_DAYS": "4",
                 "PROMOTION_MIN_FRAUDS": "5"}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FRAUDSTREAM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FRAUDSTREAM_XGB_NTHREAD", "1")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    return tmp_path


def test_without_history_the_offline_store_must_hold_data(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["retrain"]) == 2  # an empty offline store: nothing to train on
    assert "holds no part files" in capsys.readouterr().err
    assert main(["retrain", "--every", "0"]) == 2
    assert "--every needs a positive number" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("missing.parquet", None, "does not exist"),
    ("broken.parquet", b"not parquet at all", "is not a readable Parquet file"),
    ("history.json", b"{}", "use .csv, .csv.gz or .parquet"),
    ("columns.csv", b"a,b\n1,2\n", "no column for transaction_id"),
])
def test_bad_history_files_fail_clearly(state: Path, capsys: pytest.CaptureFixture[str],
                                        name: str, content: bytes | None,
                                        expected: str) -> None:
    path = state / name
    if content is not None:
        path.write_bytes(content)
    assert main(["retrain", "--history", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fraudstream: error: ") and expected in err, err
    assert str(path) in err or name == "columns.csv"


def test_bad_now_fails_clearly(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv, mapping = write_user_files(state / "data")
    assert main(["retrain", "--history", str(csv), "--mapping", str(mapping),
                 "--now", "next tuesday"]) == 2
    assert "--now 'next tuesday' is not a date or time" in capsys.readouterr().err


def test_no_data_in_the_windows_is_a_clear_error(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv, mapping = write_user_files(state / "data")  # starts 2025-01-06
    assert main(["retrain", "--history", str(csv), "--mapping", str(mapping),
                 "--now", "2025-01-10"]) == 1  # runtime: the data cannot make a model
    assert "cannot train" in capsys.readouterr().err


def test_retrain_from_the_cli_with_settings_from_the_environment(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in SMALL_WINDOWS.items():
        monkeypatch.setenv(f"FRAUDSTREAM_{name}", value)
    csv, mapping = write_user_files(state / "data")
    argv = ["retrain", "--history", str(csv), "--mapping", str(mapping)]
    assert main(argv) == 0
    assert "challenger v1: promoted: no champion yet" in capsys.readouterr().out

    assert main(argv) == 0  # a champion exists now: one trigger check
    out = capsys.readouterr().out
    assert "triggers [" in out and "fire=" in out

    assert main([*argv, "--force"]) == 0
    assert "challenger v" in capsys.readouterr().out
    log = state / "state" / "audit" / "retrain.jsonl"
    steps = [json.loads(line) for line in log.read_text().splitlines()]
    started = [s for s in steps if s["step"] == "started"]
    assert started[-1]["reason"] == "manual (--force)"
    eval_start = started[0]["windows"]["eval_start"]
    now = started[0]["windows"]["now"]
    span = pd.Timestamp(now) - pd.Timestamp(eval_start)
    assert span == pd.Timedelta(days=7 + 2)  # FRAUDSTREAM_RETRAIN_EVAL_DAYS + _MATURITY_DAYS
