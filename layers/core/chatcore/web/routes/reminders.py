"""The caller's reminders: GET /me/reminders (newest first, paged by ``cursor``). A reminder is set by
an agent's ``set_reminder`` once the user approved it (``chatcore.turns.approvals``)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from chatcore.store import reminders
from chatcore.web import cursors
from chatcore.web.dependencies import Caller, Db
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.wire.schemas import PageSize, ReminderOut, ReminderPage

router = APIRouter(tags=["reminders"])


def reminder_out(row: dict[str, Any]) -> ReminderOut:
    return ReminderOut(id=row["id"], text=row["text"], due_at=row["due_at"], time_zone=row["time_zone"],
                       session_id=row["session_id"], run_id=row["run_id"], created_at=row["created_at"])


@router.get("/me/reminders", response_model=ReminderPage, responses=PROBLEM_RESPONSES)
def list_reminders(
    sub: Caller,
    conn: Db,
    limit: Annotated[PageSize, Query()] = 20,
    cursor: cursors.Cursor = None,
) -> ReminderPage:
    """The reminders the assistant set for the caller (each approved by the caller), newest first."""
    (before,) = cursors.decode(cursor, UUID) or (None,)
    rows = reminders.page_of_sub(conn, sub, before=before, limit=limit + 1)
    next_cursor = cursors.encode(rows[limit - 1]["id"]) if len(rows) > limit else None
    return ReminderPage(items=[reminder_out(r) for r in rows[:limit]], next_cursor=next_cursor)
