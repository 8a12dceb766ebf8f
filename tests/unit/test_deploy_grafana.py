"""Lint of the Grafana dashboard: valid JSON, a query per panel, datasource set, unique ids.

Query syntax is checked by promtool (each query becomes a recording rule of a scratch rule
file); whether the queries return data is the integration test's job
(tests/integration/test_prometheus_stack.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy_tools import DASHBOARDS, DEPLOY, dashboard_queries, query_panels, tool

GRAFANA = DEPLOY / "grafana"


def datasource_uid() -> str:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")
                         .read_text())
    return str(doc["datasources"][0]["uid"])


def test_there_is_a_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["fraudstream.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_lint(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    uid = datasource_uid()
    panels = query_panels(dashboard)
    assert len(panels) >= 15
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", panel["datasource"])["uid"] == uid
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()


def test_dashboard_covers_what_operators_watch() -> None:
    text = " ".join(q for _, q in dashboard_queries())
    for needle in ("stage_decisions", "consumer_lag", "publish_to_decision", "dead_letter",
                   "drift_psi", "live_precision_at_budget", "live_recall_at_budget",
                   "model_info", "stage_late_ratio", "stage_transaction_ids", "stage_alerts"):
        assert needle in text, needle


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": q}
        for i, (_, q) in enumerate(dashboard_queries())]}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run([tool("promtool"), "check", "rules", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
