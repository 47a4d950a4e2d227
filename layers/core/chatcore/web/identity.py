"""Who is calling: the ``sub`` claim of the Cognito-authorized request.

In Lambda, API Gateway's Cognito authorizer has verified the token and the Lambda Web Adapter
forwards the request context (claims included) in the ``x-amzn-request-context`` header. A route
without the authorizer (the events route: a browser resumes it with a resume token instead) checks
the bearer token itself against the user pool of ``COGNITO_ISSUER`` (``chatcore.web.cognito``).
Locally, the claims of the bearer JWT are read WITHOUT checking its signature; that is only
allowed with ALLOW_UNSIGNED_JWT=1 and refused inside Lambda.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping

from starlette.requests import Request

from chatcore.config import get_settings
from chatcore.errors import Unauthorized


def _claims_from_request_context(raw: str) -> dict:
    try:
        context = json.loads(raw)
    except ValueError as e:
        raise Unauthorized("the request context is not valid JSON") from e
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    if not isinstance(authorizer, dict):
        return {}
    # REST API Cognito authorizer: authorizer.claims; HTTP API JWT authorizer: authorizer.jwt.claims
    jwt = authorizer.get("jwt")
    claims = authorizer.get("claims") or (jwt.get("claims") if isinstance(jwt, dict) else None) or {}
    return claims if isinstance(claims, dict) else {}


def _claims_from_unsigned_jwt(authorization: str) -> dict:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected 'Authorization: Bearer <JWT>'")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise Unauthorized("the bearer token is not a JWT")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError as e:
        raise Unauthorized("the bearer token's payload is not base64url JSON") from e
    return claims if isinstance(claims, dict) else {}


def subject_from_headers(headers: Mapping[str, str], *, allow_unsigned_jwt: bool, issuer: str | None = None) -> str:
    """The caller's ``sub``: of the authorizer's claims, else of the bearer token checked against the
    user pool of ``issuer``, else (locally) of an unsigned bearer token; raises Unauthorized when
    there is none. With ``issuer`` it may fetch the pool's keys (blocking)."""
    context = headers.get("x-amzn-request-context")
    claims: dict = {}
    if context:
        claims = _claims_from_request_context(context)
    if not claims and issuer and headers.get("authorization"):
        from chatcore.web import cognito

        claims = cognito.claims_of(headers["authorization"], issuer)
    elif not context and allow_unsigned_jwt and headers.get("authorization"):
        claims = _claims_from_unsigned_jwt(headers["authorization"])
    sub = claims.get("sub")
    # isprintable() also refuses NUL and lone surrogates, which Postgres cannot store.
    if not isinstance(sub, str) or not sub.strip() or len(sub) > 255 or not sub.strip().isprintable():
        raise Unauthorized("no authenticated user (missing 'sub' claim)")
    return sub.strip()


def unsigned_jwt(claims: dict) -> str:
    """A JWT with ``alg: none`` carrying ``claims``: for local development and tests only."""
    enc = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(claims)}.dev"


_known_subs: set[str] = set()


def _ensure_user(sub: str) -> None:
    from chatcore import db
    from chatcore.store import sessions

    with db.connection() as conn:
        sessions.ensure_user(conn, sub)
    _known_subs.add(sub)


async def caller(request: Request) -> str:
    """The caller's ``sub`` (also a FastAPI dependency); 401 problem when there is none.

    The users row is created the first time a ``sub`` is seen (remembered per process).
    """
    settings = get_settings()
    if settings.cognito_issuer:  # the token is checked here, and the pool's keys may be fetched first
        sub = await asyncio.to_thread(subject_from_headers, request.headers,
                                      allow_unsigned_jwt=settings.allow_unsigned_jwt, issuer=settings.cognito_issuer)
    else:
        sub = subject_from_headers(request.headers, allow_unsigned_jwt=settings.allow_unsigned_jwt)
    if sub not in _known_subs:
        await asyncio.to_thread(_ensure_user, sub)
    return sub
