"""The REST API (FastAPI): synchronous scoring, labels, models, health and metrics.

``create_app(settings, deps=None)`` is the factory; clients live in :class:`ApiDeps`, opened
and closed by the app's ``lifespan`` (nothing global). Endpoints (details: docs/api.md):

- ``POST /v1/score`` (key) — a Transaction in, decision out; same core, model, rule, policy
  as the stream; also published to ``transactions`` when ``api_publish_transactions``.
- ``POST /v1/labels`` (key) — a verdict, produced to ``labels`` with the key's name as actor.
- ``GET /v1/models`` (open unless ``api_open_reads=false``) — versions, aliases, metrics.
- ``POST /v1/models/{version}/alias`` (key) — promote: move an alias once the version is
  known servable, audited under the key's name; ``GET /v1/models/{version}`` (read) — one
  version with lineage, slices, model card; ``POST /v1/models/rollback`` (key);
  ``GET /v1/models/canary`` (read), ``POST /v1/models/canary`` (start),
  ``.../canary/step``, ``.../canary/abort`` (key) — :mod:`scoring.api_models`.
- ``GET /healthz``, ``GET /readyz`` (always open), ``GET /metrics`` (as ``/v1/models``).
- ``/console/...`` — the analyst console (:mod:`scoring.console`), signed in with a key.

Security model: keys are named (:mod:`scoring.api_keys`); the key is checked *before* the
body is read (routes read their own bodies after their dependencies ran); every body is
limited to ``max_message_bytes`` while it streams in (:class:`~scoring.api_http.BodyLimit`);
bad input of any kind is a 4xx naming the field, never a 5xx. A weak or empty key stops the
app at creation (:class:`~infra.errors.ConfigurationError`); no key at all leaves the write
endpoints answering 503, with a warning at start-up, as for open reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.errors import FraudstreamError, InvalidInput
from infra.settings import Settings
from scoring.api_deps import ApiDeps, build_deps
from scoring.api_http import (
    ApiError,
    BodyLimit,
    error_payload,
    invalid_input_error,
    read_body,
)
from scoring.api_keys import KeyStore, load_keys
from scoring.api_models import REQUEST_FIELDS, ModelOps, add_model_routes, call, parse
from scoring.api_schemas import (
    LABEL_FIELDS,
    AliasRequest,
    ErrorOut,
    LabelIn,
    LabelOut,
    ScoreOut,
    body_schema,
    label_record,
)
from scoring.metrics import reason_class
from scoring.state_store import AlreadyProcessed
from streams.schema import Transaction, parse_transaction, transaction_json_schema

log = logging.getLogger("fraudstream.scoring.api")

KEY_HEADER = "X-API-Key"
API_KEY_HEADER = APIKeyHeader(name=KEY_HEADER, auto_error=False,
                              description="a named key (FRAUDSTREAM_API_KEYS)")
FIELDS = (*Transaction.model_fields, *LABEL_FIELDS, *AliasRequest.model_fields,
          *REQUEST_FIELDS)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 404, 409, 413, 422, 503)}


async def get_deps(request: Request) -> ApiDeps:
    """The app's :class:`ApiDeps` (set by its lifespan); async: no thread-pool hop."""
    deps: ApiDeps = request.app.state.deps
    return deps


Deps = Annotated[ApiDeps, Depends(get_deps)]


# Dependencies of /v1/score are ``async def`` on purpose (also get_deps): a plain ``def``
# dependency runs in anyio's thread pool. Three hops per request cost 0.35 of the server's
# 1.75 ms CPU per request (bench.api_bench) and, with other requests in flight, waits for
# the GIL.
async def writer(request: Request,
                 key: Annotated[str | None, Depends(API_KEY_HEADER)]) -> str:
    """The caller's key name; runs before the route reads the body."""
    keys: KeyStore = request.app.state.keys
    if not keys:
        raise ApiError(503, KEY_HEADER, "write endpoints are disabled: no API key is "
                       "configured on the server (FRAUDSTREAM_API_KEYS)")
    name = keys.name_for(key)
    if name is None:
        raise ApiError(401, KEY_HEADER, "missing or unknown API key",
                       headers={"WWW-Authenticate": "APIKey"})
    return name


async def reader(request: Request,
                 key: Annotated[str | None, Depends(API_KEY_HEADER)]) -> str | None:
    """Reads are open unless ``api_open_reads`` is false; then as :func:`writer`."""
    if request.app.state.settings.api_open_reads:
        return None
    return await writer(request, key)


Actor = Annotated[str, Depends(writer)]


async def get_ops(d: Deps) -> ModelOps:
    """The model operations (promote, rollback, canary); 503 without a registry."""
    if d.ops is None:
        raise ApiError(503, "service", "no model registry configured")
    return d.ops


Ops = Annotated[ModelOps, Depends(get_ops)]


def _status_for(exc: FraudstreamError) -> int:
    if isinstance(exc, AlreadyProcessed):
        return 409
    return 422 if isinstance(exc, InvalidInput) else 503


def _transaction_body() -> dict[str, Any]:
    schema = {k: v for k, v in transaction_json_schema().items()
              if k not in ("$schema", "$id", "examples")}
    return body_schema(schema)


def create_app(settings: Settings, deps: ApiDeps | None = None, *,
               freeze_gc: bool = False, console: bool = True,
               console_feed: bool | None = None) -> FastAPI:
    """A new app; ``deps`` (tests) or real dependencies built from ``settings``.

    Raises :class:`~infra.errors.ConfigurationError` for a weak, empty or malformed key.

    ``console`` mounts the analyst console; ``console_feed`` (default: only with real
    dependencies) starts its Kafka reader, so tests with fakes fill its store themselves.

    ``freeze_gc`` (the server process, :func:`run_api`; not tests, it is process-wide):
    once the champion and the online snapshot are loaded, collect and ``gc.freeze()``, so the
    ~350k start-up objects (MLflow, pandas, XGBoost, FastAPI) are never scanned again. Without
    it, a full collection every 10-20 s at 300 req/s stopped the event loop for 0.1-0.5 s,
    the REST p99 (``bench.api_bench``, docs/api.md); with it, one takes ~5 ms.
    """
    keys = load_keys(settings)
    _warn_open(settings, keys)
    hooks: list[Any] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        d = deps or build_deps(settings)
        app.state.deps = d
        await asyncio.to_thread(d.open)
        for start, _ in hooks:
            await start(app)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        task = asyncio.create_task(_refresh_loop(d, max(0.5, settings.online_reload_seconds)))
        try:
            yield
        finally:
            task.cancel()
            for _, stop in reversed(hooks):
                await stop(app)
            await asyncio.to_thread(d.close)

    app = FastAPI(title="fraudstream", version="1", lifespan=lifespan,
                  description="Real-time card fraud scoring. Write endpoints need a named "
                  "X-API-Key; see docs/api.md for which endpoints are open.")
    app.state.keys = keys
    app.state.settings = settings
    read = [Depends(reader)]

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_payload(exc.errors), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(FraudstreamError)
    async def _fraudstream_error(request: Request, exc: FraudstreamError) -> JSONResponse:
        reason = exc.reason if isinstance(exc, InvalidInput) else str(exc)
        deps_ = getattr(request.app.state, "deps", None)
        if deps_ is not None:
            deps_.metrics.errors.labels(component="api", reason=reason_class(reason)).inc()
        if isinstance(exc, AlreadyProcessed):
            return await _api_error(request, ApiError(409, "transaction_id", reason))
        if isinstance(exc, InvalidInput):
            return await _api_error(request, invalid_input_error(exc, FIELDS))
        return JSONResponse(error_payload([("service", reason)]), status_code=_status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [(".".join(str(p) for p in e.get("loc", ())[1:]) or "body",
                   str(e.get("msg", ""))) for e in exc.errors()]
        return JSONResponse(error_payload(errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = {404: "path", 405: "method"}.get(exc.status_code, "request")
        return JSONResponse(error_payload([(field, str(exc.detail))]),
                            status_code=exc.status_code, headers=exc.headers)

    app.add_middleware(BodyLimit, max_bytes=settings.max_message_bytes)
    app.add_middleware(ObserveRequests)

    @app.post("/v1/score", response_model=ScoreOut, responses=ERRORS, tags=["scoring"],
              openapi_extra=_transaction_body())
    async def score(request: Request, actor: Actor, d: Deps) -> dict[str, Any]:
        """Score one transaction synchronously (see docs/api.md for the feature path).

        The body is validated by ``streams.schema.parse_transaction``, as on the stream.
        Runs on the event loop: ~1 ms of CPU plus one local Redis round trip, cheaper than
        a thread-pool hop; scale out with more uvicorn workers (one per core).
        """
        txn = parse_transaction(await read_body(request), settings.max_message_bytes)
        return d.score(txn)

    @app.post("/v1/labels", response_model=LabelOut, status_code=202, responses=ERRORS,
              tags=["labels"], openapi_extra=body_schema(LabelIn))
    async def labels(request: Request, actor: Actor, d: Deps) -> dict[str, Any]:
        """Record a verdict: produced to topic ``labels`` (keyed by card), actor = key name."""
        record = label_record(await read_body(request), actor, settings.max_message_bytes)
        await asyncio.to_thread(d.send_label, record)
        return {"accepted": True, "topic": settings.topic_labels, "label": record}

    @app.get("/v1/models", tags=["models"], dependencies=read, responses=ERRORS)
    def models(d: Deps) -> dict[str, Any]:
        """Registered versions (aliases, test metrics, windows), the versions in use."""
        versions = d.registry.list_versions() if d.registry is not None else []
        aliases = {a: v.version for v in versions for a in v.aliases}
        online = d.online
        return {
            "name": settings.model_name,
            "versions": [_version_dict(v) for v in versions],
            "aliases": aliases,
            "in_use": {"batch": d.model.version if d.model else None,
                       "online": online.version if online else None},
            "online": None if online is None or online.model is None else {
                "version": online.version, "frauds_learned": online.model.frauds,
                "genuine_learned": online.model.genuines, "weight": online.weight},
        }

    @app.post("/v1/models/{version}/alias", tags=["models"], responses=ERRORS,
              openapi_extra=body_schema(AliasRequest))
    async def move_alias(
        request: Request, actor: Actor, ops: Ops,
        version: Annotated[str, Path(pattern=r"^[0-9]{1,12}$")],
    ) -> dict[str, Any]:
        """Promote: point an alias (champion, challenger, shadow) at a version once it is
        known servable; audited as the key (as ``fraudstream models promote``)."""
        body = parse(AliasRequest, await read_body(request))
        if version not in await asyncio.to_thread(ops.versions):
            raise ApiError(404, "version", f"{settings.model_name} has no version {version!r}")
        return await call("version", ops.promote, version, body.alias, actor, body.reason)

    add_model_routes(app, writer, reader, get_ops, ERRORS)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz(d: Deps) -> JSONResponse:
        checks = d.readiness()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], dependencies=read, responses=ERRORS)
    async def metrics(d: Deps) -> Response:
        return Response(d.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    if console:
        from scoring.console import mount_console

        hooks.append(mount_console(app, settings,
                                   feed=deps is None if console_feed is None else console_feed))
    return app


def _warn_open(settings: Settings, keys: KeyStore) -> None:
    where = f"{settings.api_host}:{settings.api_port}"
    if not keys:
        log.warning("NO API KEY CONFIGURED: POST /v1/score, /v1/labels and alias moves answer "
                    "503 and the console cannot be signed in to; set FRAUDSTREAM_API_KEYS")
    else:
        log.info("API keys loaded for: %s", ", ".join(keys.names))
    if settings.api_open_reads:
        log.warning("READS ARE OPEN: GET /v1/models and /metrics answer anyone who reaches "
                    "%s (FRAUDSTREAM_API_OPEN_READS=false requires a key)", where)


class ObserveRequests:
    """Pure ASGI middleware: request count and latency by route template (not raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = ["500"]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics = scope["app"].state.deps.metrics
            metrics.http_requests.labels(scope["method"], route, status[0]).inc()
            metrics.http_latency.labels(scope["method"], route).observe(
                time.perf_counter() - started)


def _version_dict(info: Any) -> dict[str, Any]:
    return {"version": info.version, "aliases": list(info.aliases), "created": info.created,
            "run_id": info.run_id, "feature_service": info.feature_service,
            "metrics": info.metrics, "windows": info.windows}


async def _refresh_loop(deps: ApiDeps, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(deps.refresh)
        except Exception:  # noqa: BLE001 - the loop must outlive one failed refresh
            log.exception("model refresh failed")


def run_api(settings: Settings) -> None:
    """Serve the API with uvicorn on ``api_host:api_port`` until SIGTERM/SIGINT."""
    import uvicorn

    uvicorn.run(create_app(settings, freeze_gc=True), host=settings.api_host,
                port=settings.api_port, log_level="warning", access_log=False)
