"""A user's memories, the user's memory switch, and a session's snapshot of them (``memory_snapshot``).

Every statement that reads or changes a memory is scoped by the user's id (or by the caller's
``sub``, resolved to it in the same statement): a memory of someone else is simply not found, and
no statement here takes another user's id from anything but the caller or the running turn.
Changes lock the user's row first (``lock_user``), so one user's writes (two turns at once, a turn
and the app) are serialised and the limits are checked against what is stored.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

USER_OF_SUB = "SELECT id, memory_enabled FROM users WHERE sub = %(sub)s"

LOCK_USER = "SELECT id, memory_enabled, memory_version FROM users WHERE id = %(user_id)s FOR UPDATE"
LOCK_USER_OF_SUB = "SELECT id, memory_enabled, memory_version FROM users WHERE sub = %(sub)s FOR UPDATE"

MEMORY_COLUMNS = "m.id, m.text, m.fact_key, m.session_id, m.run_id, m.created_at, m.updated_at"

USER_MEMORIES = f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.user_id = %(user_id)s ORDER BY m.id"

# One of the user's memories by its id, or by the last 8 characters of its id (how the model names it).
FIND_MEMORY = f"""
SELECT {MEMORY_COLUMNS} FROM memories m
WHERE m.user_id = %(user_id)s AND (m.id = %(id)s OR (%(id)s::uuid IS NULL AND right(m.id::text, 8) = %(short)s))
"""

INSERT_MEMORY = f"""
INSERT INTO memories AS m (id, user_id, text, fact_key, session_id, run_id)
VALUES (%(id)s, %(user_id)s, %(text)s, %(fact_key)s, %(session_id)s, %(run_id)s)
RETURNING {MEMORY_COLUMNS}
"""

UPDATE_MEMORY = f"""
UPDATE memories m SET text = %(text)s, fact_key = %(fact_key)s, updated_at = now()
WHERE m.user_id = %(user_id)s AND m.id = %(id)s
RETURNING {MEMORY_COLUMNS}
"""

DELETE_MEMORY = f"DELETE FROM memories m WHERE m.user_id = %(user_id)s AND m.id = %(id)s RETURNING {MEMORY_COLUMNS}"

# Only while each is still as read (its updated_at): a consolidation replaces what it read, or nothing.
DELETE_AS_READ = """
DELETE FROM memories m USING unnest(%(ids)s::uuid[], %(updated)s::timestamptz[]) AS r(id, updated_at)
WHERE m.user_id = %(user_id)s AND m.id = r.id AND m.updated_at = r.updated_at
RETURNING m.id
"""

DELETE_ALL = "DELETE FROM memories WHERE user_id = %(user_id)s"

# A change that sessions under way must see (an edit, a deletion, the switch): their snapshot is
# rendered anew at their next turn.
BUMP_VERSION = "UPDATE users SET memory_version = memory_version + 1 WHERE id = %(user_id)s"

SET_ENABLED = """
UPDATE users SET memory_enabled = %(enabled)s,
       memory_version = memory_version + (memory_enabled IS DISTINCT FROM %(enabled)s)::int
WHERE id = %(user_id)s
RETURNING memory_enabled
"""

# A page of the caller's memories, newest first (by id: UUIDv7, the moment it was written).
PAGE_OF_SUB = f"""
SELECT {MEMORY_COLUMNS} FROM memories m
WHERE m.user_id = (SELECT id FROM users WHERE sub = %(sub)s)
  AND (%(before)s::uuid IS NULL OR m.id < %(before)s)
ORDER BY m.id DESC
LIMIT %(limit)s
"""

# Inside a turn's first statement (``store.turns.BEGIN_TURN_READ``, with the session ``s`` and its
# user ``u``): the user's memories, oldest first, only when the session has to render its recall
# (memory on, and no snapshot, or one rendered before the user's last change).
RECALL_NEEDED = "u.memory_enabled AND (s.memory_snapshot IS NULL OR s.memory_version IS DISTINCT FROM u.memory_version)"
MEMORIES_TO_RECALL = f"""LATERAL (
    SELECT jsonb_agg(jsonb_build_array(m.id, m.text) ORDER BY m.id) AS memories
    FROM memories m WHERE m.user_id = u.id AND {RECALL_NEEDED}
)"""

SAVE_SNAPSHOT = """
UPDATE sessions SET memory_snapshot = %(snapshot)s, memory_version = %(version)s WHERE id = %(session_id)s
"""


def user_of_sub(conn: psycopg.Connection, sub: str) -> dict[str, Any] | None:
    """The caller's user (``id``, ``memory_enabled``), None when ``sub`` was never seen."""
    return conn.execute(USER_OF_SUB, {"sub": sub}).fetchone()


def lock_user(conn: psycopg.Connection, *, user_id: UUID | None = None, sub: str | None = None) -> dict[str, Any] | None:
    """Lock the user's row (by id, or the caller's by ``sub``) until the transaction ends: ``id``,
    ``memory_enabled``, ``memory_version``; None when there is no such user."""
    if user_id is not None:
        return conn.execute(LOCK_USER, {"user_id": user_id}).fetchone()
    return conn.execute(LOCK_USER_OF_SUB, {"sub": sub}).fetchone()


def user_memories(conn: psycopg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    """Every memory of the user, oldest first."""
    return conn.execute(USER_MEMORIES, {"user_id": user_id}).fetchall()


def find_memory(conn: psycopg.Connection, user_id: UUID, *, memory_id: UUID | None = None,
                short: str | None = None) -> list[dict[str, Any]]:
    """The user's memory with ``memory_id``, or those whose id ends with ``short`` (8 characters)."""
    return conn.execute(FIND_MEMORY, {"user_id": user_id, "id": memory_id, "short": short}).fetchall()


def insert_memory(conn: psycopg.Connection, *, memory_id: UUID, user_id: UUID, text: str, fact_key: str,
                  session_id: UUID | None, run_id: UUID | None) -> dict[str, Any]:
    return conn.execute(INSERT_MEMORY, {"id": memory_id, "user_id": user_id, "text": text, "fact_key": fact_key,
                                        "session_id": session_id, "run_id": run_id}).fetchone()


def update_memory(conn: psycopg.Connection, user_id: UUID, memory_id: UUID, *, text: str,
                  fact_key: str) -> dict[str, Any] | None:
    return conn.execute(UPDATE_MEMORY, {"user_id": user_id, "id": memory_id, "text": text,
                                        "fact_key": fact_key}).fetchone()


def delete_memory(conn: psycopg.Connection, user_id: UUID, memory_id: UUID) -> dict[str, Any] | None:
    return conn.execute(DELETE_MEMORY, {"user_id": user_id, "id": memory_id}).fetchone()


def delete_as_read(conn: psycopg.Connection, user_id: UUID, read: list[dict[str, Any]]) -> int:
    """Delete the user's memories ``read`` (``id``, ``updated_at``) that are still as read; how many."""
    return len(conn.execute(DELETE_AS_READ, {"user_id": user_id, "ids": [m["id"] for m in read],
                                             "updated": [m["updated_at"] for m in read]}).fetchall())


def delete_all(conn: psycopg.Connection, user_id: UUID) -> int:
    return conn.execute(DELETE_ALL, {"user_id": user_id}).rowcount


def bump_version(conn: psycopg.Connection, user_id: UUID) -> None:
    conn.execute(BUMP_VERSION, {"user_id": user_id})


def set_enabled(conn: psycopg.Connection, user_id: UUID, enabled: bool) -> bool:
    return conn.execute(SET_ENABLED, {"user_id": user_id, "enabled": enabled}).fetchone()["memory_enabled"]


def page_of_sub(conn: psycopg.Connection, sub: str, *, before: UUID | None, limit: int) -> list[dict[str, Any]]:
    """The caller's memories newest first, those older than ``before`` (a page's last id)."""
    return conn.execute(PAGE_OF_SUB, {"sub": sub, "before": before, "limit": limit}).fetchall()


def save_snapshot(conn: psycopg.Connection, session_id: UUID, snapshot: str, version: int) -> None:
    """The session's recall as rendered, at the user's ``memory_version``."""
    conn.execute(SAVE_SNAPSHOT, {"session_id": session_id, "snapshot": snapshot, "version": version})
