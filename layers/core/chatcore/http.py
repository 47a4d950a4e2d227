"""What every HTTP function shares: problem+json errors, the body limit, the caller's identity.

No agno import here: the non-agent functions stay lean.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatcore.config import get_settings
from chatcore.errors import InvalidInput, NotFound, PayloadTooLarge, ProblemError
from chatcore.identity import subject_from_headers

PROBLEM = "application/problem+json"
# Lambda refuses synchronous request payloads over 6 MB (API Gateway's own limit is 10 MB); the
# local server applies the same limit so what works locally works deployed.
MAX_BODY_BYTES = 6 * 1024 * 1024

PROBLEM_RESPONSES = {
    status: {"model": None, "description": text, "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status, text in {401: "no authenticated user", 404: "unknown, or someone else's", 413: "body too large",
                         422: "invalid fields"}.items()
}


def problem_response(err: ProblemError) -> JSONResponse:
    return JSONResponse(err.to_problem(), status_code=err.status, media_type=PROBLEM)


class _HttpProblem(ProblemError):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.code = {405: "method-not-allowed", 404: "not-found"}.get(status, f"http-{status}")
        self.title = {405: "Method not allowed", 404: "Not found"}.get(status, "HTTP error")


def install_problem_handlers(app: FastAPI) -> None:
    """Every error leaves as application/problem+json with a stable code."""

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, err: ProblemError) -> JSONResponse:
        return problem_response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        details = err.errors()
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in details]
        if any(e.get("type") == "json_invalid" for e in details):
            return problem_response(InvalidInput("the body is not valid JSON", errors=errors))
        return problem_response(InvalidInput("the request has invalid fields", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 404:
            return problem_response(NotFound("no such route"))
        if err.status_code == 413:
            return problem_response(PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes"))
        return problem_response(_HttpProblem(err.status_code, str(err.detail)))

    app.add_middleware(LimitBody)


class LimitBody:
    """Refuse bodies over MAX_BODY_BYTES: at once when Content-Length says so, else (a chunked
    body has none) as soon as the bytes received pass the limit."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return await problem_response(too_large)(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                # FastAPI's body reader re-raises HTTPException (any other error becomes a 400)
                raise StarletteHTTPException(413)
            return message

        await self.app(scope, counting_receive, send)


_known_subs: set[str] = set()


def _ensure_user(sub: str) -> None:
    from chatcore import db, storage

    with db.connection() as conn:
        storage.ensure_user(conn, sub)
    _known_subs.add(sub)


async def caller(request: Request) -> str:
    """The caller's ``sub`` (FastAPI dependency); 401 problem when there is none.

    The users row is created the first time a ``sub`` is seen (remembered per process).
    """
    sub = subject_from_headers(request.headers, allow_unsigned_jwt=get_settings().allow_unsigned_jwt)
    if sub not in _known_subs:
        await asyncio.to_thread(_ensure_user, sub)
    return sub


def create_app(*, title: str, routers: Sequence[APIRouter], on_startup: Sequence[Callable[[], None]] = ()) -> FastAPI:
    """A FastAPI app of ``routers`` with problem handlers; ``on_startup`` runs once, in a thread."""

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        get_settings()  # fail at start-up, not mid-request, when misconfigured
        for step in on_startup:
            await asyncio.to_thread(step)
        yield

    app = FastAPI(title=title, version="1.0.0", lifespan=lifespan,
                  description="Agent and team conversations for mobile apps. See docs/api.md.")
    install_problem_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        """Readiness for the Lambda Web Adapter (AWS_LWA_READINESS_CHECK_PATH); no identity needed."""
        return {"ok": True}

    @app.middleware("http")
    async def _xray_trace_id(request: Request, call_next):
        # Behind the Web Adapter the invocation's trace id arrives as a header; Powertools' Tracer
        # reads it from the environment, so the app's segments join the Lambda invocation's trace.
        trace = request.headers.get("x-amzn-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        return await call_next(request)

    for router in routers:
        app.include_router(router)
    _add_problem_schema(app)
    return app


def _add_problem_schema(app: FastAPI) -> None:
    """Put the Problem schema (RFC 9457) into the OpenAPI document the error responses refer to."""
    from fastapi.openapi.utils import get_openapi

    from chatcore.api_models import Problem

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
            schema["components"]["securitySchemes"] = {
                "cognito": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                            "description": "a Cognito user pool token; API Gateway checks it"}}
            schema["security"] = [{"cognito": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
