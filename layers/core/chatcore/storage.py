"""Data access: every SQL statement of the application, parameters always bound."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from chatcore.budgets import MONTH_SPEND_OF_U
from chatcore.rollup import USAGE_SUMS, usage_rows
from chatcore.errors import Conflict, NotFound

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

# The first round trip of a turn, one statement: lock the user's session (FOR UPDATE OF s
# serialises turns of a session) and read everything the turn decides on: its agent or team, the
# USD/ZAR rate of the (UTC) day, a stored turn with the same client_turn_id, a running turn, the
# budget and the month's spend, and the history: the messages of the last completed turns.
BEGIN_TURN_READ = f"""
SELECT s.id, s.user_id, a.name AS agent_name, t.name AS team_name,
       fx.id AS fx_rate_id, fx.rate AS fx_rate, fx.effective_date AS fx_rate_date,
       prior.id AS prior_id, prior.status AS prior_status, prior.error_code AS prior_error_code,
       prior.error_message AS prior_error_message, prior.input_tokens AS prior_input_tokens,
       prior.output_tokens AS prior_output_tokens, prior.cache_read_tokens AS prior_cache_read_tokens,
       prior.cache_write_tokens AS prior_cache_write_tokens, prior.cost_usd AS prior_cost_usd,
       prior.cost_in_rands AS prior_cost_in_rands,
       running.id AS running_id, running.stale AS running_stale,
       u.monthly_budget_zar,
       CASE WHEN u.monthly_budget_zar IS NULL THEN NULL ELSE {{month_spend}} END AS month_spent,
       history.messages AS history
FROM sessions s
JOIN users u ON u.id = s.user_id AND u.sub = %(sub)s
LEFT JOIN agents a ON a.id = s.agent_id
LEFT JOIN teams t ON t.id = s.team_id
LEFT JOIN LATERAL (
    SELECT id, rate, effective_date FROM fx_rates
    WHERE base = 'USD' AND quote = 'ZAR' AND effective_date <= (now() AT TIME ZONE 'UTC')::date
    ORDER BY effective_date DESC LIMIT 1
) fx ON true
LEFT JOIN LATERAL (
    SELECT * FROM runs r
    WHERE r.session_id = s.id AND r.client_turn_id = %(client_turn_id)s AND r.parent_run_id IS NULL
) prior ON true
LEFT JOIN LATERAL (
    SELECT r.id, r.started_at < now() - make_interval(secs => %(stale_seconds)s) AS stale FROM runs r
    WHERE r.session_id = s.id AND r.status = 'running' AND r.parent_run_id IS NULL
    LIMIT 1
) running ON true
LEFT JOIN LATERAL (
    -- completed top-level turns only: a failed turn's user message would otherwise be merged into
    -- the next request by Claude's formatter and could repeat the failure
    SELECT jsonb_agg(ce.message_parts ORDER BY ce.id) AS messages
    FROM chat_events ce
    WHERE ce.run_id IN (
        SELECT r.id FROM runs r
        WHERE r.session_id = s.id AND r.parent_run_id IS NULL AND r.status = 'completed'
        ORDER BY r.id DESC LIMIT %(history_turns)s)
) history ON true
WHERE s.id = %(session_id)s
FOR UPDATE OF s
""".replace("{month_spend}", MONTH_SPEND_OF_U)

FIND_RUNNING_TURN = """
SELECT id, started_at < now() - make_interval(secs => %(stale_seconds)s) AS stale
FROM runs WHERE session_id = %(session_id)s AND status = 'running' AND parent_run_id IS NULL
"""

ABANDON_TURN = """
UPDATE runs SET status = 'failed', error_code = 'abandoned',
       error_message = 'the turn stopped without finishing (its process ended)', finished_at = now()
WHERE id = %(id)s AND status = 'running'
"""

INSERT_RUN = """
INSERT INTO runs (id, session_id, parent_run_id, client_turn_id, agent_name, status)
VALUES (%(id)s, %(session_id)s, %(parent_run_id)s, %(client_turn_id)s, %(agent_name)s, %(status)s)
"""

INSERT_CHAT_EVENT = """
INSERT INTO chat_events (
    id, session_id, run_id, role, agent_name, model_provider_slug, model_id, message_parts,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    cost_usd, cost_in_rands, price_id, fx_rate_id, fx_rate, fx_rate_date)
VALUES (
    %(id)s, %(session_id)s, %(run_id)s, %(role)s, %(agent_name)s, %(model_provider_slug)s,
    %(model_id)s, %(message_parts)s, %(input_tokens)s, %(output_tokens)s, %(cache_read_tokens)s,
    %(cache_write_tokens)s, %(cost_usd)s, %(cost_in_rands)s, %(price_id)s, %(fx_rate_id)s,
    %(fx_rate)s, %(fx_rate_date)s)
"""

FINISH_RUN = """
UPDATE runs SET status = %(status)s, error_code = %(error_code)s, error_message = %(error_message)s,
       client_disconnected = %(client_disconnected)s,
       input_tokens = %(input_tokens)s, output_tokens = %(output_tokens)s,
       cache_read_tokens = %(cache_read_tokens)s, cache_write_tokens = %(cache_write_tokens)s,
       cost_usd = %(cost_usd)s, cost_in_rands = %(cost_in_rands)s, finished_at = now()
WHERE id = %(id)s
"""

TOUCH_SESSION = "UPDATE sessions SET updated_at = now() WHERE id = %(session_id)s"

UPSERT_AGENT = """
INSERT INTO agents (id, name, description, model_provider_slug, model_id, definition, active, updated_at)
VALUES (%(id)s, %(name)s, %(description)s, %(model_provider_slug)s, %(model_id)s, %(definition)s, true, now())
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description,
    model_provider_slug = EXCLUDED.model_provider_slug, model_id = EXCLUDED.model_id,
    definition = EXCLUDED.definition, active = true, updated_at = now()
WHERE (agents.description, agents.model_provider_slug, agents.model_id, agents.definition, agents.active)
   IS DISTINCT FROM (EXCLUDED.description, EXCLUDED.model_provider_slug, EXCLUDED.model_id, EXCLUDED.definition, true)
"""

UPSERT_PRICE = """
INSERT INTO prices (id, price_key, version, provider, model, effective_from, entry, source)
VALUES (%(id)s, %(price_key)s, %(version)s, %(provider)s, %(model)s, %(effective_from)s, %(entry)s, %(source)s)
ON CONFLICT (price_key, version) DO NOTHING
"""

SELECT_PRICE_IDS = "SELECT price_key, id FROM prices WHERE version = %(version)s"


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
            row = conn.execute("SELECT id FROM agents WHERE name = %s AND active", (agent,)).fetchone()
            if row is None:
                raise NotFound(f"no agent named {agent!r}")
            agent_id = row["id"]
        if team is not None:
            row = conn.execute("SELECT id FROM teams WHERE name = %s AND active", (team,)).fetchone()
            if row is None:
                raise NotFound(f"no team named {team!r}")
            team_id = row["id"]
        return conn.execute(INSERT_SESSION, {
            "id": uuid7(), "user_id": user_id, "agent_id": agent_id, "team_id": team_id, "title": title,
        }).fetchone()


def read_turn_start(conn: psycopg.Connection, *, sub: str, session_id: UUID, client_turn_id: str | None = None,
                    stale_seconds: int = 960, history_turns: int = 10, month_start: datetime | None = None,
                    month_end: datetime | None = None) -> dict[str, Any] | None:
    """The first statement of a turn (BEGIN_TURN_READ); None when the session is not the user's."""
    if month_start is None or month_end is None:
        from chatcore.budgets import month_bounds

        month_start, month_end = month_bounds()
    return conn.execute(BEGIN_TURN_READ, {
        "sub": sub, "session_id": session_id, "client_turn_id": client_turn_id, "stale_seconds": stale_seconds,
        "history_turns": history_turns, "month_start": month_start, "month_end": month_end,
    }).fetchone()


def insert_run(conn: psycopg.Connection, *, run_id: UUID, session_id: UUID, agent_name: str | None,
               client_turn_id: str | None = None, parent_run_id: UUID | None = None,
               status: str = "running") -> None:
    conn.execute(INSERT_RUN, {
        "id": run_id, "session_id": session_id, "parent_run_id": parent_run_id,
        "client_turn_id": client_turn_id, "agent_name": agent_name, "status": status,
    })


def chat_event_params(**row: Any) -> dict[str, Any]:
    """Parameters of INSERT_CHAT_EVENT with defaults for the fields a row may not have."""
    params = {
        "id": uuid7(), "agent_name": None, "model_provider_slug": None, "model_id": None,
        "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
        "cost_usd": Decimal(0), "cost_in_rands": Decimal(0), "price_id": None,
        "fx_rate_id": None, "fx_rate": None, "fx_rate_date": None,
    }
    params.update(row)
    params["message_parts"] = Jsonb(params["message_parts"])
    return params


def insert_chat_events(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        with conn.cursor() as cur:
            cur.executemany(INSERT_CHAT_EVENT, [chat_event_params(**r) for r in rows])


def finish_run(conn: psycopg.Connection, **values: Any) -> None:
    conn.execute(FINISH_RUN, values)


def sync_agents(conn: psycopg.Connection, agents: list[dict[str, Any]]) -> None:
    """Upsert the agents defined in code; agents no longer defined are marked inactive."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(UPSERT_AGENT, [
                {**a, "id": uuid7(), "definition": Jsonb(a["definition"])} for a in agents
            ])
        conn.execute("UPDATE agents SET active = false WHERE active AND NOT (name = ANY(%s))",
                     ([a["name"] for a in agents],))


def sync_prices(conn: psycopg.Connection, entries: list[dict[str, Any]], version: str) -> dict[str, UUID]:
    """Record the pinned prices of ``version``; returns price_key -> prices.id."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(UPSERT_PRICE, [
                {**e, "id": uuid7(), "version": version, "entry": Jsonb(json.loads(json.dumps(e["entry"])))}
                for e in entries
            ])
        rows = conn.execute(SELECT_PRICE_IDS, {"version": version}).fetchall()
    return {r["price_key"]: r["id"] for r in rows}


UPSERT_TEAM = """
INSERT INTO teams (id, name, description, model_provider_slug, model_id, definition, active, updated_at)
VALUES (%(id)s, %(name)s, %(description)s, %(model_provider_slug)s, %(model_id)s, %(definition)s, true, now())
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description,
    model_provider_slug = EXCLUDED.model_provider_slug, model_id = EXCLUDED.model_id,
    definition = EXCLUDED.definition, active = true, updated_at = now()
RETURNING id
"""


def sync_teams(conn: psycopg.Connection, teams: list[dict[str, Any]]) -> None:
    """Upsert the teams defined in code and their members; teams no longer defined become inactive."""
    with conn.transaction():
        for team in teams:
            team_id = conn.execute(UPSERT_TEAM, {
                **{k: v for k, v in team.items() if k != "members"}, "id": uuid7(),
                "definition": Jsonb(team["definition"]),
            }).fetchone()["id"]
            conn.execute("DELETE FROM team_members WHERE team_id = %s", (team_id,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO team_members (team_id, agent_id, position) "
                    "SELECT %s, id, %s FROM agents WHERE name = %s",
                    [(team_id, i, name) for i, name in enumerate(team["members"])],
                )
        conn.execute("UPDATE teams SET active = false WHERE active AND NOT (name = ANY(%s))",
                     ([t["name"] for t in teams],))


# ---- the mobile API (sessions, messages, usage); scoped by the caller's sub in every statement

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

DELETE_SESSION = "DELETE FROM sessions WHERE id = %(session_id)s"

# Before a session is deleted: keep what it cost, per UTC day, agent or team and model, no content.
ARCHIVE_SESSION_USAGE = f"""
INSERT INTO deleted_session_usage (id, user_id, session_id, day, kind, name, model_id, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands, turns, failed_turns)
SELECT gen_random_uuid(), user_id, %(session_id)s, day, kind, name, model_id, {USAGE_SUMS}
FROM ({usage_rows("ce.session_id = %(session_id)s", "r.session_id = %(session_id)s")}) x
GROUP BY user_id, day, kind, name, model_id
"""

LIST_MESSAGES_ASC = """
SELECT ce.id, ce.run_id, r.parent_run_id, r.status AS run_status, ce.role, ce.agent_name, ce.model_id,
       ce.message_parts, ce.input_tokens, ce.output_tokens, ce.cache_read_tokens, ce.cache_write_tokens,
       ce.cost_usd, ce.cost_in_rands, ce.created_at
FROM chat_events ce JOIN runs r ON r.id = ce.run_id
WHERE ce.session_id = %(session_id)s AND (%(after)s::uuid IS NULL OR ce.id > %(after)s)
  AND (%(members)s OR r.parent_run_id IS NULL)
ORDER BY ce.id ASC
LIMIT %(limit)s
"""

LIST_MESSAGES_DESC = LIST_MESSAGES_ASC.replace("ce.id > %(after)s", "ce.id < %(after)s").replace(
    "ORDER BY ce.id ASC", "ORDER BY ce.id DESC")

# The caller's usage rows in a range: live chat_events plus deleted sessions' kept usage.
_USAGE_ROWS = """
SELECT (ce.created_at AT TIME ZONE 'UTC')::date AS day,
       CASE WHEN s.team_id IS NULL THEN 'agent' ELSE 'team' END AS kind, coalesce(a.name, t.name) AS name,
       ce.input_tokens, ce.output_tokens, ce.cache_read_tokens, ce.cache_write_tokens, ce.cost_usd, ce.cost_in_rands
FROM chat_events ce JOIN sessions s ON s.id = ce.session_id JOIN users u ON u.id = s.user_id
LEFT JOIN agents a ON a.id = s.agent_id LEFT JOIN teams t ON t.id = s.team_id
WHERE u.sub = %(sub)s AND ce.created_at >= %(start)s AND ce.created_at < %(end)s
UNION ALL
SELECT d.day, d.kind, d.name, d.input_tokens, d.output_tokens, d.cache_read_tokens, d.cache_write_tokens,
       d.cost_usd, d.cost_in_rands
FROM deleted_session_usage d JOIN users u ON u.id = d.user_id
WHERE u.sub = %(sub)s AND d.day >= (%(start)s::timestamptz AT TIME ZONE 'UTC')::date AND d.day < (%(end)s::timestamptz AT TIME ZONE 'UTC')::date
"""

_USAGE_SUMS = """sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(cost_usd) AS cost_usd, sum(cost_in_rands) AS cost_in_rands"""

USAGE_BY_DAY = f"SELECT day, {_USAGE_SUMS} FROM ({_USAGE_ROWS}) x GROUP BY day ORDER BY day"

USAGE_BY_AGENT = f"SELECT kind, name, {_USAGE_SUMS} FROM ({_USAGE_ROWS}) x GROUP BY kind, name ORDER BY kind, name"

USAGE_TURNS = """
SELECT sum(turns)::int AS turns, sum(failed_turns)::int AS failed_turns FROM (
    SELECT count(*) AS turns, count(*) FILTER (WHERE r.status = 'failed') AS failed_turns
    FROM runs r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id
    WHERE u.sub = %(sub)s AND r.parent_run_id IS NULL AND r.started_at >= %(start)s AND r.started_at < %(end)s
    UNION ALL
    SELECT coalesce(sum(d.turns), 0), coalesce(sum(d.failed_turns), 0)
    FROM deleted_session_usage d JOIN users u ON u.id = d.user_id
    WHERE u.sub = %(sub)s AND d.day >= (%(start)s::timestamptz AT TIME ZONE 'UTC')::date AND d.day < (%(end)s::timestamptz AT TIME ZONE 'UTC')::date
) x
"""

LIST_AGENTS = """
SELECT name, description, model_provider_slug, model_id, definition FROM agents WHERE active ORDER BY name
"""

LIST_TEAMS = """
SELECT t.name, t.description, t.model_provider_slug, t.model_id, t.definition,
       coalesce(array_agg(a.name ORDER BY tm.position) FILTER (WHERE a.name IS NOT NULL), '{}') AS members
FROM teams t LEFT JOIN team_members tm ON tm.team_id = t.id LEFT JOIN agents a ON a.id = tm.agent_id
WHERE t.active GROUP BY t.id ORDER BY t.name
"""
