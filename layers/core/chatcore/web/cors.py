"""Browsers (CORS): the origins in ``CORS_ALLOWED_ORIGINS`` may call every route of every HTTP
function; no origin may by default (a mobile app needs none).

For an allowed ``Origin``:

- a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) of any route is answered here,
  204, before any route or identity is looked at (a preflight carries no token);
- every other response, problems, streams and 500s included, names the origin
  (``Access-Control-Allow-Origin``, ``Vary: Origin``) and lets the page read ``X-Run-Id``,
  ``Retry-After`` and the rate limit headers (``Access-Control-Expose-Headers``).

A preflight from any other origin is a 403 problem (``origin-not-allowed``) without those headers, so
the browser refuses the request; a plain request from one is served without them (its answer stays
unreadable to the page). ``Access-Control-Allow-Credentials`` is never sent: the API authenticates
with the ``Authorization`` header (or a resume token, ``chatcore.web.resume``), never a cookie, so
a browser needs no credentials mode, and ``*`` (any origin) cannot open anything a cookie would.
API Gateway's own answers (its 401, 403, 429) get the same headers from the template's
``GatewayResponses``; its preflights are routed to the API function, which answers them here.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response

from chatcore.config import get_settings
from chatcore.errors import InternalError, OriginNotAllowed, ProblemError

ANY = "*"
# What a page may send and read (a preflight is cached by the browser for MAX_AGE seconds).
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type, Accept, Last-Event-ID"
EXPOSE_HEADERS = "X-Run-Id, Retry-After, RateLimit, RateLimit-Policy"
MAX_AGE = "600"


def allowed_origins(setting: str) -> frozenset[str]:
    """The origins ``CORS_ALLOWED_ORIGINS`` names (lower case, no trailing slash); ``*`` for any."""
    return frozenset(o.strip().rstrip("/").lower() for o in setting.split(",") if o.strip())


def allows(origins: frozenset[str], origin: str | None) -> bool:
    return bool(origin) and (ANY in origins or origin.lower() in origins)


def preflight_headers(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": MAX_AGE, "Vary": "Origin"}


class Cors:
    """The ASGI middleware of ``CORS_ALLOWED_ORIGINS`` (read per request: a test may change it).

    It is the outermost middleware of every app (``chatcore.web.app.MIDDLEWARE``), but Starlette's own
    500 handler sits outside it: an error that escapes the app is answered here (the internal-error
    problem, with the headers) and raised on, so that Starlette still logs it and sends nothing else."""

    def __init__(self, app, *, problem: Callable[[ProblemError], Response]) -> None:
        self.app = app
        self.problem = problem  # chatcore.web.app.problem_response

    async def __call__(self, scope, receive, send) -> None:
        origins = allowed_origins(get_settings().cors_allowed_origins) if scope["type"] == "http" else frozenset()
        if not origins:
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
            return await self._preflight(origins, origin, scope, receive, send)
        allowed = allows(origins, origin)
        started = False

        async def with_headers(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                response_headers = MutableHeaders(scope=message)
                response_headers.add_vary_header("Origin")
                if allowed:
                    response_headers["Access-Control-Allow-Origin"] = origin
                    response_headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception:
            if not started:
                response = self.problem(InternalError("an internal error; the request may or may not have been done"))
                await response(scope, receive, with_headers)
            raise

    async def _preflight(self, origins: frozenset[str], origin: str, scope, receive, send) -> None:
        if allows(origins, origin):
            response = Response(status_code=204, headers=preflight_headers(origin))
        else:
            response = self.problem(OriginNotAllowed(f"the origin {origin} may not call this API "
                                                            "(CORS_ALLOWED_ORIGINS)"))
            response.headers.add_vary_header("Origin")
        await response(scope, receive, send)
