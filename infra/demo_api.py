"""The demo's REST API part: start ``fraudstream api`` and use it as an upstream service and
an analyst would (score, a refused call, a bad request, the registered models)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
from pydantic import SecretStr

from infra.errors import ServiceError
from infra.settings import Settings
from infra.workers import WorkerProcess


def _show(label: str, response: httpx.Response, keys: tuple[str, ...] | None = None) -> None:
    body: Any = response.json()
    if keys is not None and isinstance(body, dict):
        body = {k: body[k] for k in keys if k in body}
    print(f"  {label}: HTTP {response.status_code} {json.dumps(body)[:400]}")


def start_api(settings: Settings) -> tuple[WorkerProcess, Settings]:
    """The API as a child process with a fresh key; returns once ``/readyz`` answers 200."""
    api_settings = settings.model_copy(
        update={"api_key": SecretStr(secrets.token_urlsafe(16)), "api_publish_transactions": False}
    )
    api = WorkerProcess("api", ["api"], api_settings).start()
    base = f"http://{api_settings.api_host}:{api_settings.api_port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and api.alive():
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return api, api_settings
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ServiceError(f"the API did not become ready:\n{api.log_tail()}")


def show_api(settings: Settings, transaction: dict[str, Any]) -> None:
    """Score ``transaction`` through the API, then show auth, validation and the models."""
    if settings.api_key is None:
        raise ServiceError("the demo API needs a key")
    base = f"http://{settings.api_host}:{settings.api_port}"
    headers = {"X-API-Key": settings.api_key.get_secret_value()}
    with httpx.Client(base_url=base, timeout=10) as client:
        _show("POST /v1/score", client.post("/v1/score", json=transaction, headers=headers))
        _show("POST /v1/score without key", client.post("/v1/score", json=transaction))
        bad = {**transaction, "transaction_id": "demo-bad", "amount": -5}
        _show("POST /v1/score amount -5", client.post("/v1/score", json=bad, headers=headers))
        _show("GET /v1/models", client.get("/v1/models"), ("name", "aliases", "in_use"))
