"""GET /sessions/{id}/messages: a session's history as the app renders it (``chatcore.wire.messages``)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from chatcore.config import get_settings
from chatcore.errors import NotFound
from chatcore.store import sessions
from chatcore.web import cursors
from chatcore.web.dependencies import Caller, Db
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.wire import messages
from chatcore.wire.schemas import MessagePage, PageSize

router = APIRouter(tags=["sessions"])


@router.get("/sessions/{session_id}/messages", response_model=MessagePage, responses=PROBLEM_RESPONSES)
def list_messages(
    session_id: UUID,
    sub: Caller,
    conn: Db,
    limit: Annotated[PageSize, Query()] = 50,
    cursor: cursors.Cursor = None,
    order: Annotated[Literal["asc", "desc"], Query(description="asc: oldest first (default)")] = "asc",
    members: Annotated[bool, Query(description="include team members' messages")] = True,
    include: Annotated[list[Literal["thinking"]] | None, Query(description=(
        "thinking: each assistant message's thinking (an agent that thinks), in its `thinking`"))] = None,
) -> MessagePage:
    """What a chat screen renders, oldest first by default; images as short-lived presigned URLs."""
    [after_id] = cursors.decode(cursor, UUID) or [None]
    if not sessions.owns_session(conn, sub, session_id):
        raise NotFound("no such session")
    rows = sessions.list_messages(conn, session_id, after=after_id, members=members, limit=limit + 1,
                                  descending=order == "desc")
    expires_in = get_settings().presigned_url_seconds
    thinking = "thinking" in (include or ())
    return MessagePage(items=[messages.app_message(r, session_id, expires_in, thinking=thinking) for r in rows[:limit]],
                       next_cursor=cursors.encode(rows[limit - 1]["id"]) if len(rows) > limit else None)
