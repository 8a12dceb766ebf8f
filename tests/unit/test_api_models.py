"""Model operations over the API with a fake registry: show, promote, rollback, canary
start/step/abort/status; the audit actor is the key's name; refusals are 4xx naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from infra.settings import Settings
from scoring.api import create_app
from tests.unit.test_api import AUTH, KEY, OPS, OPS_KEY, FakeOps, make_deps


@pytest.fixture
def ops() -> FakeOps:
    return FakeOps()


@pytest.fixture
def client(tmp_path: Path, ops: FakeOps) -> Iterator[TestClient]:
    settings = Settings(state_dir=tmp_path, api_keys=SecretStr(f"alice:{KEY},ops:{OPS_KEY}"),
                        online_reload_seconds=60)
    with TestClient(create_app(settings, make_deps(settings, ops=ops), console=False)) as c:
        yield c


def field_of(response: object) -> str:
    return str(response.json()["errors"][0]["field"])  # type: ignore[attr-defined]


def test_show_promote_and_rollback_audited_as_the_key(client: TestClient, ops: FakeOps) -> None:
    shown = client.get("/v1/models/4")
    assert shown.status_code == 200 and shown.json()["lineage"]["git_commit"] == "abc"
    assert client.get("/v1/models/99").status_code == 404
    assert client.post("/v1/models/rollback", json={}, headers=OPS).status_code == 409
    assert client.post("/v1/models/4/alias", json={"alias": "champion", "reason": "A/B won"},
                       headers=OPS).status_code == 200
    back = client.post("/v1/models/rollback", json={"reason": "bad night"}, headers=AUTH)
    assert back.status_code == 200, back.text
    assert (back.json()["previous_version"], back.json()["new_version"]) == ("4", "3")
    assert ops.audit == [("promote", "ops"), ("rollback", "alice")]
    empty = client.post("/v1/models/rollback", content=b"", headers=AUTH)
    assert empty.status_code == 409 and field_of(empty) == "alias"  # nothing left to undo


def test_canary_start_step_status_abort(client: TestClient, ops: FakeOps) -> None:
    assert client.get("/v1/models/canary").json() == {"version": None, "share": 0.0,
                                                      "champion": "3"}
    started = client.post("/v1/models/canary", json={"version": "4", "reason": "try"},
                          headers=OPS)
    assert started.status_code == 200 and started.json()["share"] == 0.01
    again = client.post("/v1/models/canary", json={"version": "4"}, headers=OPS)
    assert again.status_code == 409 and field_of(again) == "version"
    stepped = client.post("/v1/models/canary/step", json={}, headers=OPS)
    assert stepped.status_code == 200 and stepped.json()["next_share"] == pytest.approx(0.1)
    assert client.get("/v1/models/canary").json()["share"] == pytest.approx(0.1)
    assert client.post("/v1/models/canary/abort", json={"reason": "enough"},
                       headers=AUTH).status_code == 200
    none = client.post("/v1/models/canary/step", headers=OPS)
    assert none.status_code == 409 and field_of(none) == "canary"
    assert ops.audit == [("canary_start", "ops"), ("canary_step", "ops"),
                         ("canary_abort", "alice")]


@pytest.mark.parametrize(("body", "field"), [
    ({"version": 4}, "version"),  # strict: no coercion from a number
    ({"version": "4", "share": 0}, "share"),
    ({"version": "4", "share": 1.5}, "share"),
    ({"version": "4", "share": "0.1"}, "share"),
    ({"version": "4", "actor": "alice"}, "actor"),  # the actor is the key's name
    ({"share": 0.1}, "version"),
])
def test_bad_canary_requests_name_the_field(client: TestClient, body: dict[str, object],
                                            field: str) -> None:
    answer = client.post("/v1/models/canary", json=body, headers=OPS)
    assert answer.status_code == 422 and field_of(answer) == field, answer.text


def test_refusals_and_keys(client: TestClient) -> None:
    unservable = client.post("/v1/models/canary", json={"version": "5"}, headers=OPS)
    assert unservable.status_code == 409 and "expects features" in unservable.text
    unknown = client.post("/v1/models/canary", json={"version": "77"}, headers=OPS)
    assert unknown.status_code == 404 and field_of(unknown) == "version"
    alias = client.post("/v1/models/rollback", json={"alias": "canary"}, headers=OPS)
    assert alias.status_code == 422 and field_of(alias) == "alias"
    for path in ("/v1/models/rollback", "/v1/models/canary", "/v1/models/canary/step",
                 "/v1/models/canary/abort"):
        assert client.post(path, json={}).status_code == 401
        assert client.post(path, json={}, headers={"X-API-Key": "wrong"}).status_code == 401
