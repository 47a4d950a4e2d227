"""A browser's resume of a turn's stream: the resume token.

A browser's ``EventSource`` cannot send an ``Authorization`` header, and it reconnects on its own
(with ``Last-Event-ID``) to the URL it was opened with. So the page asks for a resume token with its
own token (``POST /sessions/{id}/turns/{run_id}/resume-token``) and opens
``GET /sessions/{id}/turns/{run_id}/events?token=<it>``: the token is the caller's identity on that
route only, for that one turn, for ``RESUME_TOKEN_SECONDS`` (a stream opened before it expires runs
to its end; a reconnect after is a 401, and the page asks for another token).

Why a stored token and not a signed one: nothing to keep secret or rotate (no signing key in the
settings or in SSM), and a token dies with its account or its session. The cost is a row per token
(its SHA-256 only: the token itself is never stored, logged or sent anywhere but to its owner), one
insert to make it and one indexed read to use it. Refused tokens (unknown, tampered with, expired,
another turn's or another user's) are all the same 401, which says nothing of the turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from typing import Any
from uuid import UUID

from starlette.requests import Request

from chatcore import db
from chatcore.config import get_settings
from chatcore.errors import NotFound, Unauthorized
from chatcore.store import resume_tokens
from chatcore.web.app import path_uuid
from chatcore.web.identity import caller

# The query parameter of GET .../events that carries a token (and no other route reads).
TOKEN_PARAMETER = "token"
_TOKEN_IN_A_QUERY = re.compile(rf"([?&]{TOKEN_PARAMETER}=)[^&\s\"]*")


def redacted(text: str) -> str:
    """``text`` (a URL, a request line) with any resume token's value replaced."""
    return _TOKEN_IN_A_QUERY.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """A resume token rides in a URL's query, which access logs print: they print it redacted. Put on
    uvicorn's access log (bin/serve's; in Lambda uvicorn runs with ``--no-access-log``, and API
    Gateway's access log format names no query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redacted(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redacted(record.msg)
        return True


logging.getLogger("uvicorn.access").addFilter(RedactTokens())


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue(conn, sub: str, session_id: UUID, run_id: UUID) -> dict[str, Any]:
    """A new resume token for the caller's turn (the members of ``ResumeTokenOut``); ``NotFound``
    for anyone else's turn, or an unknown one."""
    seconds = get_settings().resume_token_seconds
    token = secrets.token_urlsafe(32)
    expires_at = resume_tokens.issue(conn, sub, session_id, run_id, _hash(token), seconds)
    if expires_at is None:
        raise NotFound("no such turn")
    return {"token": token, "expires_in": seconds, "expires_at": expires_at}


def _subject(token: str, session_id: UUID, run_id: UUID) -> str | None:
    with db.connection() as conn:
        return resume_tokens.subject(conn, _hash(token), session_id, run_id)


async def events_caller(request: Request) -> str:
    """Who reads a turn's events: the resume token's owner when the request carries one (it is the
    identity, whatever else is sent), else the caller of the ``Authorization`` header."""
    token = request.query_params.get(TOKEN_PARAMETER)
    if token is None:
        return await caller(request)
    session_id, run_id = path_uuid(request, "session_id"), path_uuid(request, "run_id")
    sub = await asyncio.to_thread(_subject, token, session_id, run_id) if 0 < len(token) <= 128 else None
    if sub is None:
        raise Unauthorized("the resume token is unknown, has expired, or is for another turn: ask for a new one "
                           "(POST /sessions/{session_id}/turns/{run_id}/resume-token)")
    return sub
