"""``fraudstream models report --html``: the A/B table by arm (Wilson intervals) and the
shadow comparison, with the exact numbers readable back from the HTML."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from infra.cli import main
from models.reports import ab_report, decisions_frame, shadow_report

CELL = re.compile(r'data-(arm|shadow)="([^"]+)" data-metric="([^"]+)" data-value="([^"]+)"'
                  r'(?: data-low="([^"]+)" data-high="([^"]+)")?')


def records(n: int = 600) -> tuple[list[dict[str, object]], dict[str, int]]:
    """Decisions as the stream stage writes them: canary arm on every third card, a
    shadow that agrees with the live model on most transactions, labels on half."""
    rng = np.random.default_rng(3)
    out, labels = [], {}
    for i in range(n):
        fraud = rng.random() < 0.08
        score = float(np.clip(rng.beta(1, 12) + 0.6 * fraud, 0, 1))
        shadow = float(np.clip(score + rng.normal(0, 0.05), 0, 1))
        arm = "canary" if i % 3 == 0 else "champion"
        record = {"transaction_id": f"t{i}", "card_id": f"c{i}", "arm": arm, "score": score,
                  "decision": "review" if score >= 0.4 else "approve",
                  "scores": {"batch": score, "online": None},
                  "shadow": {"version": "9", "score": shadow,
                             "decision": "review" if shadow >= 0.4 else "approve"}}
        if arm == "canary":
            record["scores"]["champion"] = score  # type: ignore[index]
        out.append(record)
        if i % 2 == 0:
            labels[f"t{i}"] = int(fraud)
    return out, labels


def read_cells(text: str) -> dict[tuple[str, str], tuple[float, ...]]:
    found = {}
    for _, who, metric, value, low, high in CELL.findall(text):
        found[(who, metric)] = tuple(float(v) for v in (value, low, high) if v)
    return found


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_report_command_writes_the_ab_and_shadow_tables(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    rows, labels = records()
    decisions, label_file = tmp_path / "scores.jsonl", tmp_path / "labels.jsonl"
    decisions.write_text("\n".join(json.dumps(r) for r in rows))
    label_file.write_text("\n".join(json.dumps({"transaction_id": t, "is_fraud": y})
                                    for t, y in labels.items()))
    out = tmp_path / "report.html"
    assert main(["models", "report", "--decisions", str(decisions), "--labels",
                 str(label_file), "--html", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    cells = read_cells(out.read_text())
    frame = decisions_frame(rows, labels)
    ab, shadow = ab_report(frame), shadow_report(frame)
    for arm in ("champion", "canary"):
        assert cells[(arm, "decisions")] == (ab[arm]["decisions"],)
        assert cells[(arm, "matured_frauds")] == (ab[arm]["matured_frauds"],)
        for rate in ("alert_rate", "precision", "recall"):
            value, low, high = cells[(arm, rate)]
            want = ab[arm][rate]
            assert same(value, want["value"]) and low <= value <= high
            assert (low, high) == (pytest.approx(want["low"]), pytest.approx(want["high"]))
        assert same(cells[(arm, "average_precision")][0], ab[arm]["average_precision"])
    assert ab["canary"]["decisions"] == 200 and ab["canary"]["matured_frauds"] > 0
    assert cells[("1", "transactions")] == (600,)
    assert same(cells[("1", "spearman")][0], shadow["spearman"]) and shadow["spearman"] > 0.5
    assert cells[("1", "alerts.both")] == (shadow["alerts"]["both"],)
    assert cells[("1", "frauds_caught.shadow")] == (shadow["frauds_caught"]["shadow"],)
    assert 0.5 < cells[("1", "agreement")][0] < 1.0  # they disagree on some alerts


def test_without_shadow_scores_the_report_says_so(tmp_path: Path) -> None:
    rows, _ = records(60)
    for r in rows:
        r.pop("shadow")
    decisions = tmp_path / "scores.jsonl"
    decisions.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "report.html"
    assert main(["models", "report", "--decisions", str(decisions), "--html", str(out)]) == 0
    text = out.read_text()
    assert "No shadow scores" in text and 'id="shadow"' not in text
    assert read_cells(text)[("canary", "decisions")] == (20,)
