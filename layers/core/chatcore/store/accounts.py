"""Accounts as a whole: the rows of an account's deletion and of its exports, and what a deleted
account leaves behind (its usage, with no user).

An account's deletion (``chatcore.account.deletion``) first detaches the users row from its sub
(``DETACH_USER``): from that statement on, every read scoped by the caller's sub finds nothing of
the account, and the same sub starts a new, empty account. The rows are then deleted session by
session; the last step (``delete_user``) keeps the account's usage with no
user and deletes the users row, which deletes everything still referring to it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from uuid6 import uuid7

from chatcore.store.turns import running_turn
from chatcore.store.usage import LOCK_COSTS

# ---- deletions

# The caller's current account, locked: a turn starting now (it locks the same row first) either
# committed its run before this (then it is cancelled below) or finds no user after it.
LOCK_ACCOUNT = "SELECT id FROM users WHERE sub = %(sub)s FOR UPDATE"

INSERT_DELETION = """
INSERT INTO account_deletions (id, user_id, sub) VALUES (%(id)s, %(user_id)s, %(sub)s)
ON CONFLICT (user_id) DO NOTHING
"""

DETACH_USER = "UPDATE users SET sub = 'deleted:' || %(deletion_id)s::text WHERE id = %(user_id)s"

# Every running turn of the account is asked to stop (it notices within about a second).
CANCEL_RUNNING = """
UPDATE runs r SET cancel_requested_at = coalesce(r.cancel_requested_at, now())
FROM sessions s
WHERE s.user_id = %(user_id)s AND r.session_id = s.id AND r.parent_run_id IS NULL AND r.status = 'running'
"""

PENDING_DELETIONS = """
SELECT d.id, d.user_id, d.requested_at, d.attempts, d.last_error,
       (SELECT count(*) FROM sessions s WHERE s.user_id = d.user_id) AS sessions_left,
       (SELECT count(*) FROM sessions s JOIN runs r ON r.session_id = s.id
        WHERE s.user_id = d.user_id AND r.status = 'running' AND r.parent_run_id IS NULL) AS running_turns
FROM account_deletions d WHERE d.sub = %(sub)s ORDER BY d.requested_at
"""

GET_DELETION = "SELECT id, user_id, sub, requested_at, attempts FROM account_deletions WHERE id = %(id)s"

LOCK_DELETION = GET_DELETION + " FOR UPDATE"

# Deletions nothing has finished: resumed by the scheduled function.
UNFINISHED_DELETIONS = """
SELECT id FROM account_deletions
WHERE last_attempt_at IS NULL OR last_attempt_at < now() - make_interval(secs => %(idle_seconds)s)
ORDER BY requested_at
"""

NOTE_ATTEMPT = """
UPDATE account_deletions SET attempts = attempts + 1, last_attempt_at = now(), last_error = %(error)s
WHERE id = %(id)s
"""

# The account's sessions, with whether a turn runs in each (and whether that turn is stale).
ACCOUNT_SESSIONS = """
SELECT s.id, running.id AS running_id, running.stale AS running_stale
FROM sessions s LEFT JOIN {running} ON true
WHERE s.user_id = %(user_id)s ORDER BY s.id
"""

ACCOUNT_UPLOADS = "SELECT id, key FROM uploads WHERE user_id = %(user_id)s ORDER BY id"
DELETE_UPLOADS = "DELETE FROM uploads WHERE user_id = %(user_id)s AND id = ANY(%(ids)s)"

ACCOUNT_EXPORTS = "SELECT id, key FROM exports WHERE user_id = %(user_id)s ORDER BY id"
DELETE_EXPORTS = "DELETE FROM exports WHERE user_id = %(user_id)s AND id = ANY(%(ids)s)"

# What the account leaves: the kept usage of its deleted sessions, merged per day, agent or team
# and model with no user and no session; its daily_costs rows merged into the user-less rows of
# their key. Under the rollup's lock, so a rollup never writes rows of a user being deleted.
ANONYMISE_KEPT_USAGE = """
WITH gone AS (
    DELETE FROM deleted_session_usage WHERE user_id = %(user_id)s
    RETURNING day, kind, name, model_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
              cost_usd, cost_in_rands, turns, failed_turns, web_searches, web_search_cost_usd, web_search_cost_in_rands
)
INSERT INTO deleted_session_usage (id, user_id, session_id, deleted_at, day, kind, name, model_id, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands, turns, failed_turns,
    web_searches, web_search_cost_usd, web_search_cost_in_rands)
SELECT gen_random_uuid(), NULL, NULL, date_trunc('day', now()), day, kind, name, model_id,
       sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
       sum(cost_usd), sum(cost_in_rands), sum(turns), sum(failed_turns),
       sum(web_searches), sum(web_search_cost_usd), sum(web_search_cost_in_rands)
FROM gone GROUP BY day, kind, name, model_id
"""

ANONYMISE_DAILY_COSTS = """
WITH gone AS (
    DELETE FROM daily_costs WHERE user_id = %(user_id)s
    RETURNING day, kind, name, model_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
              cost_usd, cost_in_rands, turns, failed_turns, web_searches, web_search_cost_usd, web_search_cost_in_rands
)
INSERT INTO daily_costs AS dc (day, user_id, kind, name, model_id, input_tokens, output_tokens,
                               cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands, turns, failed_turns,
                               web_searches, web_search_cost_usd, web_search_cost_in_rands)
SELECT day, NULL, kind, name, model_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
       cost_usd, cost_in_rands, turns, failed_turns, web_searches, web_search_cost_usd, web_search_cost_in_rands
FROM gone
ON CONFLICT ON CONSTRAINT daily_costs_key DO UPDATE SET
    input_tokens = dc.input_tokens + EXCLUDED.input_tokens, output_tokens = dc.output_tokens + EXCLUDED.output_tokens,
    cache_read_tokens = dc.cache_read_tokens + EXCLUDED.cache_read_tokens,
    cache_write_tokens = dc.cache_write_tokens + EXCLUDED.cache_write_tokens,
    cost_usd = dc.cost_usd + EXCLUDED.cost_usd, cost_in_rands = dc.cost_in_rands + EXCLUDED.cost_in_rands,
    turns = dc.turns + EXCLUDED.turns, failed_turns = dc.failed_turns + EXCLUDED.failed_turns,
    web_searches = dc.web_searches + EXCLUDED.web_searches,
    web_search_cost_usd = dc.web_search_cost_usd + EXCLUDED.web_search_cost_usd,
    web_search_cost_in_rands = dc.web_search_cost_in_rands + EXCLUDED.web_search_cost_in_rands
"""

DELETE_USER = "DELETE FROM users WHERE id = %(user_id)s AND NOT EXISTS (SELECT 1 FROM sessions WHERE user_id = %(user_id)s)"


def request_deletion(conn: psycopg.Connection, sub: str) -> UUID | None:
    """Detach the caller's account from ``sub`` and ask its running turns to stop (in the caller's
    transaction); the new deletion's id, None when ``sub`` has no account."""
    row = conn.execute(LOCK_ACCOUNT, {"sub": sub}).fetchone()
    if row is None:
        return None
    deletion_id = uuid7()
    conn.execute(INSERT_DELETION, {"id": deletion_id, "user_id": row["id"], "sub": sub})
    conn.execute(DETACH_USER, {"deletion_id": deletion_id, "user_id": row["id"]})
    conn.execute(CANCEL_RUNNING, {"user_id": row["id"]})
    return deletion_id


def pending_deletions(conn: psycopg.Connection, sub: str) -> list[dict[str, Any]]:
    """The unfinished deletions of accounts that had ``sub``, oldest first, with what is left."""
    return conn.execute(PENDING_DELETIONS, {"sub": sub}).fetchall()


def get_deletion(conn: psycopg.Connection, deletion_id: UUID, *, lock: bool = False) -> dict[str, Any] | None:
    return conn.execute(LOCK_DELETION if lock else GET_DELETION, {"id": deletion_id}).fetchone()


def unfinished_deletions(conn: psycopg.Connection, idle_seconds: int) -> list[UUID]:
    """Deletions no pass has worked on for ``idle_seconds`` (an interrupted one)."""
    return [r["id"] for r in conn.execute(UNFINISHED_DELETIONS, {"idle_seconds": idle_seconds}).fetchall()]


def note_attempt(conn: psycopg.Connection, deletion_id: UUID, error: str | None) -> None:
    conn.execute(NOTE_ATTEMPT, {"id": deletion_id, "error": error})


def cancel_running(conn: psycopg.Connection, user_id: UUID) -> None:
    conn.execute(CANCEL_RUNNING, {"user_id": user_id})


def account_sessions(conn: psycopg.Connection, user_id: UUID, stale_seconds: int) -> list[dict[str, Any]]:
    """The account's sessions: ``id``, ``running_id`` and ``running_stale`` (None without a running turn)."""
    sql = ACCOUNT_SESSIONS.format(running=running_turn("s.id") + " running")
    return conn.execute(sql, {"user_id": user_id, "stale_seconds": stale_seconds}).fetchall()


def account_uploads(conn: psycopg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(ACCOUNT_UPLOADS, {"user_id": user_id}).fetchall()


def delete_uploads(conn: psycopg.Connection, user_id: UUID, ids: list[UUID]) -> int:
    return conn.execute(DELETE_UPLOADS, {"user_id": user_id, "ids": ids}).rowcount


def account_exports(conn: psycopg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(ACCOUNT_EXPORTS, {"user_id": user_id}).fetchall()


def delete_exports(conn: psycopg.Connection, user_id: UUID, ids: list[UUID]) -> int:
    return conn.execute(DELETE_EXPORTS, {"user_id": user_id, "ids": ids}).rowcount


def delete_user(conn: psycopg.Connection, user_id: UUID) -> bool:
    """The last step, in the caller's transaction: keep the account's usage with no user, then delete
    the users row (and with it every row still referring to it). False (nothing changed) while the
    account still has sessions."""
    if conn.execute("SELECT 1 FROM sessions WHERE user_id = %(user_id)s LIMIT 1", {"user_id": user_id}).fetchone():
        return False
    conn.execute(LOCK_COSTS)
    conn.execute(ANONYMISE_KEPT_USAGE, {"user_id": user_id})
    conn.execute(ANONYMISE_DAILY_COSTS, {"user_id": user_id})
    return conn.execute(DELETE_USER, {"user_id": user_id}).rowcount == 1
