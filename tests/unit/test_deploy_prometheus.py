"""Prometheus rules: promtool checks and unit-tests them; every alert has both kinds of case.

The stage's raw metric names may appear only in ``stage.rules.yml`` (the one place the lead
adjusts when the stream stage renames its metrics): alerts and the dashboard read the
recorded ``fraudstream:stage_*`` series.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.deploy_tools import DEPLOY, tool

PROM = DEPLOY / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
TESTS = sorted((PROM / "tests").glob("*.test.yml"))
METRIC = re.compile(r"\bfraudstream_[a-z0-9_]+")


def _rules(path: Path) -> list[dict[str, object]]:
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def alert_names() -> set[str]:
    return {str(r["alert"]) for path in RULES for r in _rules(path) if "alert" in r}


def stage_raw_metrics() -> set[str]:
    """Raw metric names the recording rules read (the stage's own names)."""
    names: set[str] = set()
    for rule in _rules(PROM / "rules" / "stage.rules.yml"):
        names.update(m.removesuffix("_bucket").removesuffix("_count")
                     for m in METRIC.findall(str(rule["expr"])))
    return names


def test_promtool_checks_the_rules_and_the_config() -> None:
    promtool = tool("promtool")
    out = subprocess.run([promtool, "check", "rules", *map(str, RULES)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([promtool, "check", "config", str(PROM / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    out = subprocess.run([tool("promtool"), "test", "rules", *map(str, TESTS)],
                         capture_output=True, text=True, timeout=120, cwd=PROM / "tests")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = alert_names()
    assert len(alerts) >= 10
    assert alerts - firing == set(), "alerts without a firing case"
    assert alerts - silent == set(), "alerts without a silent case"


def test_alerts_and_dashboard_read_the_stage_only_through_recording_rules() -> None:
    raw = stage_raw_metrics()
    assert "fraudstream_stream_publish_to_decision_seconds" in raw
    alerts = (PROM / "rules" / "alerts.rules.yml").read_text()
    dashboards = [p.read_text() for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")]
    for text in [alerts, *dashboards]:
        used = {m.removesuffix("_bucket").removesuffix("_count") for m in METRIC.findall(text)}
        assert used & raw == set()
    for text in dashboards:
        json.loads(text)


def test_recording_rules_read_only_names_the_stream_stage_declares() -> None:
    """The stage's names come from features/stream/metrics.py: a rename there fails here."""
    from prometheus_client import generate_latest

    from features.stream.metrics import build_stage_metrics

    text = generate_latest(build_stage_metrics().registry).decode()
    declared = set(re.findall(r"^# HELP (\S+)", text, re.M))
    raw = stage_raw_metrics()
    assert raw - declared == set(), "recording rules read names the stage does not serve"
    for needed in ("records_in_total", "records_out_total", "dead_letters_total",
                   "transaction_aborts_total", "late_items_total", "transaction_ids_total",
                   "batch_seconds", "publish_to_decision_seconds", "consumer_lag",
                   "model_info"):
        assert f"fraudstream_stream_{needed}" in raw, needed


def test_slo_bound_is_a_bucket_of_the_stage_histogram() -> None:
    """The SLO rules count decisions under le="0.5": that bound must be a real bucket."""
    from scoring.metrics import E2E_BUCKETS

    text = (PROM / "rules" / "stage.rules.yml").read_text()
    bounds = {float(b) for b in re.findall(r'_bucket\{le="([0-9.]+)"\}', text)}
    assert bounds and bounds <= set(E2E_BUCKETS)


def test_every_alert_has_severity_summary_and_a_runbook_line() -> None:
    runbook = (DEPLOY.parents[1] / "docs" / "operations.md").read_text()
    for path in RULES:
        for rule in _rules(path):
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in {"page", "ticket"}  # type: ignore[index]
            assert rule["annotations"]["summary"]  # type: ignore[index]
            assert f"`{rule['alert']}`" in runbook, f"{rule['alert']} has no runbook line"
