"""The REST API against real Redis, Kafka and MLflow (sqlite): the app built from settings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from features.core import Event as CoreEvent
from features.core import FeatureCore, card_update, terminal_key, terminal_update
from infra.settings import Settings
from models.pipeline import train_and_register
from models.registry import ModelRegistry
from models.train import TrainConfig
from replay.simulator import SimulationConfig, simulate, write_history
from scoring.api import create_app
from scoring.state_store import RedisStateStore

KEY = "integration-Key-4r8t-1p0z"
AUTH = {"X-API-Key": KEY}


def _read_one(settings: Settings, topic: str, timeout: float = 30.0) -> tuple[bytes, Any]:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers,
                         "group.id": f"read-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg.key(), json.loads(msg.value())
    finally:
        consumer.close()
    raise AssertionError(f"nothing arrived on {topic} within {timeout}s")


@pytest.fixture
def api_settings(settings: Settings, tmp_path: Path,
                 topic_factory: Callable[..., str]) -> Settings:
    history = simulate(SimulationConfig(n_customers=300, n_terminals=150, days=21, seed=5))
    path = write_history(history, tmp_path / "history.parquet")
    train_and_register(settings, path, alias="champion",
                       config=TrainConfig(unknown_labels="genuine", test_days=4, delay_days=2,
                                          valid_days=3))
    topic_factory(settings.topic_transactions)
    topic_factory(settings.topic_labels)
    return settings.model_copy(update={"api_keys": SecretStr(f"integration:{KEY}")})


def test_api_end_to_end(api_settings: Settings) -> None:
    s = api_settings
    prior = [CoreEvent(f"p{i}", 1736400000000 + i * 600_000, "card-int", "m-7", 15.0 * (i + 1),
                       "ecom", "FR", "dev-1", None) for i in range(4)]
    card, term = None, None
    for e in prior:
        card, _ = card_update(card, e)
        term, _ = terminal_update(term, e.transaction_id, e.event_ms, e.amount)
    assert card is not None and term is not None
    store = RedisStateStore(s)
    store.write("card-int", card, terminal_key(None, "m-7"), term)
    txn = {"transaction_id": "api-1", "event_time": 1736400000000 + 3_600_000,
           "card_id": "card-int", "merchant_id": "m-7", "amount": 980.0, "currency": "EUR",
           "channel": "ecom", "country": "US", "device_id": "dev-2"}

    with TestClient(create_app(s)) as client:
        assert client.get("/readyz").json() == {
            "ready": True, "checks": {"kafka": True, "redis": True, "model": True}}
        assert client.post("/v1/score", json=txn).status_code == 401
        assert client.post("/v1/score", json={**txn, "amount": -1}, headers=AUTH).status_code \
            == 422
        body = client.post("/v1/score", json=txn, headers=AUTH).json()

        event = CoreEvent("api-1", txn["event_time"], "card-int", "m-7", 980.0, "ecom", "US",
                          "dev-2", None)
        offline = FeatureCore().run([*prior, event], [])["api-1"]
        model = ModelRegistry(s).load("champion")
        expected = float(model.predict(np.asarray([offline]))[0])
        assert body["scores"]["batch"] == pytest.approx(expected, abs=1e-6)
        assert body["model_version"]["batch"] == model.version and body["published"] is True

        key, published = _read_one(s, s.topic_transactions)
        assert key == b"card-int" and published["transaction_id"] == "api-1"

        label = {"transaction_id": "api-1", "card_id": "card-int", "label": "fraud",
                 "source": "analyst"}
        assert client.post("/v1/labels", json=label, headers=AUTH).status_code == 202
        key, landed = _read_one(s, s.topic_labels)
        assert key == b"card-int" and landed["label"] == "fraud"
        assert landed["label_time"].endswith("Z") and landed["actor"] == "integration"

        listed = client.get("/v1/models").json()
        assert listed["aliases"]["champion"] == model.version
        assert listed["versions"][-1]["metrics"]["average_precision"] > 0

        text = client.get("/metrics").text
        assert f'role="batch",version="{model.version}"' in text
        assert 'fraudstream_decisions_total{decision="' in text
        assert 'route="/v1/score",status="422"' in text
    store.close()


def _raw_post(port: int, key: str | None, chunks: int) -> tuple[str, int]:
    """A chunked POST over a raw socket that sends ``chunks`` KiB, then only listens.

    Returns (status line, chunks sent). The server must answer without the rest of a
    body that would be 10 MB: a client that waits for the answer gets it.
    """
    import select
    import socket

    auth = f"X-API-Key: {key}\r\n" if key else ""
    head = ("POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            f"\r\nTransfer-Encoding: chunked\r\n{auth}\r\n").encode()
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sent = 0
        for _ in range(chunks):
            # a paced client (10 ms a KiB): what the server reads, not the kernel's buffers
            readable, _, _ = select.select([sock], [], [], 0.01)
            if readable:
                break
            sock.sendall(chunk)
            sent += 1
        sock.settimeout(30)
        answer = sock.recv(4096).decode("latin-1")
    return answer.split("\r\n", 1)[0], sent


def test_the_served_api_checks_the_key_first_and_limits_bodies_while_reading(
        settings: Settings) -> None:
    """Over real HTTP (uvicorn), the 10 MB chunked body of the issue never gets read.

    No champion is needed: the key and the limit come before scoring.
    """
    import threading

    import uvicorn

    s = settings.model_copy(update={"api_keys": SecretStr(f"integration:{KEY}")})
    server = uvicorn.Server(uvicorn.Config(create_app(s), host="127.0.0.1", port=s.api_port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.1)
        status, sent = _raw_post(s.api_port, None, chunks=1)
        assert status.startswith("HTTP/1.1 401"), status  # answered after 1 KiB of 10 MB
        status, sent = _raw_post(s.api_port, KEY, chunks=10_000)
        assert status.startswith("HTTP/1.1 413"), status
        assert sent < 100, sent  # cut off near the 16 KiB limit, not after 10 MB
    finally:
        server.should_exit = True
        thread.join(30)
