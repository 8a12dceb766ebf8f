"""The analyst console without services: sign-in, queue filters, claims, verdicts, exports."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from infra.settings import Settings
from scoring.api import create_app
from scoring.console.store import AlertStore, Claimed, Filters
from tests.unit.test_api import KEY, OPS_KEY, make_deps

BOB_KEY = "bob-Hj6k-Ll0p-Qq2w"


def alert(i: int, score: float = 0.7, decision: str = "review", **txn: Any) -> dict[str, Any]:
    summary = {"event_time": f"2025-03-01T10:{i % 60:02d}:00Z", "card_id": f"card-{i % 7}",
               "merchant_id": "m-1", "terminal_id": f"t-{i % 3}", "amount": 10.0 * i,
               "currency": "EUR", "channel": "ecom" if i % 2 else "pos", "country": "FR",
               "mcc": "5411", **txn}
    return {"transaction_id": f"tx-{i}", "decision": decision, "score": score,
            "reasons": [{"code": "card_amount_ratio_30d", "value": 8.5, "contribution": 1.25},
                        {"code": "card_new_device_30d", "value": 1.0, "contribution": 0.5}],
            "model_version": {"batch": "3", "online": None}, "latency_ms": 12,
            "transaction": summary}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, online_reload_seconds=60,
                    api_keys=SecretStr(f"alice:{KEY},ops:{OPS_KEY},bob:{BOB_KEY}"))


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    application = create_app(settings, make_deps(settings))
    with TestClient(application):  # runs the lifespan: the console's store exists
        yield application


def signed_in(app: Any, key: str) -> tuple[TestClient, str]:
    client = TestClient(app, base_url="http://testserver")
    answer = client.post("/console/login", data={"key": key, "next": "/console"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = client.get("/console")
    token = re.search(r'name="csrf" content="([^"]+)"', page.text)
    assert token is not None
    return client, token.group(1)


def test_pages_need_a_session_and_a_known_key(app: Any) -> None:
    anon = TestClient(app)
    assert anon.get("/console", follow_redirects=False).headers["location"].startswith(
        "/console/login")
    assert anon.get("/console/api/alerts").status_code == 401
    bad = anon.post("/console/login", data={"key": "nope-nope-nope-nope"})
    assert bad.status_code == 401 and "Unknown key" in bad.text


def test_queue_filters_counts_and_order(app: Any) -> None:
    store: AlertStore = app.state.console.store
    for i in range(1, 41):
        store.add_alert(alert(i, score=i / 50, decision="decline" if i % 5 == 0 else "review"))
    store.add_alert(alert(3))  # a repeat of tx-3 is ignored
    client, _ = signed_in(app, KEY)
    body = client.get("/console/api/alerts").json()
    assert body["total"] == 40 and body["counts"]["open"] == 40
    assert body["rows"][0]["transaction_id"] == "tx-40"  # newest first
    risky = client.get("/console/api/alerts", params={"sort": "riskiest", "decision": "decline",
                                                      "min_amount": "100"}).json()
    ids = [r["transaction_id"] for r in risky["rows"]]
    assert ids == [f"tx-{i}" for i in (40, 35, 30, 25, 20, 15, 10)]
    assert all("card_amount_ratio_30d=8.5" in r["reasons"] for r in risky["rows"])
    ecom = client.get("/console/api/alerts", params={"channel": "ecom", "max_score": "0.1"})
    assert {r["transaction_id"] for r in ecom.json()["rows"]} == {"tx-1", "tx-3", "tx-5"}
    for name, value in [("min_score", "high"), ("channel", "web"), ("max_amount", "nan"),
                        ("country", "FRA"), ("sort", "random")]:
        bad = client.get("/console/api/alerts", params={name: value})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == name
    page = client.get("/console", params={"decision": "decline"})
    assert page.status_code == 200 and "tx-35" in page.text and "tx-34" not in page.text


def test_a_case_is_claimed_and_the_verdict_goes_to_labels_as_the_analyst(app: Any) -> None:
    store: AlertStore = app.state.console.store
    store.add_alert(alert(1))
    store.add_alert(alert(2))
    store.add_score({"transaction_id": "tx-1", "card_id": "card-1", "event_time": "t",
                     "score": 0.7, "decision": "review",
                     "features": {"amount": 10.0, "term_fraud_rate_7d": 0.125}})
    alice, alice_csrf = signed_in(app, KEY)
    bob, bob_csrf = signed_in(app, BOB_KEY)
    case = alice.get("/console/case/tx-1")
    assert case.status_code == 200
    assert "card_amount_ratio_30d" in case.text and "+1.250" in case.text
    assert "12.50 %" in case.text  # the terminal's fraud rate as at alert time
    assert bob.get("/console/case/tx-1").status_code == 409  # claimed by alice
    refused = bob.post("/console/case/tx-1/verdict", json={"verdict": "genuine"},
                       headers={"X-CSRF-Token": bob_csrf})
    assert refused.status_code == 409 and "alice" in refused.json()["detail"]
    no_csrf = alice.post("/console/case/tx-1/verdict", json={"verdict": "fraud"})
    assert no_csrf.status_code == 403 and no_csrf.json()["errors"][0]["field"] == "csrf"
    cross = alice.post("/console/case/tx-1/verdict", json={"verdict": "fraud"},
                       headers={"X-CSRF-Token": alice_csrf, "Origin": "http://evil.example"})
    assert cross.status_code == 403
    done = alice.post("/console/case/tx-1/verdict", json={"verdict": "fraud", "note": "ATO"},
                      headers={"X-CSRF-Token": alice_csrf})
    assert done.status_code == 200, done.text
    assert done.json()["next"] == "/console/case/tx-2"
    deps = app.state.deps
    topic, key, value = deps.producer.produced[-1]
    label = json.loads(value)
    assert (topic, key) == (deps.settings.topic_labels, b"card-1")
    assert {k: label[k] for k in ("transaction_id", "label", "source", "actor", "note")} == {
        "transaction_id": "tx-1", "label": "fraud", "source": "analyst", "actor": "alice",
        "note": "ATO"}
    assert label["label_time"].endswith("Z")
    again = bob.post("/console/case/tx-1/verdict", json={"verdict": "genuine"},
                     headers={"X-CSRF-Token": bob_csrf})
    assert again.status_code == 409 and "already decided" in again.json()["detail"]
    produced = len(deps.producer.produced)
    unsure = bob.post("/console/case/tx-2/verdict", json={"verdict": "unsure"},
                      headers={"X-CSRF-Token": bob_csrf})
    assert unsure.status_code == 200 and unsure.json()["label"] is None
    assert len(deps.producer.produced) == produced  # "unsure" is not a label
    counts = alice.get("/console/api/alerts").json()["counts"]
    assert (counts["fraud"], counts["unsure"], counts["open"]) == (1, 1, 0)
    audit = (Path(deps.settings.state_dir) / "audit" / "console_verdicts.jsonl").read_text()
    assert [json.loads(line)["actor"] for line in audit.splitlines()] == ["alice", "bob"]
    assert "ATO" in alice.get("/console/audit").text


def test_release_lets_another_analyst_claim(app: Any) -> None:
    app.state.console.store.add_alert(alert(1))
    alice, alice_csrf = signed_in(app, KEY)
    bob, _ = signed_in(app, BOB_KEY)
    alice.get("/console/case/tx-1")
    assert bob.get("/console/case/tx-1").status_code == 409
    assert alice.post("/console/case/tx-1/release",
                      headers={"X-CSRF-Token": alice_csrf}).status_code == 200
    assert bob.get("/console/case/tx-1").status_code == 200


def test_exports_carry_the_explanations(app: Any) -> None:
    store: AlertStore = app.state.console.store
    store.add_alert(alert(1, merchant_id="=HYPERLINK(1)"))
    store.add_alert(alert(2, decision="decline", score=0.95))
    client, _ = signed_in(app, KEY)
    rows = list(csv.DictReader(io.StringIO(client.get("/console/export.csv").text)))
    assert [r["transaction_id"] for r in rows] == ["tx-2", "tx-1"]
    assert rows[0]["reasons"].startswith("card_amount_ratio_30d=8.5 (+1.250)")
    assert rows[1]["merchant_id"] == "'=HYPERLINK(1)"  # no formula injection
    only = client.get("/console/export.json", params={"decision": "decline"}).json()
    assert [c["transaction_id"] for c in only] == ["tx-2"]
    assert only[0]["reasons"][0]["contribution"] == 1.25
    one = client.get("/console/case/tx-1/export.json").json()
    assert one["transaction"]["amount"] == 10.0 and one["audit"] == []
    assert client.get("/console/case/nope/export.json").status_code == 404


def test_store_claims_expire_and_capacity_is_bounded() -> None:
    now = [1000.0]
    store = AlertStore(capacity=3, claim_seconds=60, clock=lambda: now[0])
    for i in range(5):
        store.add_alert(alert(i))
    assert len(store) == 3 and store.get("tx-0") is None and store.counters["dropped"] == 2
    store.claim("tx-4", "alice")
    with pytest.raises(Claimed):
        store.claim("tx-4", "bob")
    now[0] += 61
    assert store.claim("tx-4", "bob").claimed_by == "bob"
    store.add_label({"transaction_id": "tx-3", "label": "genuine", "actor": "carol"})
    assert store.get("tx-3").state(now[0]) == "genuine"  # type: ignore[union-attr]
    assert store.query(Filters(state="undecided"))[1] == 2
    assert store.add_alert({"transaction_id": 5}) is None and store.counters["malformed"] == 1


def test_one_verdict_per_case_even_when_sent_twice_at_once() -> None:
    store = AlertStore()
    store.add_alert(alert(1))
    store.reserve("tx-1", "alice")
    with pytest.raises(Claimed, match="being recorded"):
        store.reserve("tx-1", "alice")  # a double click while the label is being sent
    store.decide("tx-1", "alice", "fraud", None, "t")
    store.unreserve("tx-1")
    with pytest.raises(Claimed, match="already decided"):
        store.reserve("tx-1", "alice")
    assert store.counts()["fraud"] == 1


def test_a_verdict_kafka_did_not_take_leaves_the_case_open(
        app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.errors import ServiceError

    def down(record: dict[str, Any]) -> None:
        raise ServiceError("kafka: label not acknowledged (timeout)")

    app.state.console.store.add_alert(alert(1))
    monkeypatch.setattr(app.state.deps, "send_label", down)
    alice, csrf = signed_in(app, KEY)
    answer = alice.post("/console/case/tx-1/verdict", json={"verdict": "fraud"},
                        headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 503 and answer.json()["errors"][0]["field"] == "labels"
    assert app.state.console.store.get("tx-1").verdict is None
    monkeypatch.undo()
    again = alice.post("/console/case/tx-1/verdict", json={"verdict": "fraud"},
                       headers={"X-CSRF-Token": csrf})
    assert again.status_code == 200  # nothing stuck: the retry goes through


class FakeMessage:
    def __init__(self, topic: str, value: bytes) -> None:
        self._topic, self._value = topic, value

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def error(self) -> None:
        return None


def test_the_feed_fills_the_store_skips_bad_records_and_outlives_a_failing_consumer(
        settings: Settings) -> None:
    import threading

    from scoring.console.feed import AlertFeed

    store = AlertStore()
    made: list[int] = []
    done = threading.Event()
    batches = [
        [FakeMessage(settings.topic_scores, json.dumps({
            "transaction_id": "tx-1", "card_id": "card-1", "event_time": "2025-03-01T01:00:00Z",
            "score": 0.8,
            "decision": "review", "features": {"amount": 10.0, "bad": "x"}}).encode()),
         FakeMessage(settings.topic_alerts, json.dumps(alert(1)).encode()),
         FakeMessage(settings.topic_alerts, b"{not json"),
         FakeMessage(settings.topic_alerts, b"[1, 2]")],
        [FakeMessage(settings.topic_labels, json.dumps({
            "transaction_id": "tx-1", "label": "fraud", "actor": "carol"}).encode())],
    ]

    class Consumer:
        def subscribe(self, topics: list[str], on_assign: Any = None) -> None:
            assert set(topics) == {settings.topic_alerts, settings.topic_scores,
                                   settings.topic_labels}

        def consume(self, n: int, timeout: float) -> list[FakeMessage]:
            if len(made) == 1:
                raise RuntimeError("broker went away")  # the first consumer fails
            if batches:
                return batches.pop(0)
            done.set()
            time.sleep(0.01)
            return []

        def close(self) -> None:
            pass

    def factory() -> Consumer:
        made.append(1)
        return Consumer()

    feed = AlertFeed(settings, store, consumer_factory=factory)
    feed.start()
    try:
        assert done.wait(10)
    finally:
        feed.stop()
    assert len(made) == 2  # recreated after the failure
    case = store.get("tx-1")
    assert case is not None and case.verdict == "fraud" and case.verdict_by == "carol"
    assert store.features_of(case) == {"amount": 10.0}  # non-numeric values dropped
    assert store.card_history("card-1")[0]["score"] == 0.8
    store.add_score({"transaction_id": "tx-0", "card_id": "card-1", "decision": "approve",
                     "event_time": "2025-03-01T09:00:00Z", "score": 0.1, "features": {}})
    store.add_score({"transaction_id": "tx-2", "card_id": "card-1", "decision": "approve",
                     "event_time": "2025-03-01T11:00:00Z", "score": 0.1, "features": {}})
    assert [r["transaction_id"] for r in store.card_history("card-1")] == ["tx-2", "tx-0", "tx-1"]
    assert store.counters["malformed"] == 2
