"""HTTP plumbing shared by the API and the console: one error shape, a real body limit.

Every 4xx the API sends has the shape ``{"detail": "field: message; ...", "errors":
[{"field", "message"}]}``, so a caller (and the schemathesis suite) can always tell which
field was at fault: ``body`` for the body as a whole, a header name (``X-API-Key``), a path
or query parameter, or a field of the JSON body.

:class:`BodyLimit` enforces ``FRAUDSTREAM_MAX_MESSAGE_BYTES`` on every request body *while
it is read*: a declared ``Content-Length`` over the limit is refused before one byte is
read, and a chunked (or lying) body is cut off as soon as the running count passes the
limit. Routes read their bodies themselves, after authentication (FastAPI would read a
declared body parameter before running any dependency, key checks included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.errors import InvalidInput

BODY = "body"
MAX_ERRORS = 10  # listed in ``errors`` and in ``detail`` alike


class ApiError(Exception):
    """An HTTP error with the fields at fault (rendered by :func:`error_payload`)."""

    def __init__(self, status: int, field: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.status = status
        self.errors = [(field, message)]
        self.headers = headers


def error_payload(errors: Iterable[tuple[str, str]]) -> dict[str, Any]:
    listed = [{"field": f or BODY, "message": m} for f, m in errors][:MAX_ERRORS]
    return {"detail": "; ".join(f"{e['field']}: {e['message']}" for e in listed),
            "errors": listed}


def field_of(reason: str, candidates: Iterable[str]) -> str:
    """The first candidate field named in ``reason`` (as a word), else ``body``.

    The shared validators (``parse_transaction``, ``parse_label``) report reasons as text
    naming the field; this keeps their wording theirs while the API lists the field.
    """
    head = re.match(r"^(?:invalid [a-z]+: )?([A-Za-z_][A-Za-z0-9_]*)(?:\.[\w.]+)?: ", reason)
    names = list(candidates)
    if head and head.group(1) in names:
        return head.group(1)
    for name in names:
        if re.search(rf"\b{re.escape(name)}\b", reason):
            return name
    return BODY


def invalid_input_error(exc: InvalidInput, candidates: Iterable[str]) -> ApiError:
    """422 naming the field (413 for a body over the limit)."""
    if isinstance(exc, FieldError):
        return ApiError(422, exc.field, exc.message)
    reason = exc.reason
    if reason.startswith("payload too large"):
        return ApiError(413, BODY, reason)
    field = field_of(reason, candidates)
    own = re.match(rf"^(?:invalid [a-z]+: )?{re.escape(field)}: (.+)$", reason, re.DOTALL)
    return ApiError(422, field, own.group(1) if own else reason)


class FieldError(InvalidInput):
    """Invalid input whose field is known where it is raised (API-side checks)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a body passes the limit while being read."""


async def read_body(request: Request) -> bytes:
    """The whole body (the limit is enforced by :class:`BodyLimit` as it streams in)."""
    try:
        return await request.body()
    except BodyTooLarge as exc:
        raise ApiError(413, BODY, str(exc)) from None


def decode_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from ``raw``; InvalidInput naming ``body`` otherwise (no NaN/Infinity)."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(raw, parse_constant=no_constants)
    except (ValueError, RecursionError) as exc:
        raise FieldError(BODY, f"malformed JSON: {str(exc)[:120]}") from None
    if not isinstance(data, dict):
        raise FieldError(BODY, f"expected a JSON object, got {type(data).__name__}")
    return data


class BodyLimit:
    """Pure ASGI middleware: no request body larger than ``max_bytes`` gets in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_error(send, 413, f"payload too large: Content-Length "
                              f"{declared[:20].decode('latin-1')} > {limit} bytes")
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"payload too large: more than {limit} bytes")
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except BodyTooLarge as exc:
            if not started:
                await _send_error(send, 413, str(exc))


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps(error_payload([(BODY, message)])).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
