"""Reminders (``set_reminder``, once the user approved it): written once per approved call, listed by
their user (GET /me/reminders), exported, deleted with the account."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from uuid6 import uuid7

# A continuation tried twice (the same run and tool call) writes the reminder once.
INSERT_REMINDER = """
INSERT INTO reminders (id, user_id, text, due_at, time_zone, session_id, run_id, tool_call_id)
VALUES (%(id)s, %(user_id)s, %(text)s, %(due_at)s, %(time_zone)s, %(session_id)s, %(run_id)s, %(tool_call_id)s)
ON CONFLICT ON CONSTRAINT reminders_one_per_call DO NOTHING
"""

PAGE_OF_SUB = """
SELECT rm.id, rm.text, rm.due_at, rm.time_zone, rm.session_id, rm.run_id, rm.created_at
FROM reminders rm JOIN users u ON u.id = rm.user_id AND u.sub = %(sub)s
WHERE %(before)s::uuid IS NULL OR rm.id < %(before)s
ORDER BY rm.id DESC LIMIT %(limit)s
"""

OF_USER = """
SELECT id, text, due_at, time_zone, session_id, run_id, tool_call_id, created_at
FROM reminders WHERE user_id = %(user_id)s ORDER BY id
"""

DELETE_OF_USER = "DELETE FROM reminders WHERE user_id = %(user_id)s"


def insert_reminder(conn: psycopg.Connection, *, user_id: UUID, text: str, due_at: datetime, time_zone: str,
                    session_id: UUID | None, run_id: UUID | None, tool_call_id: str | None) -> None:
    conn.execute(INSERT_REMINDER, {"id": uuid7(), "user_id": user_id, "text": text, "due_at": due_at,
                                   "time_zone": time_zone, "session_id": session_id, "run_id": run_id,
                                   "tool_call_id": tool_call_id})


def page_of_sub(conn: psycopg.Connection, sub: str, *, before: UUID | None, limit: int) -> list[dict[str, Any]]:
    """The caller's reminders, newest first, those older than ``before`` (a page's last id)."""
    return conn.execute(PAGE_OF_SUB, {"sub": sub, "before": before, "limit": limit}).fetchall()


def of_user(conn: psycopg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    """Every reminder of a user, oldest first (the export)."""
    return conn.execute(OF_USER, {"user_id": user_id}).fetchall()


def delete_of_user(conn: psycopg.Connection, user_id: UUID) -> int:
    return conn.execute(DELETE_OF_USER, {"user_id": user_id}).rowcount
