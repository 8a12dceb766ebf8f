"""API hardening: named keys, weak keys refused, auth before the body, a streamed byte limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from infra.errors import ConfigurationError, InvalidInput
from infra.settings import Settings
from scoring.api import create_app
from scoring.api_http import field_of
from scoring.api_keys import load_keys, weakness
from streams.schema import parse_transaction
from tests.unit.test_api import KEY, OPS_KEY, TXN, make_deps

AUTH = {"X-API-Key": KEY}


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    kw.setdefault("api_keys", SecretStr(f"alice:{KEY},ops:{OPS_KEY}"))
    return Settings(state_dir=tmp_path, online_reload_seconds=60, **kw)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    s = _settings(tmp_path)
    with TestClient(create_app(s, make_deps(s))) as c:
        yield c


def test_named_keys_from_settings_and_file(tmp_path: Path) -> None:
    keyfile = tmp_path / "keys"
    keyfile.write_text("# analysts\nbob:bob-Q8w7-Ee3r-Tt5y\n\ncarol : carol-Zx1c-Vb2n-Mm9k\n")
    s = _settings(tmp_path, api_keys_file=keyfile, api_key=SecretStr("legacy-Key-0123456789"))
    store = load_keys(s)
    assert store.names == ["alice", "api", "bob", "carol", "ops"]
    assert store.name_for("carol-Zx1c-Vb2n-Mm9k") == "carol"
    assert store.name_for(KEY) == "alice" and store.name_for("legacy-Key-0123456789") == "api"
    assert store.name_for(KEY[:-1]) is None and store.name_for("") is None
    assert store.name_for(None) is None


@pytest.mark.parametrize(("spec", "words"), [
    ("alice:short", "weak"), ("alice:aaaaaaaaaaaaaaaaaaaa", "distinct"), ("alice:", "empty"),
    ("alice", "name:key"), ("al ice:" + KEY, "name"), (f"a:{KEY},a:{OPS_KEY}", "twice"),
    (f"a:{KEY},b:{KEY}", "share"),
])
def test_bad_or_weak_keys_stop_the_app_with_a_clear_message(
        tmp_path: Path, spec: str, words: str) -> None:
    s = _settings(tmp_path, api_keys=SecretStr(spec))
    with pytest.raises(ConfigurationError, match=words):
        create_app(s, make_deps(s))


def test_weak_keys_only_by_explicit_opt_in_and_never_empty(tmp_path: Path) -> None:
    s = _settings(tmp_path, api_keys=SecretStr("dev:dev-key"), api_allow_weak_keys=True)
    with TestClient(create_app(s, make_deps(s))) as c:
        assert c.post("/v1/score", json=TXN, headers={"X-API-Key": "dev-key"}).status_code == 200
    empty = _settings(tmp_path, api_keys=SecretStr("dev: "), api_allow_weak_keys=True)
    with pytest.raises(ConfigurationError, match="empty"):
        load_keys(empty)
    assert weakness("x" * 15) and weakness(KEY) is None


def test_open_reads_are_warned_about_and_can_be_closed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = _settings(tmp_path)
    create_app(s, make_deps(s))
    assert "READS ARE OPEN" in caplog.text
    closed = _settings(tmp_path, api_open_reads=False)
    with TestClient(create_app(closed, make_deps(closed))) as c:
        for path in ("/v1/models", "/metrics"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers=AUTH).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200


def _call(app: Any, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
          ) -> tuple[int, dict[str, Any], int]:
    """Drive the ASGI app directly: (status, JSON body, body chunks the app pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1],
                    "more_body": pulled < len(chunks)}
        await asyncio.sleep(3600)  # a client that never sends more: the app must not wait
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "app": app}

    async def run() -> None:
        await asyncio.wait_for(app(scope, receive, send), 10)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


@pytest.mark.parametrize("path", ["/v1/score", "/v1/labels", "/v1/models/3/alias"])
def test_the_key_is_checked_before_one_byte_of_the_body_is_read(
        tmp_path: Path, path: str) -> None:
    s = _settings(tmp_path)
    app = create_app(s, make_deps(s))
    app.state.deps = make_deps(s)  # no lifespan in a direct ASGI call
    chunks = [b"x" * 1000] * 10_000  # 10 MB, chunked (no Content-Length)
    for headers in ([], [(b"x-api-key", b"wrong-key-0123456789")]):
        status, body, pulled = _call(app, path, headers, chunks)
        assert (status, body["errors"][0]["field"], pulled) == (401, "X-API-Key", 0)


def test_a_chunked_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    s = _settings(tmp_path, max_message_bytes=4096)
    app = create_app(s, make_deps(s))
    app.state.deps = make_deps(s)
    status, body, pulled = _call(app, "/v1/score", [(b"x-api-key", KEY.encode())],
                                 [b" " * 1000] * 10_000)
    assert status == 413 and body["errors"][0]["field"] == "body"
    assert pulled == 5  # stopped at the first chunk past 4096 bytes, not after 10 MB


def test_limits_through_a_real_client(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(2000):
            yield b"y" * 1000
        yield b'"}'

    chunked = client.post("/v1/labels", content=chunks(), headers=AUTH)
    assert chunked.status_code == 413 and "payload too large" in chunked.json()["detail"]
    declared = client.post("/v1/score", content=b"{}", headers={
        **AUTH, "Content-Length": "99999999"})
    assert declared.status_code == 413


@pytest.mark.parametrize("change", [
    {"amount": "12.50"}, {"mcc": 1}, {"amount": 5e-324}, {"amount": 0}, {"amount": True},
    {"event_time": "9999-12-31T23:59:59-01:00"}, {"transaction_id": "é" * 3},
    {"amount": 10**400}, {"schema_version": "1"}, {"card_id": ""},
])
def test_score_accepts_exactly_what_parse_transaction_accepts(
        client: TestClient, change: dict[str, Any]) -> None:
    """The API's transaction rules are the stream's (``streams.schema``), never its own."""
    body = json.dumps({**TXN, **change}).encode()
    answer = client.post("/v1/score", content=body, headers=AUTH)
    try:
        parse_transaction(body)
    except InvalidInput as exc:
        assert answer.status_code == 422, answer.text
        field = answer.json()["errors"][0]["field"]
        assert field == field_of(exc.reason, [*TXN, *change]) and field in change, exc.reason
    else:
        assert answer.status_code == 200, answer.text


def test_every_error_names_a_field(client: TestClient) -> None:
    answers = [
        client.post("/v1/score", content=b"[1]", headers=AUTH),
        client.post("/v1/score", content=b"\xff\xfe", headers=AUTH),
        client.post("/v1/score", content=b'{"amount": NaN}', headers=AUTH),
        client.post("/v1/labels", content=b"1" * 5000 + b"[" * 5000, headers=AUTH),
        client.get("/v1/nothing"), client.delete("/v1/score"),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        errors = answer.json()["errors"]
        assert errors and all(e["field"] and e["field"] in answer.json()["detail"]
                              for e in errors)
