"""The label delay ``d`` of the delayed-window features as a setting
(``FRAUDSTREAM_LABEL_DELAY_DAYS``): validated at start-up, fixed once per process by the
CLI, recorded in a model's lineage, and a model trained with another ``d`` is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from features.terminal import LABEL_DELAY_DAYS, label_delay, label_delay_days
from infra.cli import main
from infra.errors import ModelUnavailable
from infra.settings import Settings
from models import lineage
from models.registry import _check_delay
from models.versions import LoadedModel


@pytest.fixture(autouse=True)
def _restore_delay() -> Iterator[None]:
    with label_delay_days(label_delay()):  # main() sets the process value
        yield


def test_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().label_delay_days == LABEL_DELAY_DAYS == 7
    monkeypatch.setenv("FRAUDSTREAM_LABEL_DELAY_DAYS", "14")
    assert Settings().label_delay_days == 14


@pytest.mark.parametrize("value", ["0", "-3", "91", "7.5", "seven", ""])
def test_bad_values_fail_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    value: str,
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_LABEL_DELAY_DAYS", value)
    with pytest.raises(ValidationError):
        Settings()
    assert main(["retrain", "--history", str(tmp_path / "h.parquet")]) == 2
    err = capsys.readouterr().err
    assert "FRAUDSTREAM_LABEL_DELAY_DAYS" in err, err
    assert label_delay() == LABEL_DELAY_DAYS  # nothing configured from a refused value


def test_the_cli_fixes_the_process_delay(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUDSTREAM_LABEL_DELAY_DAYS", "3")
    assert main(["config"]) == 0
    assert label_delay() == 3
    assert "FRAUDSTREAM_LABEL_DELAY_DAYS=3" in capsys.readouterr().out


def _model(delay: int) -> LoadedModel:
    return LoadedModel(None, "fraud-detector", "4", "champion", ("amount",), "fs",  # type: ignore[arg-type]
                       "run", label_delay_days=delay)


def test_a_model_of_another_delay_is_refused() -> None:
    _check_delay(_model(LABEL_DELAY_DAYS))
    with pytest.raises(ModelUnavailable, match="label delay 14 d") as caught:
        _check_delay(_model(14))
    assert caught.value.reason == "unservable"
    with label_delay_days(14):
        _check_delay(_model(14))
        with pytest.raises(ModelUnavailable, match="FRAUDSTREAM_LABEL_DELAY_DAYS=14"):
            _check_delay(_model(LABEL_DELAY_DAYS))


def test_lineage_records_the_delay() -> None:
    record = {"git_commit": "abc", "git_dirty": False, "seed": 7, "packages": {},
              "label_delay_days": 14}
    tags = lineage.lineage_tags(record)
    assert tags["lineage.label_delay_days"] == "14"
    assert lineage.trained_label_delay(tags) == 14
    assert lineage.trained_label_delay({}) == LABEL_DELAY_DAYS  # versions from before
