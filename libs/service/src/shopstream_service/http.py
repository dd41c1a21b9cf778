"""The HTTP face every service shares: problem+json errors, health, readiness, metrics,
correlation ids and the optional clock control.

Errors follow RFC 9457 (``application/problem+json``): a validation error names every field
and why; a refused command carries a stable ``code``; nothing is written in either case.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopstream_eventstore import StoreUnavailable

from .auth import Principal, Unauthenticated, require_roles
from .clock import ControlledClock
from .commands import ConcurrencyConflict
from .domain import DomainError

if TYPE_CHECKING:
    from .runtime import ServiceContext


class ProjectionLagging(Exception):
    """A projection did not reach a position in time: HTTP 503 with Retry-After."""

    def __init__(self, position: int, timeout: float) -> None:
        super().__init__(f"read models have not reached position {position} within {timeout:g}s; retry")


PROBLEM = "application/problem+json"
CORRELATION_HEADER = "X-Correlation-ID"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def context_of(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


def correlation_id(request: Request) -> str:
    value: str = request.state.correlation_id
    return value


class CorrelationMiddleware:
    """Binds the request's X-Correlation-ID (or a new one) to its logs and echoes it back.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware pipes every
    response chunk through an in-memory stream, which profiled as over half of the chat service's
    loop when a feed streams to a thousand subscribers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = next((v.decode() for k, v in scope["headers"] if k == _CORRELATION_KEY), "") or str(
            uuid.uuid4()
        )
        scope.setdefault("state", {})["correlation_id"] = value
        encoded = value.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (_CORRELATION_KEY, encoded)]
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=value):
            await self.app(scope, receive, send_with_id)


_CORRELATION_KEY = CORRELATION_HEADER.lower().encode()


def create_app(name: str, context: ServiceContext, routers: list[APIRouter], version: str = "1") -> FastAPI:
    app = FastAPI(title=f"Shopstream {name}", version=version)
    app.state.context = context
    app.state.token_verifier = context.token_verifier

    app.add_middleware(CorrelationMiddleware)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(part) for part in error["loc"]), "reason": error["msg"]}
            for error in exc.errors()
        ]
        fields = ", ".join(error["field"] for error in errors)
        return problem(422, "Invalid request", f"invalid: {fields}", errors=errors)

    @app.exception_handler(DomainError)
    async def refused(_: Request, exc: DomainError) -> JSONResponse:
        extra: dict[str, Any] = {"code": exc.code}
        if exc.field is not None:
            extra["errors"] = [{"field": exc.field, "reason": exc.message}]
        return problem(exc.status, exc.code.replace("_", " ").capitalize(), exc.message, **extra)

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        response = problem(401, "Unauthenticated", str(exc), code="unauthenticated")
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response

    @app.exception_handler(ConcurrencyConflict)
    async def conflict(_: Request, exc: ConcurrencyConflict) -> JSONResponse:
        response = problem(409, "Concurrent modification", str(exc), code="concurrent_modification")
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(ProjectionLagging)
    async def lagging(_: Request, exc: ProjectionLagging) -> JSONResponse:
        response = problem(503, "Read models lagging", str(exc), code="projection_lagging")
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(StoreUnavailable)
    async def unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        response = problem(503, "Store unavailable", str(exc), code="store_unavailable")
        response.headers["Retry-After"] = "5"
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await context.readiness()
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if isinstance(context.clock, ControlledClock):
        app.include_router(_clock_router(context.clock))
    for router in routers:
        app.include_router(router)
    return app


AdminOnly = Annotated[Principal, Depends(require_roles("admin"))]


class ClockAdvance(BaseModel):
    advance_seconds: float = Field(gt=0, le=10 * 365 * 24 * 3600, description="How far to move the clock.")


def _clock_router(clock: ControlledClock) -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.post("/admin/clock")
    async def advance(body: ClockAdvance, _: AdminOnly) -> dict[str, str]:
        now = clock.advance(timedelta(seconds=body.advance_seconds))
        return {"now": now.isoformat()}

    return router
