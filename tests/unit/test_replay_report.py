"""The HTML report, generated here and read back: its plots are real PNGs and every number
in its tables equals the metrics files written next to it."""

from __future__ import annotations

import base64
import math
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from infra.settings import Settings
from replay.backtest import BacktestConfig, feature_frame, run_backtest
from replay.candidates import STREAM_POLICY, parse_policy
from replay.outputs import write_outputs
from replay.prequential import run_prequential
from replay.report import METRIC_COLUMNS, fmt
from replay.validation import normalize
from tests.unit.test_replay_helpers import history


class Report(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, bytes] = {}
        self.cells: list[dict[str, str]] = []  # data-* attributes + text of metric cells
        self._cell: dict[str, str] | None = None
        self._table = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = a.get("id", "")
        if tag == "img" and a.get("src", "").startswith("data:image/png;base64,"):
            self.images[a["id"]] = base64.b64decode(a["src"].split(",", 1)[1])
        if tag == "td" and "data-metric" in a:
            self._cell = {**a, "table": self._table, "text": ""}

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None


def parse(path: Path) -> Report:
    report = Report()
    report.feed(path.read_text(encoding="utf-8"))
    return report


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=0)


@pytest.fixture(scope="module")
def featured() -> tuple[pd.DataFrame, tuple[str, ...]]:
    return feature_frame(normalize(history()))


def test_backtest_report_plots_and_numbers(tmp_path: Path,
                                           featured: tuple[pd.DataFrame, tuple[str, ...]]
                                           ) -> None:
    frame, names = featured
    result = run_backtest(frame, names, [], Settings(), BacktestConfig().with_windows(
        train_days=14), policies=[STREAM_POLICY, parse_policy("tight:review=0.2")],
        train=True)
    written = write_outputs(tmp_path, result)
    assert set(written.files) == set(tmp_path.iterdir())  # the "wrote ..." line names all
    report = parse(written.report)
    assert set(report.images) == {"plot-pr", "plot-alerts", "plot-over-time"}
    for png in report.images.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000

    table = pd.read_csv(written.metrics).set_index("candidate")
    cells = [c for c in report.cells if c["table"] == "metrics"]
    assert {c["data-candidate"] for c in cells} == set(table.index)
    checked = 0
    for cell in cells:
        expected = float(table.loc[cell["data-candidate"], cell["data-metric"]])
        assert same(float(cell["data-value"]), expected), cell
        assert cell["text"] == fmt(expected)  # the rounded text shows the same number
        checked += 1
    assert checked == len(table) * len(METRIC_COLUMNS)  # every metric of every candidate
    auc = table.loc["trained / stream", "roc_auc"]
    assert any(c["text"] == f"{auc:.4f}" for c in cells)
    assert (tmp_path / "report.html").read_text().count("<img") == 3


def test_prequential_report_summary_matches(tmp_path: Path,
                                            featured: tuple[pd.DataFrame, tuple[str, ...]]
                                            ) -> None:
    frame, names = featured
    config = BacktestConfig().with_windows(train_days=10, delay_days=3, test_days=5)
    result = run_prequential(frame, names, [], Settings(), config)
    written = write_outputs(tmp_path, result)
    assert set(written.files) == set(tmp_path.iterdir()) and len(written.files) == 6
    assert written.line().startswith(f"wrote {tmp_path / 'predictions.parquet'}, ")
    report = parse(written.report)
    assert set(report.images) == {"plot-pr", "plot-alerts", "plot-over-time"}
    summary = pd.read_csv(tmp_path / "summary.csv")
    cells = {(c["data-candidate"], c["data-metric"]): float(c["data-value"])
             for c in report.cells if c["table"] == "summary"}
    for row in summary.to_dict("records"):
        label = f"{row['candidate']} · {row['metric']}"
        for stat in ("mean", "std", "min", "max"):
            assert same(cells[(label, stat)], float(row[stat])), (label, stat)
