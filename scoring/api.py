"""The REST API (FastAPI): synchronous scoring, labels, models, health and metrics.

``create_app(settings, deps=None)`` is the factory; clients live in :class:`ApiDeps`, opened
and closed by the app's ``lifespan`` (nothing global). Endpoints (details: docs/api.md):

- ``POST /v1/score`` (key) — a Transaction in, decision out; same core, model, rule, policy
  as the stream; also published to ``transactions`` when ``api_publish_transactions``.
- ``POST /v1/labels`` (key) — an analyst/customer verdict, produced to ``labels``.
- ``GET /v1/models`` — registered versions, aliases, metrics, the online model.
- ``POST /v1/models/{version}/alias`` (key) — move an alias (audited).
- ``GET /healthz`` (process up), ``GET /readyz`` (Kafka, Redis, model), ``GET /metrics``.

Errors: one handler maps :class:`~infra.errors.FraudstreamError` to HTTP (invalid input
422, missing model or service 503); request validation errors are 422 listing the fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.errors import FraudstreamError, InvalidInput
from infra.settings import Settings
from scoring.api_deps import ApiDeps, build_deps
from scoring.api_schemas import AliasRequest, LabelIn, LabelOut, ScoreOut
from scoring.metrics import reason_class
from scoring.state_store import AlreadyProcessed
from streams.schema import Transaction

log = logging.getLogger("fraudstream.scoring.api")

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="required by write and admin endpoints")


async def get_deps(request: Request) -> ApiDeps:
    """The app's :class:`ApiDeps` (set by its lifespan); async: no thread-pool hop."""
    deps: ApiDeps = request.app.state.deps
    return deps


Deps = Annotated[ApiDeps, Depends(get_deps)]


def _status_for(exc: FraudstreamError) -> int:
    if isinstance(exc, AlreadyProcessed):
        return 409
    return 422 if isinstance(exc, InvalidInput) else 503


def create_app(settings: Settings, deps: ApiDeps | None = None, *,
               freeze_gc: bool = False) -> FastAPI:
    """A new app; ``deps`` (tests) or real dependencies built from ``settings``.

    ``freeze_gc`` (the server process, :func:`run_api`; not tests, it is process-wide):
    once the champion and the online snapshot are loaded, collect and ``gc.freeze()``, so the
    ~350k start-up objects (MLflow, pandas, XGBoost, FastAPI) are never scanned again. Without
    it, a full collection every 10-20 s at 300 req/s stopped the event loop for 0.1-0.5 s,
    the REST p99 (``bench.api_bench``, docs/api.md); with it, one takes ~5 ms.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        d = deps or build_deps(settings)
        app.state.deps = d
        await asyncio.to_thread(d.open)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        task = asyncio.create_task(_refresh_loop(d, max(0.5, settings.online_reload_seconds)))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.to_thread(d.close)

    app = FastAPI(title="fraudstream", version="1", lifespan=lifespan,
                  description="Real-time card fraud scoring. Write endpoints need X-API-Key.")

    # Dependencies of /v1/score are ``async def`` on purpose (also get_deps): a plain
    # ``def`` dependency runs in anyio's thread pool. Three hops per request cost 0.35 of
    # the server's 1.75 ms CPU per request (bench.api_bench) and, with other requests in
    # flight, waits for the GIL.
    async def require_key(key: Annotated[str | None, Depends(API_KEY_HEADER)]) -> None:
        expected = settings.api_key
        if expected is None:
            raise HTTPException(503, "no API key configured on the server (FRAUDSTREAM_API_KEY)")
        if key is None or not hmac.compare_digest(key.encode(),
                                                  expected.get_secret_value().encode()):
            raise HTTPException(401, "missing or wrong X-API-Key",
                                headers={"WWW-Authenticate": "APIKey"})

    async def limit_size(request: Request) -> None:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > settings.max_message_bytes:
            raise HTTPException(413, f"payload too large: {size} bytes > "
                                     f"{settings.max_message_bytes}")

    write = [Depends(require_key)]

    @app.exception_handler(FraudstreamError)
    async def _fraudstream_error(request: Request, exc: FraudstreamError) -> JSONResponse:
        reason = exc.reason if isinstance(exc, InvalidInput) else str(exc)
        request.app.state.deps.metrics.errors.labels(component="api",
                                                     reason=reason_class(reason)).inc()
        return JSONResponse({"detail": reason}, status_code=_status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body",
                   "message": str(e.get("msg", ""))} for e in exc.errors()]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return JSONResponse({"detail": f"invalid request: {summary}", "errors": errors},
                            status_code=422)

    app.add_middleware(ObserveRequests)

    @app.post("/v1/score", response_model=ScoreOut, dependencies=[*write, Depends(limit_size)],
              responses={401: {}, 409: {}, 413: {}, 422: {}, 503: {}}, tags=["scoring"])
    async def score(txn: Transaction, d: Deps) -> dict[str, Any]:
        """Score one transaction synchronously (see docs/api.md for the feature path).

        Runs on the event loop: ~1 ms of CPU plus one local Redis round trip, cheaper than
        a thread-pool hop; scale out with more uvicorn workers (one per core).
        """
        return d.score(txn)

    @app.post("/v1/labels", response_model=LabelOut, status_code=202, dependencies=write,
              responses={401: {}, 422: {}, 503: {}}, tags=["labels"])
    def labels(label: LabelIn, d: Deps) -> dict[str, Any]:
        """Record a verdict: produced to topic ``labels`` (keyed by card) and acknowledged."""
        record = label.to_record()
        d.send_label(record)
        return {"accepted": True, "topic": settings.topic_labels, "label": record}

    @app.get("/v1/models", tags=["models"])
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

    @app.post("/v1/models/{version}/alias", dependencies=write, tags=["models"],
              responses={401: {}, 404: {}, 422: {}})
    def move_alias(version: str, body: AliasRequest, d: Deps) -> dict[str, Any]:
        """Point an alias (champion, challenger, shadow) at a version; written to the audit."""
        if d.registry is None:
            raise HTTPException(503, "no model registry configured")
        known = {v.version for v in d.registry.list_versions()}
        if version not in known:
            raise HTTPException(404, f"{settings.model_name} has no version {version!r}")
        return d.registry.set_alias(settings.model_name, body.alias, version,
                                    actor=body.actor, reason=body.reason)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz(d: Deps) -> JSONResponse:
        checks = d.readiness()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"])
    async def metrics(d: Deps) -> Response:
        return Response(d.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


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
