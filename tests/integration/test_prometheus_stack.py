"""A real Prometheus scrapes the running workers; every dashboard query and every selector
of every rule returns series.

The workers are started through :mod:`infra.workers` as the other integration tests do, on a
small simulated pipeline (topics, Feast, a champion), with transactions, labels, a bad
record and a few API calls flowing so that each metric has samples. Prometheus (the Debian
binary) runs on a free port with a config generated here, the project's rule files loaded,
1 s scrapes. A missing ``prometheus`` binary skips the test outside CI and fails it in CI.

The stage (``fraudstream stream worker``: features and decisions in one hop) and its scrape
job are named in ``STAGE`` below and its metric names in
``infra/deploy/prometheus/rules/stage.rules.yml``: the two places to adjust when the stream
stage changes. Besides a bad record on each input, the traffic repeats a transaction (same
content: counted, no second decision) and reuses an id with other content (a conflict,
dead-lettered), so the stage's id and dead-letter series exist.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from pydantic import SecretStr

from features.stream.decide import READY_MARKER as STAGE_READY
from infra.settings import Settings
from infra.workers import WorkerProcess
from replay.history import iter_transactions, label_records
from replay.simulator import SimulationConfig, simulate
from streams.clients import make_producer
from streams.producer import TransactionProducer
from tests.deploy_tools import DEPLOY, dashboard_queries, tool
from tests.integration.deployed import drain, prepare, split_days

RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))

# The stream stage: scrape job -> (process name, CLI args, settings field of its port).
STAGE: dict[str, tuple[str, list[str], str]] = {
    "fraudstream-stage": ("stream", ["stream", "worker", "--instance", "ops-0"],
                          "stream_metrics_port"),
}
READY_MARKERS = {"fraudstream-stage": STAGE_READY}
OTHERS: dict[str, tuple[str, list[str], str]] = {
    "fraudstream-learner": ("learner", ["learner"], "learner_metrics_port"),
    "fraudstream-drift": ("drift", ["drift", "monitor"], "drift_metrics_port"),
    "fraudstream-monitor": ("monitor", ["monitor"], "monitor_metrics_port"),
    "fraudstream-api": ("api", ["api"], "api_port"),
}
# Selectors that match only when something fails (a 5xx, a model that did not load): a
# healthy run has no such series, so for these the metric's metadata (HELP/TYPE served by
# the worker) must be known to Prometheus instead.
FAILURE_ONLY = {
    'fraudstream_http_requests_total{status=~"5.."}',
    'fraudstream_errors_total{reason="model"}',
    "fraudstream_stream_transaction_aborts_total",
    "fraudstream_stream_late_items_total",
    "fraudstream_stream_shadow_errors_total",
    "fraudstream_stream_canary_errors_total",
}
SELECTOR = re.compile(r'\b(up|fraudstream[a-zA-Z0-9_:]*)(\{[^}]*\})?')
N_TRANSACTIONS = 800
API_KEY = "ops-test-key-0123456789"  # the API refuses keys under 16 characters


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rule_selectors() -> set[str]:
    """Every vector selector of every rule expression (alerts and recording rules)."""
    found: set[str] = set()
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for name, braces in SELECTOR.findall(str(rule["expr"])):
                    found.add(name + braces)
    return found


@pytest.fixture
def ops_settings(settings: Settings) -> Settings:
    ports = {field: _free_port() for _, _, field in [*STAGE.values(), *OTHERS.values()]}
    return settings.model_copy(update={
        **ports,
        "topic_transactions": "transactions",  # the name the NoDecisions alert selects
        "metrics_host": "127.0.0.1",
        "api_key": SecretStr(API_KEY),
        "drift_window": "count", "drift_window_rows": 250, "drift_min_rows": 100,
        "online_snapshot_seconds": 2.0, "online_negative_rate": 1.0,
        "monitor_lag_timeout_s": 1.5,
    })


@pytest.fixture
def frame() -> pd.DataFrame:
    return simulate(SimulationConfig(n_customers=400, n_terminals=200, days=24, seed=11))


@pytest.fixture
def workers(ops_settings: Settings, frame: pd.DataFrame,
            tmp_path: Path) -> Iterator[dict[str, tuple[WorkerProcess, int]]]:
    """Every worker with its scrape job and port."""
    prepare(ops_settings, split_days(frame, 20)[0], tmp_path)
    procs: dict[str, tuple[WorkerProcess, int]] = {}
    try:
        for job, (name, args, field) in {**STAGE, **OTHERS}.items():
            procs[job] = (WorkerProcess(name, args, ops_settings).start(),
                          int(getattr(ops_settings, field)))
        for name, marker in READY_MARKERS.items():
            assert procs[name][0].wait_for_log(marker, 180), procs[name][0].log_tail()
        time.sleep(3)
        yield procs
    finally:
        for proc, _ in procs.values():
            proc.stop()


@pytest.fixture
def prometheus(workers: dict[str, tuple[WorkerProcess, int]],
               tmp_path: Path) -> Iterator[str]:
    """A Prometheus server scraping every worker; yields its base URL; stopped by PID."""
    binary = tool("prometheus")
    port = _free_port()
    config = {
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s",
                   "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port_}"]}]}
            for job, (_, port_) in workers.items() if port_
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert body["status"] == "success", (promql, body)
    return list(body["data"]["result"])


def _metadata(base: str, metric: str) -> list[Any]:
    body = httpx.get(f"{base}/api/v1/metadata", params={"metric": metric}, timeout=10).json()
    return list(body["data"].get(metric, []))


def _logs(workers: dict[str, tuple[WorkerProcess, int]]) -> str:
    return "\n".join(f"--- {n}:\n{p.log_tail(15)}" for n, (p, _) in workers.items())


def _traffic(s: Settings, frame: pd.DataFrame, logs: Callable[[], str]) -> None:
    """Transactions (one repeated, one id reused with other content), a bad record on each
    input, labels once scored, API calls."""
    live = split_days(frame, 20)[1].head(N_TRANSACTIONS)
    records = list(iter_transactions(live))
    with TransactionProducer(s) as producer:
        for record in records:
            producer.send(record)
        producer.send(records[0])  # a repeat: same content, no second decision
        producer.send({**records[1], "amount": float(records[1]["amount"]) + 1.0})  # conflict
        producer.send_raw("bad-json", b'{"transaction_id": ')  # -> transactions.dlq
    producer_raw = make_producer(s)
    producer_raw.produce(s.topic_labels, key=b"bad", value=b"not json")  # -> labels.dlq
    producer_raw.flush(30)
    scores = drain(s, s.topic_scores, len(live), timeout=300, settle=2)
    assert len(scores) >= len(live) // 2, f"only {len(scores)} of {len(live)} scored\n{logs()}"
    ids = Counter(json.loads(m.value())["transaction_id"] for m in scores)
    twice = {t: n for t, n in ids.items() if n > 1}
    assert not twice, (f"decided more than once: {twice} (repeat {records[0]['transaction_id']},"
                       f" conflict {records[1]['transaction_id']})\n" + "\n".join(
                           f"{m.partition()}@{m.offset()} {m.value()[:300]!r}" for m in scores
                           if json.loads(m.value())["transaction_id"] in twice))
    for label in label_records(live, include_genuine=True):
        producer_raw.produce(s.topic_labels, key=str(label["card_id"]).encode(),
                             value=json.dumps(label).encode())
    producer_raw.flush(30)
    api = f"http://127.0.0.1:{s.api_port}"
    one = next(iter_transactions(live.tail(1)))
    with httpx.Client(base_url=api, timeout=10) as client:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:  # not listening yet
                pass
            time.sleep(1)
        else:
            pytest.fail(f"the API never became ready\n{logs()}")
        ok = client.post("/v1/score", json={**one, "transaction_id": "ops-api-1"},
                         headers={"X-API-Key": API_KEY})
        assert ok.status_code == 200, ok.text
        denied = client.post("/v1/labels", json={"transaction_id": "x", "label": "fraud"},
                             headers={"X-API-Key": "wrong"})
        assert denied.status_code == 401


def test_every_dashboard_query_and_rule_selector_returns_series(
    ops_settings: Settings, frame: pd.DataFrame,
    workers: dict[str, tuple[WorkerProcess, int]], prometheus: str,
) -> None:
    _traffic(ops_settings, frame, lambda: _logs(workers))
    queries = {q for _, q in dashboard_queries()}
    selectors = rule_selectors() - FAILURE_ONLY
    assert len(queries) >= 20 and len(selectors) >= 15
    missing: set[str] = queries | selectors
    deadline = time.monotonic() + 180
    while missing and time.monotonic() < deadline:
        missing = {q for q in missing if not _query(prometheus, q)}
        time.sleep(2)
    assert not missing, ("no series for:\n  " + "\n  ".join(sorted(missing))
                         + f"\n{_logs(workers)}")
    served = "\n".join(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
                       for _, port in workers.values() if port)
    for selector in FAILURE_ONLY:
        name = selector.split("{")[0]
        # a labelled metric with no child yet has no sample (so Prometheus may keep no
        # metadata for it), but its worker declares it
        assert _metadata(prometheus, name) or f"# HELP {name} " in served, (
            f"{name} neither known to Prometheus nor served by a worker")

    up = {r["metric"]["job"]: r["value"][1] for r in _query(prometheus, "up")}
    assert up == {job: "1" for job in up} and set(up) == {*STAGE, *OTHERS}
    window = float(_query(prometheus, "fraudstream_live_window_decisions")[0]["value"][1])
    assert window > 0, "no matured decision reached the live quality window"
    lag_groups = {r["metric"]["group"] for r in
                  _query(prometheus, "fraudstream_consumer_lag_messages")}
    assert ops_settings.consumer_group_stream in lag_groups
    for name, promql in {
        "decisions/s": "sum(fraudstream:stage_decisions:rate1m)",
        "p99 publish->decision s": "fraudstream:stage_publish_to_decision_seconds:p99_5m",
        "dead-letter share": "fraudstream:stage_dead_letter_ratio:rate5m",
        "id conflicts (15m)": "fraudstream:stage_id_conflicts:increase15m",
        "lag (all groups)": "sum(fraudstream_consumer_lag_messages)",
        "live precision@budget": "fraudstream_live_precision_at_budget_ratio",
        "live recall@budget": "fraudstream_live_recall_at_budget_ratio",
        "matured window": "fraudstream_live_window_decisions",
    }.items():
        print(f"{name}: {_query(prometheus, promql)[0]['value'][1]}")
    wanted = re.compile(r"^fraudstream_(live_|retrain_triggers|model_alias_moves_total|"
                        r"stream_(records_|publish_to_decision_seconds_(count|sum)|consumer_lag"
                        r"|dead_letters_total|transaction_ids_total|model_info)|"
                        r"consumer_lag_messages\{group="
                        f'"{ops_settings.consumer_group_stream}")')
    for job, (_, port) in workers.items():
        if port and job in {*STAGE, "fraudstream-monitor"}:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            lines = [line for line in text.splitlines() if wanted.match(line)]
            print(f"--- curl {job} /metrics (excerpt)\n" + "\n".join(lines[:24]))
