"""Model operations over the API: show, promote, rollback, canary start/step/abort/status.

The routes call :class:`RegistryOps`, which calls the same functions as ``fraudstream
models`` (:mod:`models.rollout`, :mod:`models.rollout_canary`), so a promotion over HTTP
checks and records what one from the command line does; the audit actor is the name of
the caller's key. Tests give the app a fake :class:`ModelOps`.

Errors: bad input is 422 naming the field (strict types, no coercion); an unknown version
404 (``version``); an operation the registry's state refuses (a version that cannot be
served, no previous holder to roll back to, a canary already running or none running) 409
naming the field at fault; a registry or Kafka that fails 503.

No ``from __future__ import annotations`` here: the route signatures use dependency
aliases built inside :func:`add_model_routes`, which FastAPI must evaluate in place.
"""

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal, Protocol, TypeVar

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra.errors import ConfigurationError, ModelError
from infra.settings import Settings
from scoring.api_http import ApiError, decode_object, read_body
from scoring.api_schemas import body_schema

VERSION = r"^[0-9]{1,12}$"
Body = TypeVar("Body", bound=BaseModel)


class RollbackRequest(BaseModel):
    """Move an alias back to its previous holder (from the audit log)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    alias: Literal["champion", "challenger", "shadow"] = "champion"
    reason: str = Field(default="", max_length=500)


class CanaryStartRequest(BaseModel):
    """Start a canary of ``version`` at ``share`` of the cards."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: str = Field(pattern=VERSION)
    share: float = Field(default=0.01, gt=0.0, lt=1.0)
    reason: str = Field(default="", max_length=500)


class CanaryActionRequest(BaseModel):
    """Step (judge the gates) or abort the running canary."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(default="", max_length=500)


REQUEST_FIELDS = (*RollbackRequest.model_fields, *CanaryStartRequest.model_fields)


class ModelOps(Protocol):
    """What the API does with registered models (:class:`RegistryOps` in production)."""

    def versions(self) -> set[str]: ...
    def show(self, version: str) -> dict[str, Any]: ...
    def promote(self, version: str, alias: str, actor: str, reason: str) -> dict[str, Any]: ...
    def rollback(self, alias: str, actor: str, reason: str) -> dict[str, Any]: ...
    def canary_status(self) -> dict[str, Any]: ...
    def canary_start(self, version: str, share: float, actor: str, reason: str
                     ) -> dict[str, Any]: ...
    def canary_step(self, actor: str) -> dict[str, Any]: ...
    def canary_abort(self, actor: str, reason: str) -> dict[str, Any]: ...


class RegistryOps:
    """:class:`ModelOps` on the MLflow registry, the audit log and the live topics."""

    def __init__(self, settings: Settings, registry: Any) -> None:
        self.settings, self.registry = settings, registry

    def versions(self) -> set[str]:
        return {v.version for v in self.registry.list_versions()}

    def show(self, version: str) -> dict[str, Any]:
        from models.rollout import show_model

        return show_model(self.registry, version)

    def promote(self, version: str, alias: str, actor: str, reason: str) -> dict[str, Any]:
        from models.rollout import promote

        return promote(self.registry, version, alias, actor=actor, reason=reason)

    def rollback(self, alias: str, actor: str, reason: str) -> dict[str, Any]:
        from models.rollout import rollback

        return rollback(self.registry, alias, actor=actor, reason=reason)

    def canary_status(self) -> dict[str, Any]:
        from models.rollout_canary import status

        return asdict(status(self.registry))

    def canary_start(self, version: str, share: float, actor: str, reason: str
                     ) -> dict[str, Any]:
        from models.rollout_canary import start_canary

        return start_canary(self.registry, version, actor=actor, share=share, reason=reason)

    def canary_step(self, actor: str) -> dict[str, Any]:
        from models.canary import canary_policy_from
        from models.live_evidence import live_decisions
        from models.reports import arm_evidence
        from models.rollout_canary import step_canary

        frame = live_decisions(self.settings, self.registry)
        decision, records = step_canary(
            self.registry, arm_evidence(frame, "champion"), arm_evidence(frame, "canary"),
            actor=actor, policy=canary_policy_from(self.settings))
        return {**asdict(decision), "audit": records}

    def canary_abort(self, actor: str, reason: str) -> dict[str, Any]:
        from models.rollout_canary import abort_canary

        return abort_canary(self.registry, actor=actor, reason=reason)


def parse(model: type[Body], raw: bytes) -> Body:
    """A strict request body; errors as the app's 422 naming each field."""
    data = decode_object(raw) if raw.strip() else {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ("body", ".".join(str(p) for p in e["loc"]) or "body"),
                   "msg": e["msg"]} for e in exc.errors()]
        raise RequestValidationError(errors) from None


async def call(field: str, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run a registry operation off the event loop; a refusal is a 409 naming ``field``."""
    try:
        return await asyncio.to_thread(fn, *args)
    except ConfigurationError as exc:
        raise ApiError(422, field, str(exc)) from None
    except ModelError as exc:
        raise ApiError(409, field, str(exc)) from None


def add_model_routes(app: FastAPI, writer: Callable[..., Any], reader: Callable[..., Any],
                     get_ops: Callable[..., Any], errors: dict[int | str, dict[str, Any]]
                     ) -> None:
    """The models routes (except ``GET /v1/models``, which lists versions and models in
    use). ``writer`` gives the key's name, ``reader`` guards reads, ``get_ops`` the ops."""
    Actor = Annotated[str, Depends(writer)]
    Ops = Annotated[ModelOps, Depends(get_ops)]
    read = [Depends(reader)]
    Version = Annotated[str, Path(pattern=VERSION)]

    async def known(ops: ModelOps, version: str) -> None:
        if version not in await asyncio.to_thread(ops.versions):
            raise ApiError(404, "version", f"no version {version!r}")

    @app.get("/v1/models/canary", tags=["models"], dependencies=read, responses=errors)
    async def canary_status(ops: Ops) -> dict[str, Any]:
        """The running canary's version and share, and the champion."""
        return await call("canary", ops.canary_status)

    @app.post("/v1/models/canary", tags=["models"], responses=errors,
              openapi_extra=body_schema(CanaryStartRequest))
    async def canary_start(request: Request, actor: Actor, ops: Ops) -> dict[str, Any]:
        """Start a canary (checked servable first); audited as the key."""
        body = parse(CanaryStartRequest, await read_body(request))
        await known(ops, body.version)
        return await call("version", ops.canary_start, body.version, body.share, actor,
                          body.reason)

    @app.post("/v1/models/canary/step", tags=["models"], responses=errors,
              openapi_extra=body_schema(CanaryActionRequest))
    async def canary_step(request: Request, actor: Actor, ops: Ops) -> dict[str, Any]:
        """Judge the gates on the live evidence since the last step: step, hold, complete or
        roll back (``action``); every gate's outcome in ``checks``."""
        parse(CanaryActionRequest, await read_body(request))
        return await call("canary", ops.canary_step, actor)

    @app.post("/v1/models/canary/abort", tags=["models"], responses=errors,
              openapi_extra=body_schema(CanaryActionRequest))
    async def canary_abort(request: Request, actor: Actor, ops: Ops) -> dict[str, Any]:
        """Stop the canary now: all traffic back to the champion."""
        body = parse(CanaryActionRequest, await read_body(request))
        return await call("canary", ops.canary_abort, actor, body.reason)

    @app.post("/v1/models/rollback", tags=["models"], responses=errors,
              openapi_extra=body_schema(RollbackRequest))
    async def rollback(request: Request, actor: Actor, ops: Ops) -> dict[str, Any]:
        """Move an alias back to its previous holder from the audit log (checked servable)."""
        body = parse(RollbackRequest, await read_body(request))
        return await call("alias", ops.rollback, body.alias, actor, body.reason)

    @app.get("/v1/models/{version}", tags=["models"], dependencies=read, responses=errors)
    async def show(version: Version, ops: Ops) -> dict[str, Any]:
        """One version: metrics, windows, lineage, slices, model card, alias history."""
        await known(ops, version)
        return await call("version", ops.show, version)
