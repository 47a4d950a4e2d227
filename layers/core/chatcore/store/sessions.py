"""Users, sessions and their messages, as the mobile API reads and changes them.

Every statement that reads or changes a session is scoped by the caller's ``sub``: a session of
someone else is simply not found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from uuid6 import uuid7

from chatcore.errors import NotFound
from chatcore.store.turns import running_turn
from chatcore.store.plans import KEEP_TURN_STARTS
from chatcore.store.usage import ARCHIVE_SESSION_USAGE

UPSERT_USER = """
INSERT INTO users (id, sub) VALUES (%(id)s, %(sub)s)
ON CONFLICT (sub) DO UPDATE SET sub = EXCLUDED.sub
RETURNING id
"""

INSERT_SESSION = """
INSERT INTO sessions (id, user_id, agent_id, team_id, title)
VALUES (%(id)s, %(user_id)s, %(agent_id)s, %(team_id)s, %(title)s)
RETURNING id, user_id, agent_id, team_id, title, created_at
"""

ACTIVE_AGENT_ID = "SELECT id FROM agents WHERE name = %(name)s AND active"
ACTIVE_TEAM_ID = "SELECT id FROM teams WHERE name = %(name)s AND active"

SESSION_COLUMNS = """
s.id, s.title, s.created_at, s.updated_at, a.name AS agent, t.name AS team
"""

LIST_SESSIONS = f"""
SELECT {SESSION_COLUMNS}
FROM sessions s JOIN users u ON u.id = s.user_id
LEFT JOIN agents a ON a.id = s.agent_id LEFT JOIN teams t ON t.id = s.team_id
WHERE u.sub = %(sub)s
  AND (%(after_updated)s::timestamptz IS NULL OR (s.updated_at, s.id) < (%(after_updated)s, %(after_id)s::uuid))
ORDER BY s.updated_at DESC, s.id DESC
LIMIT %(limit)s
"""

GET_SESSION = f"""
SELECT {SESSION_COLUMNS},
       (SELECT count(*) FROM runs r WHERE r.session_id = s.id AND r.parent_run_id IS NULL) AS turns,
       (SELECT count(*) FROM runs r WHERE r.session_id = s.id AND r.parent_run_id IS NULL
            AND r.status = 'running') AS running_turns,
       (SELECT coalesce(sum(cost_usd), 0) FROM runs r WHERE r.session_id = s.id AND r.parent_run_id IS NULL) AS cost_usd,
       (SELECT coalesce(sum(cost_in_rands), 0) FROM runs r WHERE r.session_id = s.id AND r.parent_run_id IS NULL) AS cost_in_rands
FROM sessions s JOIN users u ON u.id = s.user_id
LEFT JOIN agents a ON a.id = s.agent_id LEFT JOIN teams t ON t.id = s.team_id
WHERE u.sub = %(sub)s AND s.id = %(session_id)s
"""

RENAME_SESSION = """
UPDATE sessions s SET title = %(title)s, updated_at = now()
FROM users u WHERE u.id = s.user_id AND u.sub = %(sub)s AND s.id = %(session_id)s
RETURNING s.id
"""

OWN_SESSION = """
SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
WHERE u.sub = %(sub)s AND s.id = %(session_id)s
"""

LOCK_OWN_SESSION = OWN_SESSION + "FOR UPDATE OF s\n"

# Any user's session (the account's deletion and the retention period act for no caller), and for
# the retention period only while it is still inactive.
SESSION_EXISTS = """SELECT id FROM sessions WHERE id = %(session_id)s
  AND (%(inactive_before)s::timestamptz IS NULL OR updated_at < %(inactive_before)s)"""
LOCK_SESSION = SESSION_EXISTS + " FOR UPDATE"

# The moment before which a session is inactive, by the database's clock (one for the whole run).
CUTOFF = "SELECT now() - make_interval(days => %(days)s) AS cutoff"

# Inactive sessions oldest first after the keyset (updated_at, id), with their running turn if any
# (index sessions_activity).
INACTIVE_SESSIONS = f"""
SELECT s.id, s.updated_at, running.id AS running_id, running.stale AS running_stale
FROM sessions s LEFT JOIN {running_turn("s.id")} running ON true
WHERE s.updated_at < %(cutoff)s
  AND (%(after_updated)s::timestamptz IS NULL OR (s.updated_at, s.id) > (%(after_updated)s, %(after_id)s::uuid))
ORDER BY s.updated_at, s.id
LIMIT %(limit)s
"""



DELETE_SESSION = "DELETE FROM sessions WHERE id = %(session_id)s"

LIST_MESSAGES_ASC = """
SELECT ce.id, ce.run_id, r.parent_run_id, r.status AS run_status, ce.role, ce.agent_name, ce.model_id,
       ce.message_parts, ce.input_tokens, ce.output_tokens, ce.reasoning_tokens, ce.cache_read_tokens, ce.cache_write_tokens,
       ce.cost_usd, ce.cost_in_rands, ce.created_at
FROM chat_events ce JOIN runs r ON r.id = ce.run_id
WHERE ce.session_id = %(session_id)s AND (%(after)s::uuid IS NULL OR ce.id > %(after)s)
  AND (%(members)s OR r.parent_run_id IS NULL)
  -- the calls that summarise older turns or consolidate the user's memories are not the conversation
  AND coalesce(r.agent_name, '') NOT IN ('compaction', 'memory')
ORDER BY ce.id ASC
LIMIT %(limit)s
"""

# The images and documents of the session's stored messages that may be the S3 objects ``keys``: those
# naming one by reference, and every image kept inline (its key is its content's: the caller computes it).
SESSION_IMAGES = """
SELECT img.value AS image
FROM chat_events ce
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(ce.message_parts->'images') = 'array' THEN ce.message_parts->'images' ELSE '[]'::jsonb END
    || CASE WHEN jsonb_typeof(ce.message_parts->'files') = 'array' THEN ce.message_parts->'files' ELSE '[]'::jsonb END
) AS img
WHERE ce.session_id = %(session_id)s
  AND (img.value->'media_reference'->>'storage_key' = ANY(%(keys)s)
       OR (img.value->'media_reference'->>'storage_key' IS NULL AND jsonb_typeof(img.value->'content') = 'string'))
"""

LIST_MESSAGES_DESC = LIST_MESSAGES_ASC.replace("ce.id > %(after)s", "ce.id < %(after)s").replace(
    "ORDER BY ce.id ASC", "ORDER BY ce.id DESC")


# Every stored message of a session with what its model call was billed (the demo's printout).
STORED_CALLS = """
SELECT ce.id, ce.role, ce.agent_name, ce.model_id, ce.input_tokens, ce.output_tokens,
       ce.cache_read_tokens, ce.cache_write_tokens, ce.cost_usd, ce.cost_in_rands, ce.fx_rate,
       length(ce.message_parts::text) AS bytes, ce.message_parts, r.status
FROM chat_events ce JOIN runs r ON r.id = ce.run_id
WHERE ce.session_id = %(session_id)s ORDER BY ce.id
"""


def ensure_user(conn: psycopg.Connection, sub: str) -> UUID:
    """The users row for ``sub``, created the first time it is seen."""
    return conn.execute(UPSERT_USER, {"id": uuid7(), "sub": sub}).fetchone()["id"]


def create_session(conn: psycopg.Connection, sub: str, *, agent: str | None, team: str | None,
                   title: str | None = None) -> dict[str, Any]:
    """A new session of the user with ``sub``, talking to the named agent or team."""
    with conn.transaction():
        user_id = ensure_user(conn, sub)
        agent_id = team_id = None
        if agent is not None:
            row = conn.execute(ACTIVE_AGENT_ID, {"name": agent}).fetchone()
            if row is None:
                raise NotFound(f"no agent named {agent!r}")
            agent_id = row["id"]
        if team is not None:
            row = conn.execute(ACTIVE_TEAM_ID, {"name": team}).fetchone()
            if row is None:
                raise NotFound(f"no team named {team!r}")
            team_id = row["id"]
        return conn.execute(INSERT_SESSION, {
            "id": uuid7(), "user_id": user_id, "agent_id": agent_id, "team_id": team_id, "title": title,
        }).fetchone()


def list_sessions(conn: psycopg.Connection, sub: str, *, after_updated: Any, after_id: UUID | None,
                  limit: int) -> list[dict[str, Any]]:
    return conn.execute(LIST_SESSIONS, {"sub": sub, "after_updated": after_updated, "after_id": after_id,
                                        "limit": limit}).fetchall()


def get_session(conn: psycopg.Connection, sub: str, session_id: UUID) -> dict[str, Any] | None:
    """The session with its turn count, running turns and cost; None if not the caller's."""
    return conn.execute(GET_SESSION, {"sub": sub, "session_id": session_id}).fetchone()


def rename_session(conn: psycopg.Connection, sub: str, session_id: UUID, title: str) -> bool:
    """False when the session is not the caller's."""
    return conn.execute(RENAME_SESSION, {"sub": sub, "session_id": session_id,
                                         "title": title}).fetchone() is not None


def owns_session(conn: psycopg.Connection, sub: str, session_id: UUID, *, lock: bool = False) -> bool:
    """Whether the session is the caller's; with ``lock``, its row is locked until the transaction ends."""
    sql = LOCK_OWN_SESSION if lock else OWN_SESSION
    return conn.execute(sql, {"sub": sub, "session_id": session_id}).fetchone() is not None


def session_exists(conn: psycopg.Connection, session_id: UUID, *, lock: bool = False,
                   inactive_before: datetime | None = None) -> bool:
    """Whether the session exists, whoever it belongs to (and with ``inactive_before``, was last
    active before then); with ``lock``, its row is locked."""
    return conn.execute(LOCK_SESSION if lock else SESSION_EXISTS, {
        "session_id": session_id, "inactive_before": inactive_before}).fetchone() is not None


def inactivity_cutoff(conn: psycopg.Connection, days: int) -> datetime:
    """The moment before which a session is inactive, by the database's clock."""
    return conn.execute(CUTOFF, {"days": days}).fetchone()["cutoff"]


def inactive_sessions(conn: psycopg.Connection, cutoff: datetime, *, after: tuple[datetime, UUID] | None,
                      stale_seconds: int, limit: int) -> list[dict[str, Any]]:
    """Sessions last active before ``cutoff``, oldest first after the keyset ``after``, with their
    running turn (``running_id``, ``running_stale``)."""
    return conn.execute(INACTIVE_SESSIONS, {
        "cutoff": cutoff, "stale_seconds": stale_seconds, "limit": limit,
        "after_updated": after[0] if after else None, "after_id": after[1] if after else None,
    }).fetchall()


def delete_session(conn: psycopg.Connection, session_id: UUID) -> None:
    """Keep the session's usage (deleted_session_usage) and its last minute's turn starts (the minute's
    rate limit, ``store.plans.KEEP_TURN_STARTS``), then delete it with its runs and messages."""
    conn.execute(ARCHIVE_SESSION_USAGE, {"session_id": session_id})
    conn.execute(KEEP_TURN_STARTS, {"session_id": session_id})
    conn.execute(DELETE_SESSION, {"session_id": session_id})


def list_messages(conn: psycopg.Connection, session_id: UUID, *, after: UUID | None, members: bool, limit: int,
                  descending: bool = False) -> list[dict[str, Any]]:
    sql = LIST_MESSAGES_DESC if descending else LIST_MESSAGES_ASC
    return conn.execute(sql, {"session_id": session_id, "after": after, "members": members,
                              "limit": limit}).fetchall()


def stored_calls(conn: psycopg.Connection, session_id: UUID) -> list[dict[str, Any]]:
    """Every message of the session, oldest first, with its tokens, cost, rate, size and run status."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(STORED_CALLS, {"session_id": session_id}).fetchall()


def session_images(conn: psycopg.Connection, session_id: UUID, keys: list[str]) -> list[dict[str, Any]]:
    """The images and documents (agno's dicts) of the session's stored messages that may be the objects ``keys``
    (see SESSION_IMAGES); none when the session is gone."""
    return [row["image"] for row in conn.execute(SESSION_IMAGES, {"session_id": session_id,
                                                                  "keys": list(keys)}).fetchall()]
