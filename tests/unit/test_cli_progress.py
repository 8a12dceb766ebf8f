"""Progress bars of long commands: stages (and a prequential run's folds) advance one by
one, the bar completes on success, and nothing is drawn when stderr is not a terminal."""

from __future__ import annotations

import io

import pytest
from tqdm import tqdm

from infra.cli_progress import Stages, stages


def test_stages_and_folds_advance_the_bar() -> None:
    out = io.StringIO()
    with tqdm(total=2, file=out, disable=False, mininterval=0) as bar:
        progress = Stages(bar, ["load and validate", "features"])
        progress.next()
        assert bar.desc == "features"
        progress.next()
        progress.folds(0, 3)  # a prequential run announces its folds
        assert (bar.total, bar.n, bar.desc) == (5, 2, "fold 1/3")
        progress.folds(1, 3)
        assert (bar.n, bar.desc) == (3, "fold 2/3")
    assert "fold" in out.getvalue()


def test_nothing_is_drawn_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with stages(["a", "b", "c"], "backtest") as progress:
        progress.next()
        progress.folds(0, 2)
        progress.folds(1, 2)
    assert progress.done == 5  # completed on success
    assert capsys.readouterr().err == ""
