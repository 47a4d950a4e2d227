"""What every HTTP function shares, on Starlette alone: problem+json errors, the body limit, CORS
(``chatcore.web.cors``), the caller's identity, the readiness route and the app factory.

The streaming chat function is a plain Starlette app built here (FastAPI would add ~0.2 s to its
cold start for one route); the API function adds FastAPI on top (``chatcore.web.fastapi_app``).
No agno import.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import BaseRoute, Match, Route

from uuid import UUID

from chatcore.config import get_settings
from chatcore.errors import DatabaseUnavailable, InternalError, InvalidInput, NotFound, PayloadTooLarge, ProblemError
from chatcore.web.cors import Cors

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


def problem_response(err: ProblemError, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = {**(err.headers or {}), **(headers or {})}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    return JSONResponse(err.to_problem(), status_code=err.status, media_type=PROBLEM, headers=headers or None)


class _HttpProblem(ProblemError):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.code = {405: "method-not-allowed", 404: "not-found"}.get(status, f"http-{status}")
        self.title = {405: "Method not allowed", 404: "Not found"}.get(status, "HTTP error")


async def _problem(_: Request, err: ProblemError) -> JSONResponse:
    return problem_response(err)


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str | None:
    """Every method the app serves at the request's path: the router hands a 405 to the first route
    of the path, whose ``Allow`` names that route's methods alone. Each method is tried against the
    app's routes as they match (FastAPI's included routers too)."""
    routes = getattr(request.scope.get("router"), "routes", ())
    allowed = [method for method in HTTP_METHODS
               if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]
    return ", ".join(allowed) or None


async def _http(request: Request, err: HTTPException) -> JSONResponse:
    if err.status_code == 404:
        return problem_response(NotFound("no such route"))
    if err.status_code == 413:
        return problem_response(_too_large(get_settings().max_body_bytes))
    if err.status_code == 400:  # a body that cannot be parsed (invalid UTF-8, an integer too long...)
        return problem_response(InvalidInput(f"the body could not be read: {err.detail}"))
    headers = dict(err.headers or {})
    if err.status_code == 405:  # Allow: every method of the path (not only those of the route that answered)
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return problem_response(_HttpProblem(err.status_code, str(err.detail)), headers=headers)


async def _too_deep(_: Request, err: RecursionError) -> JSONResponse:
    return problem_response(InvalidInput("the body is nested too deeply"))


async def _database_down(_: Request, err: Exception) -> JSONResponse:
    log.warning("database unavailable: %s: %s", err.__class__.__name__, err)
    return problem_response(DatabaseUnavailable("the database could not be reached; nothing was done, try again"))


def _database_errors() -> dict:
    """Postgres unreachable (a restart, a failover, a pool that cannot connect): 503, never a 500."""
    import psycopg
    from psycopg_pool import PoolTimeout

    return {psycopg.OperationalError: _database_down, PoolTimeout: _database_down}


async def _internal(_: Request, err: Exception) -> JSONResponse:
    # Starlette logs the exception after this answer is sent (its ServerErrorMiddleware re-raises it)
    return problem_response(InternalError("an internal error; the request may or may not have been done"))


# ``Exception`` is every error nothing else handles (a bug): a 500 problem, never Starlette's plain text.
EXCEPTION_HANDLERS = {ProblemError: _problem, HTTPException: _http, RecursionError: _too_deep, **_database_errors(),
                      Exception: _internal}


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body is larger than {limit} bytes")


def _is_number(text: str) -> bool:
    """Whether ``text`` is ASCII digits alone (``str.isdigit`` also takes superscripts, which ``int``
    refuses, and other scripts' digits, which no HTTP header or event id holds)."""
    return text.isascii() and text.isdigit()


class LimitBody:
    """Refuse bodies over MAX_BODY_BYTES: at once when Content-Length says so, else (a chunked
    body has none) as soon as the bytes received pass the limit."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = get_settings().max_body_bytes
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not _is_number(length) or int(length) > limit):
            return await problem_response(_too_large(limit))(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # FastAPI's body reader re-raises HTTPException (any other error becomes a 400)
                raise HTTPException(413)
            return message

        await self.app(scope, counting_receive, send)


class XRayTraceId:
    """Behind the Web Adapter the invocation's trace id arrives as a header; Powertools' Tracer
    reads it from the environment, so the app's segments join the Lambda invocation's trace."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            trace = Headers(scope=scope).get("x-amzn-trace-id")
            if trace:
                os.environ["_X_AMZN_TRACE_ID"] = trace
        await self.app(scope, receive, send)


# Cors first: every answer of the others and of the app (problems, streams, 500s) carries its headers.
MIDDLEWARE = [Middleware(Cors, problem=problem_response), Middleware(LimitBody), Middleware(XRayTraceId)]

async def healthz(_: Request) -> JSONResponse:
    """Readiness for the Lambda Web Adapter (AWS_LWA_READINESS_CHECK_PATH); no identity needed."""
    return JSONResponse({"ok": True})


HEALTHZ = Route("/healthz", healthz, methods=["GET"], include_in_schema=False)


def lifespan_running(on_startup: Sequence[Callable[[], None]]):
    """A lifespan that checks the settings and runs ``on_startup`` steps (in a thread) once."""

    @asynccontextmanager
    async def lifespan(_):
        get_settings()  # fail at start-up, not mid-request, when misconfigured
        for step in on_startup:
            await asyncio.to_thread(step)
        yield

    return lifespan


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_stream(frames: AsyncIterator[bytes], run_id: UUID,
                 headers: dict[str, str] | None = None) -> StreamingResponse:
    """A turn's server-sent events; its run id also in ``X-Run-Id`` (to resume or stop it), and
    ``headers`` (a new turn's rate limits)."""
    return StreamingResponse(frames, media_type="text/event-stream",
                             headers={**SSE_HEADERS, **(headers or {}), "X-Run-Id": str(run_id)})


def path_uuid(request: Request, name: str) -> UUID:
    """The path parameter ``name`` as a UUID, or a 422 naming it."""
    try:
        return UUID(request.path_params[name])
    except ValueError as e:
        raise InvalidInput("the request has invalid fields", field=name, errors=[
            {"loc": ["path", name], "msg": f"the {name.replace('_', ' ')} is not a UUID"}]) from e


def resume_point(request: Request, *, query: bool = True) -> int:
    """Where a turn's stream resumes: after the ``Last-Event-ID`` header's event id, else after the
    ``after`` query parameter's (when ``query``), else from the start (0). Anything else is a 422."""
    header = request.headers.get("last-event-id")
    after = request.query_params.get("after") if query else None
    field, value = ("Last-Event-ID", header) if header not in (None, "") else ("after", after)
    if value in (None, ""):
        return 0
    text = value.strip()
    if not _is_number(text) or len(text) > 9:
        raise InvalidInput(f"{field} must be the id of an event of this turn (a number)", field=field)
    return int(text)


def create_web_app(*, routes: Sequence[BaseRoute], on_startup: Sequence[Callable[[], None]] = ()) -> Starlette:
    """A Starlette app of ``routes`` with the shared error handling, body limit and readiness route."""
    return Starlette(routes=[HEALTHZ, *routes], middleware=MIDDLEWARE, exception_handlers=EXCEPTION_HANDLERS,
                     lifespan=lifespan_running(on_startup))
