"""The analyst console, served by the API process under ``/console`` (docs/console.md).

:func:`mount_console` adds the routes and returns the ``(start, stop)`` hooks the API's
lifespan runs: start builds the case store, the sign-in sessions, the audit trail and (with
``feed``) the Kafka reader of ``alerts``/``scores``/``labels``; stop ends the reader. The
store is in this process: run the console in one API process (claims are not shared
between processes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from infra.settings import Settings
from scoring.console.feed import AlertFeed
from scoring.console.routes import LoginRequired, router
from scoring.console.sessions import AuditTrail, Sessions
from scoring.console.store import AlertStore

STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class Console:
    store: AlertStore
    sessions: Sessions
    audit: AuditTrail
    feed: AlertFeed | None


def build_console(settings: Settings, feed: bool) -> Console:
    store = AlertStore(capacity=settings.console_alerts_capacity,
                       claim_seconds=settings.console_claim_seconds)
    return Console(store, Sessions(hours=settings.console_session_hours),
                   AuditTrail(settings.state_dir / "audit" / "console_verdicts.jsonl"),
                   AlertFeed(settings, store) if feed else None)


def mount_console(app: FastAPI, settings: Settings, feed: bool = True) -> tuple[Any, Any]:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/console/login?next={quote(str(exc))}", status_code=303)

    async def start(app: FastAPI) -> None:
        console = build_console(settings, feed)
        app.state.console = console
        if console.feed is not None:
            console.feed.start()

    async def stop(app: FastAPI) -> None:
        console: Console = app.state.console
        if console.feed is not None:
            console.feed.stop()

    return start, stop
