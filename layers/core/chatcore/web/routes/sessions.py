"""Sessions: start one, list them, read, rename and delete one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import psycopg
from fastapi import APIRouter, Query, Response

from chatcore.account import deletion
from chatcore.errors import NotFound
from chatcore.config import get_settings
from chatcore.store import approvals, sessions
from chatcore.turns.outcome import PENDING_FIELDS
from chatcore.web import cursors
from chatcore.web.dependencies import Caller, Db
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.web.openapi import documented_problem
from chatcore.wire.schemas import (
    CreateSession, Money, PageSize, PendingCallOut, RenameSession, SessionDetail, SessionOut, SessionPage,
    SessionSummary, TurnPausedOut,
)

router = APIRouter(tags=["sessions"])


@router.post("/sessions", status_code=201, response_model=SessionOut, responses=PROBLEM_RESPONSES)
def create_session(body: CreateSession, sub: Caller, conn: Db) -> SessionOut:
    """Start a session with exactly one agent or one team."""
    row = sessions.create_session(conn, sub, agent=body.agent, team=body.team, title=body.title)
    return SessionOut(id=row["id"], agent=body.agent, team=body.team, title=row["title"], created_at=row["created_at"])


@router.get("/sessions", response_model=SessionPage, responses=PROBLEM_RESPONSES)
def list_sessions(
    sub: Caller,
    conn: Db,
    limit: Annotated[PageSize, Query()] = 20,
    cursor: cursors.Cursor = None,
) -> SessionPage:
    """The caller's sessions, most recently active first."""
    after_updated, after_id = cursors.decode(cursor, datetime.fromisoformat, UUID) or (None, None)
    rows = sessions.list_sessions(conn, sub, after_updated=after_updated, after_id=after_id, limit=limit + 1)
    next_cursor = cursors.encode(rows[limit - 1]["updated_at"].isoformat(), rows[limit - 1]["id"]) \
        if len(rows) > limit else None
    return SessionPage(items=[SessionSummary(**r) for r in rows[:limit]], next_cursor=next_cursor)


def session_detail(conn: psycopg.Connection, sub: str, session_id: UUID) -> SessionDetail:
    row = sessions.get_session(conn, sub, session_id)
    if row is None:
        raise NotFound("no such session")
    paused = approvals.paused_of_session(conn, session_id, get_settings().approval_ttl)
    return SessionDetail(id=row["id"], agent=row["agent"], team=row["team"], title=row["title"],
                         created_at=row["created_at"], updated_at=row["updated_at"], turns=row["turns"],
                         turn_running=row["running_turns"] > 0,
                         turn_paused=None if paused is None else TurnPausedOut(
                             run_id=paused["run_id"], paused_at=paused["paused_at"], expires_at=paused["expires_at"],
                             pending=[PendingCallOut(**{k: v for k, v in p.items() if k in PENDING_FIELDS})
                                      for p in paused["pending"] or []]),
                         cost=Money(usd=row["cost_usd"], zar=row["cost_in_rands"]))


@router.get("/sessions/{session_id}", response_model=SessionDetail, responses=PROBLEM_RESPONSES)
def get_session(session_id: UUID, sub: Caller, conn: Db) -> SessionDetail:
    """One of the caller's sessions, with its number of turns and total cost."""
    return session_detail(conn, sub, session_id)


@router.patch("/sessions/{session_id}", response_model=SessionDetail, responses=PROBLEM_RESPONSES)
def rename_session(session_id: UUID, body: RenameSession, sub: Caller, conn: Db) -> SessionDetail:
    """Rename a session."""
    with conn.transaction():
        if not sessions.rename_session(conn, sub, session_id, body.title):
            raise NotFound("no such session")
    return session_detail(conn, sub, session_id)


@router.delete("/sessions/{session_id}", status_code=204, responses={
    **PROBLEM_RESPONSES, 409: documented_problem("a turn is running in the session (turn-in-progress)"),
    503: documented_problem("S3 could not delete the session's images (storage-unavailable); the session is "
                            "kept, try again", retry_after=True)})
def delete_session(session_id: UUID, sub: Caller) -> Response:
    """Delete a session: its messages, runs and images. Nothing of it remains reachable; what it cost
    is kept, with no content (usage and budgets still count it)."""
    deletion.delete_session(session_id, sub=sub)
    return Response(status_code=204)
