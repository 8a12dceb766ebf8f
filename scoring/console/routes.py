"""The console's routes: sign-in, the queue, the case, the verdict, exports (HTML + JSON).

Pages are server-rendered (Jinja2, autoescaped) with one small vanilla script
(``static/console.js``) for polling the queue and the keyboard shortcuts. Every route needs
a signed-in session except the sign-in page; every POST checks the session's CSRF token
and, when the browser sends one, that ``Origin`` is this host. A verdict is produced to
``labels`` (source ``analyst``, the analyst's key name as ``actor``, the time) *before* the
case is marked decided, so a broker failure leaves the case open (503), never a verdict
that went nowhere.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from infra.errors import FraudstreamError
from scoring.api_http import ApiError, decode_object, read_body
from scoring.console.sessions import COOKIE, Session
from scoring.console.store import VERDICTS, Claimed, Filters
from scoring.console.views import (
    TERMINAL_RISK,
    case_detail,
    case_row,
    parse_filters,
    to_csv,
)

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Environment(loader=PackageLoader("scoring.console", "templates"),
                        autoescape=select_autoescape(["html"]))
PAGE = 100
# OFF_LOOP: the queue pages scan up to 50,000 cases (a few ms to tens of ms of CPU). They
# run in a worker thread so that the event loop, which also serves POST /v1/score with its
# 10 ms p99 target, is held for at most one GIL switch interval (5 ms) at a time, not for
# the whole page. The case pages are ~1-3 ms and stay on the loop.


class LoginRequired(Exception):
    """A page asked for without a session: redirect to the sign-in page."""


def _console(request: Request) -> Any:
    return request.app.state.console


def _session(request: Request, page: bool = True) -> Session:
    session = _console(request).sessions.get(request.cookies.get(COOKIE))
    if session is None:
        if page:
            raise LoginRequired(request.url.path)
        raise ApiError(401, "session", "sign in to the console first")
    return session


def _check_post(request: Request, session: Session, token: str | None = None) -> None:
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(403, "Origin", "cross-site request refused")
    sent = token or request.headers.get("x-csrf-token") or ""
    if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise ApiError(403, "csrf", "missing or wrong CSRF token (reload the page)")


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status)


def _now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _form(raw: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(raw.decode("utf-8"), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(422, "body", "not a URL-encoded form") from None
    return {k: v[0] for k, v in parsed.items()}


@router.get("/login")
async def login_page(request: Request, next: str = "/console") -> HTMLResponse:  # noqa: A002
    return _render("login.html", next=next if next.startswith("/console") else "/console")


@router.post("/login")
async def login(request: Request) -> Response:
    form = _form(await read_body(request))
    target = form.get("next", "/console")
    target = target if target.startswith("/console") and "//" not in target else "/console"
    name = request.app.state.keys.name_for(form.get("key", ""))
    if name is None:
        return _render("login.html", 401, next=target, error="Unknown key.")
    settings = request.app.state.settings
    session = _console(request).sessions.create(name)
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(COOKIE, session.token, httponly=True, samesite="strict",
                      secure=settings.console_secure_cookies, path="/console",
                      max_age=int(settings.console_session_hours * 3600))
    return answer


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = _session(request)
    _check_post(request, session, _form(await read_body(request)).get("csrf"))
    _console(request).sessions.drop(session.token)
    answer = RedirectResponse("/console/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/console")
    return answer


def _queue(request: Request) -> tuple[Filters, list[dict[str, Any]], int, dict[str, int]]:
    console = _console(request)
    filters = parse_filters(dict(request.query_params))
    cases, total = console.store.query(filters, limit=PAGE)
    now = console.store.clock()
    return filters, [case_row(c, now) for c in cases], total, console.store.counts()


@router.get("")
async def queue_page(request: Request) -> HTMLResponse:
    session = _session(request)

    def page() -> HTMLResponse:
        filters, rows, total, counts = _queue(request)
        return _render("queue.html", session=session, filters=filters, rows=rows,
                       total=total, counts=counts, query=str(request.query_params), page=PAGE)

    return await asyncio.to_thread(page)  # see OFF_LOOP


@router.get("/api/alerts")
async def queue_json(request: Request) -> dict[str, Any]:
    _session(request, page=False)
    _, rows, total, counts = await asyncio.to_thread(_queue, request)  # see OFF_LOOP
    return {"total": total, "counts": counts, "rows": rows}


@router.get("/export.{fmt}")
async def export_queue(request: Request, fmt: str) -> Response:
    _session(request, page=False)
    if fmt not in ("csv", "json"):
        raise ApiError(422, "fmt", "export as csv or json")
    console = _console(request)
    filters = parse_filters(dict(request.query_params))
    headers = {"Content-Disposition": f"attachment; filename=fraudstream-queue.{fmt}"}

    def export() -> Response:
        cases, _ = console.store.query(filters, limit=100_000)
        now = console.store.clock()
        if fmt == "csv":
            return Response(to_csv([case_row(c, now) for c in cases]), media_type="text/csv",
                            headers=headers)
        details = [case_detail(c, now, console.store.features_of(c)) for c in cases]
        return JSONResponse(details, headers=headers)

    return await asyncio.to_thread(export)  # see OFF_LOOP


def _case_or_404(request: Request, tid: str) -> Any:
    case = _console(request).store.get(tid)
    if case is None:
        raise ApiError(404, "transaction_id", f"no alert for transaction {tid[:64]!r}")
    return case


@router.get("/case/{tid}")
async def case_page(request: Request, tid: str) -> HTMLResponse:
    session = _session(request)
    console = _console(request)
    case = _case_or_404(request, tid)
    claimed_by, status = None, 200
    try:
        console.store.claim(tid, session.name)
    except Claimed as exc:
        claimed_by, status = exc.owner, 409
    now = console.store.clock()
    features = console.store.features_of(case)
    detail = case_detail(case, now, features)
    history = console.store.card_history(str(case.txn.get("card_id")))
    return _render("case.html", status, session=session, case=detail, claimed_by=claimed_by,
                   history=history, audit=console.audit.for_case(tid),
                   terminal={k: (features or {}).get(k) for k in TERMINAL_RISK},
                   features=sorted((features or {}).items()),
                   mine=claimed_by is None and case.verdict is None)


@router.get("/case/{tid}/export.json")
async def export_case(request: Request, tid: str) -> JSONResponse:
    _session(request, page=False)
    console = _console(request)
    case = _case_or_404(request, tid)
    detail = case_detail(case, console.store.clock(), console.store.features_of(case))
    detail["card_history"] = console.store.card_history(str(case.txn.get("card_id")))
    detail["audit"] = console.audit.for_case(tid)
    return JSONResponse(detail, headers={
        "Content-Disposition": f"attachment; filename=case-{quote(tid)}.json"})


@router.post("/case/{tid}/release")
async def release(request: Request, tid: str) -> dict[str, Any]:
    session = _session(request, page=False)
    _check_post(request, session)
    _case_or_404(request, tid)
    _console(request).store.release(tid, session.name)
    return {"released": True}


@router.post("/case/{tid}/verdict")
async def verdict(request: Request, tid: str) -> dict[str, Any]:
    """``{"verdict": fraud|genuine|unsure, "note": "..."}`` with header ``X-CSRF-Token``."""
    session = _session(request, page=False)
    _check_post(request, session)
    body = decode_object(await read_body(request))
    choice, note = body.get("verdict"), body.get("note") or ""
    if choice not in VERDICTS:
        raise ApiError(422, "verdict", f"must be one of {', '.join(VERDICTS)}")
    if not isinstance(note, str) or len(note) > 500:
        raise ApiError(422, "note", "must be text of at most 500 characters")
    console = _console(request)
    case = _case_or_404(request, tid)
    try:
        console.store.reserve(tid, session.name)  # refuse before anything is produced
    except Claimed as exc:
        raise ApiError(409, "transaction_id", str(exc)) from None
    at = _now()
    label = None
    try:
        if choice in ("fraud", "genuine"):
            label = {"transaction_id": tid, "card_id": str(case.txn.get("card_id")),
                     "label": choice, "source": "analyst", "label_time": at,
                     "actor": session.name, **({"note": note} if note else {})}
            try:
                await asyncio.to_thread(request.app.state.deps.send_label, label)
            except FraudstreamError as exc:
                raise ApiError(503, "labels", f"verdict not recorded: {exc}") from None
        console.store.decide(tid, session.name, choice, note, at)
    except Claimed as exc:
        raise ApiError(409, "transaction_id", str(exc)) from None
    finally:
        console.store.unreserve(tid)
    console.audit.write({"time": at, "transaction_id": tid, "actor": session.name,
                         "verdict": choice, "note": note or None, "label": label is not None,
                         "score": case.score, "decision": case.alert.get("decision")})
    following = console.store.next_open(case.seq) or console.store.next_open()
    return {"verdict": choice, "actor": session.name, "label": label,
            "next": f"/console/case/{quote(following.transaction_id)}" if following
            else "/console"}


@router.get("/audit")
async def audit_page(request: Request) -> HTMLResponse:
    session = _session(request)
    entries = list(reversed(_console(request).audit.recent))[:200]
    return _render("audit.html", session=session, entries=entries)
