"""Exports of a user's data (POST and GET /me/export): the export's row and its life (building,
ready until it expires, failed), and the account's rows the export job reads, in keyset pages.

Every read of an account's rows is scoped by the owner's id: nothing of anyone else is read.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from chatcore.store.sessions import ensure_user

EXPORT_COLUMNS = "e.id, e.status, e.key, e.size, e.contents, e.error, e.requested_at, e.finished_at, e.expires_at"

# The export a new request is answered with: one being built, else a ready one made within the
# cooldown (and not expired).
CURRENT_EXPORT = f"""
SELECT {EXPORT_COLUMNS} FROM exports e
WHERE e.user_id = %(user_id)s
  AND ((e.status = 'building' AND e.requested_at > now() - make_interval(secs => %(building_seconds)s))
       OR (e.status = 'ready' AND e.finished_at > now() - make_interval(secs => %(cooldown_seconds)s)
           AND (e.expires_at IS NULL OR e.expires_at > now())))
ORDER BY e.status = 'building' DESC, e.requested_at DESC LIMIT 1
"""

INSERT_EXPORT = f"""
INSERT INTO exports AS e (id, user_id, status) VALUES (%(id)s, %(user_id)s, 'building')
RETURNING {EXPORT_COLUMNS}
"""

GET_EXPORT = f"""
SELECT {EXPORT_COLUMNS} FROM exports e JOIN users u ON u.id = e.user_id
WHERE u.sub = %(sub)s AND e.id = %(id)s
"""

# The caller's latest export that still exists (a ready one until it expires).
LATEST_EXPORT = f"""
SELECT {EXPORT_COLUMNS} FROM exports e JOIN users u ON u.id = e.user_id
WHERE u.sub = %(sub)s AND (e.expires_at IS NULL OR e.expires_at > now())
ORDER BY e.requested_at DESC LIMIT 1
"""

# The export (by id: this is the job, acting for no caller) and its owner.
EXPORT_JOB = """
SELECT e.id, e.user_id, e.status, u.sub, u.created_at AS user_created_at, u.monthly_budget_zar, u.memory_enabled,
       EXISTS (SELECT 1 FROM account_deletions d WHERE d.user_id = e.user_id) AS deleting
FROM exports e JOIN users u ON u.id = e.user_id
WHERE e.id = %(id)s
"""

EXPORT_STATE = "SELECT status, key FROM exports WHERE id = %(id)s"

# Ready only while still building, and never once the account's deletion has begun (it detaches
# the account from its sub and then deletes its exports).
MARK_READY = """
UPDATE exports e SET status = 'ready', key = %(key)s, size = %(size)s, contents = %(contents)s, error = NULL,
       finished_at = now(), expires_at = now() + make_interval(secs => %(ttl)s)
WHERE e.id = %(id)s AND e.status = 'building'
  AND NOT EXISTS (SELECT 1 FROM account_deletions d WHERE d.user_id = e.user_id)
RETURNING e.id
"""

MARK_FAILED = """
UPDATE exports SET status = 'failed', error = %(error)s, finished_at = now()
WHERE id = %(id)s AND status = 'building'
"""

EXPIRED_EXPORTS = """
SELECT id, key FROM exports WHERE status = 'ready' AND expires_at <= now() ORDER BY expires_at LIMIT %(limit)s
"""
DELETE_EXPIRED = "DELETE FROM exports WHERE id = ANY(%(ids)s) AND status = 'ready' AND expires_at <= now()"

FAIL_LOST = """
UPDATE exports SET status = 'failed', error = 'lost (its job stopped)', finished_at = now()
WHERE status = 'building' AND requested_at < now() - make_interval(secs => %(building_seconds)s)
RETURNING id
"""

OLD_FAILED = """
SELECT id, key FROM exports
WHERE status = 'failed' AND coalesce(finished_at, requested_at) < now() - interval '1 day'
ORDER BY id LIMIT %(limit)s
"""
DELETE_FAILED = "DELETE FROM exports WHERE id = ANY(%(ids)s) AND status = 'failed'"

# ---- the account's rows, in pages ordered by id (``after``: the last id of the previous page)

ACCOUNT_SESSIONS = """
SELECT s.id, a.name AS agent, t.name AS team, s.title, s.created_at, s.updated_at,
       tr.turns, tr.cost_usd, tr.cost_in_rands,
       ss.summary, ss.turns AS summary_turns, ss.through_message_id AS summary_through_message_id,
       ss.updated_at AS summary_updated_at
FROM sessions s
LEFT JOIN agents a ON a.id = s.agent_id
LEFT JOIN teams t ON t.id = s.team_id
LEFT JOIN session_summaries ss ON ss.session_id = s.id
LEFT JOIN LATERAL (
    SELECT count(*) AS turns, coalesce(sum(r.cost_usd), 0) AS cost_usd,
           coalesce(sum(r.cost_in_rands), 0) AS cost_in_rands
    FROM runs r WHERE r.session_id = s.id AND r.parent_run_id IS NULL
) tr ON true
WHERE s.user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR s.id > %(after)s)
ORDER BY s.id
LIMIT %(limit)s
"""

# A session's runs: its turns, their team members' runs and the summaries' (compaction) runs.
SESSION_RUNS = """
SELECT r.id, r.parent_run_id, r.agent_name, r.status, r.client_turn_id, r.error_code, r.error_message,
       r.client_disconnected, r.cancel_requested_at, r.input_tokens, r.output_tokens, r.cache_read_tokens,
       r.cache_write_tokens, r.cost_usd, r.cost_in_rands, r.started_at, r.finished_at, r.paused_at, r.resumed_at
FROM runs r JOIN sessions s ON s.id = r.session_id
WHERE r.session_id = %(session_id)s AND s.user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR r.id > %(after)s)
ORDER BY r.id
LIMIT %(limit)s
"""

ACCOUNT_UPLOADS = """
SELECT id, key, mime_type, size, created_at, expires_at, consumed_at, consumed_run_id
FROM uploads
WHERE user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s)
ORDER BY id
LIMIT %(limit)s
"""

DELETED_SESSIONS_USAGE = """
SELECT id, session_id, deleted_at, day, kind, name, model_id, input_tokens, output_tokens, cache_read_tokens,
       cache_write_tokens, cost_usd, cost_in_rands, turns, failed_turns
FROM deleted_session_usage
WHERE user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s)
ORDER BY id
LIMIT %(limit)s
"""

ACCOUNT_MEMORIES = """
SELECT id, text, session_id, run_id, created_at, updated_at
FROM memories
WHERE user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s)
ORDER BY id
LIMIT %(limit)s
"""

ACCOUNT_REMINDERS = """
SELECT id, text, due_at, time_zone, session_id, run_id, tool_call_id, created_at
FROM reminders
WHERE user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s)
ORDER BY id
LIMIT %(limit)s
"""

# What an export holds of an account, by part: each a keyset-paged statement of the owner's rows.
ACCOUNT_PARTS = {"sessions": ACCOUNT_SESSIONS, "runs": SESSION_RUNS, "uploads": ACCOUNT_UPLOADS,
                 "deleted_sessions_usage": DELETED_SESSIONS_USAGE, "memories": ACCOUNT_MEMORIES,
                 "reminders": ACCOUNT_REMINDERS}


def start_export(conn: psycopg.Connection, sub: str, *, building_seconds: int,
                 cooldown_seconds: int) -> tuple[dict[str, Any], bool]:
    """In the caller's transaction: the caller's export being built (for less than
    ``building_seconds``), else a ready one made less than ``cooldown_seconds`` ago, else a new one;
    and whether it is new (then its job must be started)."""
    user_id = ensure_user(conn, sub)
    row = conn.execute(CURRENT_EXPORT, {"user_id": user_id, "building_seconds": building_seconds,
                                        "cooldown_seconds": cooldown_seconds}).fetchone()
    if row is not None:
        return row, False
    return conn.execute(INSERT_EXPORT, {"id": uuid7(), "user_id": user_id}).fetchone(), True


def get_export(conn: psycopg.Connection, sub: str, export_id: UUID) -> dict[str, Any] | None:
    return conn.execute(GET_EXPORT, {"sub": sub, "id": export_id}).fetchone()


def latest_export(conn: psycopg.Connection, sub: str) -> dict[str, Any] | None:
    return conn.execute(LATEST_EXPORT, {"sub": sub}).fetchone()


def export_job(conn: psycopg.Connection, export_id: UUID) -> dict[str, Any] | None:
    """The export by id and what the job needs of its owner (sub, created_at, budget, memory switch,
    deleting)."""
    return conn.execute(EXPORT_JOB, {"id": export_id}).fetchone()


def export_state(conn: psycopg.Connection, export_id: UUID) -> dict[str, Any] | None:
    return conn.execute(EXPORT_STATE, {"id": export_id}).fetchone()


def mark_ready(conn: psycopg.Connection, export_id: UUID, *, key: str, size: int, contents: dict[str, int],
               ttl_seconds: int) -> bool:
    """Ready, if it is still building and its account is not being deleted; whether it was."""
    return conn.execute(MARK_READY, {"id": export_id, "key": key, "size": size, "contents": Jsonb(contents),
                                     "ttl": ttl_seconds}).fetchone() is not None


def mark_failed(conn: psycopg.Connection, export_id: UUID, error: str) -> None:
    conn.execute(MARK_FAILED, {"id": export_id, "error": error[:200]})


def account_rows(conn: psycopg.Connection, part: str, user_id: UUID, *, after: UUID | None, limit: int,
                 **params: Any) -> list[dict[str, Any]]:
    """A page of the owner's rows of one part of the export (``ACCOUNT_PARTS``), after ``after``."""
    return conn.execute(ACCOUNT_PARTS[part], {"user_id": user_id, "after": after, "limit": limit, **params}).fetchall()


def fail_lost(conn: psycopg.Connection, building_seconds: int) -> list[UUID]:
    """Mark failed the exports building for longer than ``building_seconds`` (their job died)."""
    return [r["id"] for r in conn.execute(FAIL_LOST, {"building_seconds": building_seconds}).fetchall()]


def expired_exports(conn: psycopg.Connection, limit: int) -> list[dict[str, Any]]:
    return conn.execute(EXPIRED_EXPORTS, {"limit": limit}).fetchall()


def delete_expired(conn: psycopg.Connection, ids: list[UUID]) -> int:
    return conn.execute(DELETE_EXPIRED, {"ids": ids}).rowcount


def old_failed_exports(conn: psycopg.Connection, limit: int) -> list[dict[str, Any]]:
    return conn.execute(OLD_FAILED, {"limit": limit}).fetchall()


def delete_failed(conn: psycopg.Connection, ids: list[UUID]) -> int:
    return conn.execute(DELETE_FAILED, {"ids": ids}).rowcount
