"""Plans (``plans``) and a user's place on one; the rate limits' counts, as SQL a turn's first
statement and ``GET /usage`` share (``chatcore.money.plans`` is what they mean)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

PLAN_COLUMNS = ("monthly_budget_zar", "turns_per_minute", "turns_per_day", "tokens_per_day", "concurrent_turns",
                "agents", "models", "thinking_allowed", "web_search_allowed")

# The plan ``p`` of user ``u`` (a LEFT JOIN LATERAL): their own, else the default one.
PLAN_OF_U = """LATERAL (
    SELECT * FROM plans pl WHERE pl.name = u.plan_name OR (u.plan_name IS NULL AND pl.is_default)
    LIMIT 1)"""

# What the rate limits of plan ``p`` count for user ``u`` (a LEFT JOIN LATERAL), only when the plan
# has one (a plan without limits reads nothing): the user's top-level turns started in the last
# minute (and the first of them: when the window frees a turn), since the UTC day began, running
# now (a stale one, whose process ended, no longer counts) and the tokens of the UTC day: the stored
# rows' (input, cached or not, and output) and what running turns hold. Deleted sessions' turns and
# tokens of the day count too (deleted_session_usage; the last minute's starts: users.deleted_turn_starts,
# KEEP_TURN_STARTS), so deleting a session resets nothing.
LIMIT_COUNTS = """LATERAL (
    SELECT count(*) FILTER (WHERE r.started_at >= now() - interval '1 minute')
             + (SELECT count(*) FROM unnest(u.deleted_turn_starts) x WHERE x >= now() - interval '1 minute') AS minute_turns,
           least(min(r.started_at) FILTER (WHERE r.started_at >= now() - interval '1 minute'),
                 (SELECT min(x) FROM unnest(u.deleted_turn_starts) x WHERE x >= now() - interval '1 minute')) AS minute_first,
           count(*) FILTER (WHERE r.started_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
             + coalesce((SELECT sum(d.turns) FROM deleted_session_usage d
                         WHERE d.user_id = u.id AND d.day = (now() AT TIME ZONE 'UTC')::date), 0) AS day_turns,
           count(*) FILTER (WHERE r.status = 'running' AND NOT rs.stale) AS running_turns,
           coalesce(sum(r.reserved_tokens) FILTER (WHERE r.status = 'running' AND NOT rs.stale), 0) AS reserved_tokens,
           CASE WHEN p.tokens_per_day IS NULL THEN 0 ELSE (
               SELECT coalesce(sum(ce.input_tokens + ce.cache_read_tokens + ce.cache_write_tokens + ce.output_tokens), 0)
               FROM sessions s4 JOIN chat_events ce ON ce.session_id = s4.id
               WHERE s4.user_id = u.id AND ce.cost_in_rands <> 0
                 AND ce.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           ) + coalesce((SELECT sum(d.input_tokens + d.cache_read_tokens + d.cache_write_tokens + d.output_tokens)
                         FROM deleted_session_usage d
                         WHERE d.user_id = u.id AND d.day = (now() AT TIME ZONE 'UTC')::date), 0) END AS day_tokens
    FROM sessions s3 JOIN runs r ON r.session_id = s3.id
    CROSS JOIN LATERAL (SELECT coalesce(r.resumed_at, r.started_at)
                               < now() - make_interval(secs => %(stale_seconds)s) AS stale) rs
    WHERE s3.user_id = u.id AND r.parent_run_id IS NULL
      AND (r.started_at >= least(now() - interval '1 minute',
                                 date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
           OR r.status = 'running')
      AND (p.turns_per_minute IS NOT NULL OR p.turns_per_day IS NOT NULL OR p.tokens_per_day IS NOT NULL
           OR p.concurrent_turns IS NOT NULL))"""

# A session about to be deleted: the starts of its turns of the last minute join the user's
# deleted_turn_starts (turns per minute still count them; its day's turns and tokens are kept in
# deleted_session_usage), and starts older than a minute leave it (it never holds more than a minute's).
# No write when there is nothing to keep or drop (the retention's deletions of old sessions).
KEEP_TURN_STARTS = """
UPDATE users u SET deleted_turn_starts = ARRAY(
    SELECT x FROM unnest(u.deleted_turn_starts) x WHERE x >= now() - interval '1 minute'
    UNION ALL
    SELECT r.started_at FROM runs r
    WHERE r.session_id = %(session_id)s AND r.parent_run_id IS NULL AND r.started_at >= now() - interval '1 minute')
FROM sessions s
WHERE s.id = %(session_id)s AND u.id = s.user_id
  AND (cardinality(u.deleted_turn_starts) > 0
       OR EXISTS (SELECT 1 FROM runs r WHERE r.session_id = %(session_id)s AND r.parent_run_id IS NULL
                  AND r.started_at >= now() - interval '1 minute'))
"""

# GET /usage's view of the caller's plan: the plan and its counts now.
PLAN_STATUS = f"""
SELECT p.name AS plan_name, p.*, lim.*, now() AS db_now
FROM users u
LEFT JOIN {PLAN_OF_U} p ON true
LEFT JOIN {LIMIT_COUNTS} lim ON true
WHERE u.id = %(user_id)s
"""

# The same for the user ``sub`` (a turn's answer that starts no turn and has no row of its own).
PLAN_STATUS_OF_SUB = PLAN_STATUS.replace("WHERE u.id = %(user_id)s", "WHERE u.sub = %(sub)s")

LIST_PLANS = "SELECT * FROM plans ORDER BY name"

GET_PLAN = "SELECT * FROM plans WHERE name = %(name)s"

DEFINE_PLAN = """
INSERT INTO plans (name, monthly_budget_zar, turns_per_minute, turns_per_day, tokens_per_day, concurrent_turns,
                   agents, models, thinking_allowed, web_search_allowed)
VALUES (%(name)s, %(monthly_budget_zar)s, %(turns_per_minute)s, %(turns_per_day)s, %(tokens_per_day)s,
        %(concurrent_turns)s, %(agents)s, %(models)s, %(thinking_allowed)s, %(web_search_allowed)s)
ON CONFLICT (name) DO UPDATE SET monthly_budget_zar = EXCLUDED.monthly_budget_zar,
    turns_per_minute = EXCLUDED.turns_per_minute, turns_per_day = EXCLUDED.turns_per_day,
    tokens_per_day = EXCLUDED.tokens_per_day, concurrent_turns = EXCLUDED.concurrent_turns,
    agents = EXCLUDED.agents, models = EXCLUDED.models, thinking_allowed = EXCLUDED.thinking_allowed,
    web_search_allowed = EXCLUDED.web_search_allowed, updated_at = now()
RETURNING *
"""

CLEAR_DEFAULT = "UPDATE plans SET is_default = false WHERE is_default AND name <> %(name)s"

SET_DEFAULT = "UPDATE plans SET is_default = true, updated_at = now() WHERE name = %(name)s RETURNING name"

SET_USER_PLAN = "UPDATE users SET plan_name = %(name)s WHERE sub = %(sub)s RETURNING id"

USER_PLAN_NAME = "SELECT id, plan_name FROM users WHERE sub = %(sub)s"


def _rows(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def plan_status(conn: psycopg.Connection, user_id: Any, stale_seconds: int) -> dict[str, Any] | None:
    rows = _rows(conn, PLAN_STATUS, {"user_id": user_id, "stale_seconds": stale_seconds})
    return rows[0] if rows else None


def plan_status_of_sub(conn: psycopg.Connection, sub: str, stale_seconds: int) -> dict[str, Any] | None:
    rows = _rows(conn, PLAN_STATUS_OF_SUB, {"sub": sub, "stale_seconds": stale_seconds})
    return rows[0] if rows else None


def list_plans(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return _rows(conn, LIST_PLANS, {})


def get_plan(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    rows = _rows(conn, GET_PLAN, {"name": name})
    return rows[0] if rows else None


def define_plan(conn: psycopg.Connection, **values: Any) -> dict[str, Any]:
    """Create or replace the plan ``values["name"]`` (every column of PLAN_COLUMNS)."""
    return _rows(conn, DEFINE_PLAN, values)[0]


def make_default(conn: psycopg.Connection, name: str) -> bool:
    """Make ``name`` the default plan (the one default); False when there is no such plan."""
    conn.execute(CLEAR_DEFAULT, {"name": name})
    return bool(_rows(conn, SET_DEFAULT, {"name": name}))


def set_user_plan(conn: psycopg.Connection, sub: str, name: str | None) -> Any:
    """Put the user ``sub`` on plan ``name`` (None: the default); their id, None if unknown."""
    rows = _rows(conn, SET_USER_PLAN, {"sub": sub, "name": name})
    return rows[0]["id"] if rows else None
