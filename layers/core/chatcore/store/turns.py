"""A turn's rows: its first statement (lock and read), the run and its messages, the run's outcome."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from chatcore.store import approvals as approval_rows, turn_events
from chatcore.store.history import UNBOUNDED_TOKENS, RUN_HISTORY_TOKENS, history_of
from chatcore.store.memories import MEMORIES_TO_RECALL
from chatcore.store.plans import LIMIT_COUNTS, PLAN_OF_U
from chatcore.store.rates import rate_in_effect
from chatcore.store.usage import LOCK_USER, MONTH_SPEND_OF_U, RELEASE_ABANDONED_WARNINGS, RESERVED_OF_U


def running_turn(session_sql: str) -> str:
    """A LATERAL subquery: the running top-level run of the session ``session_sql`` (id, stale)."""
    return f"""LATERAL (
    SELECT r.id, coalesce(r.resumed_at, r.started_at) < now() - make_interval(secs => %(stale_seconds)s) AS stale FROM runs r
    WHERE r.session_id = {session_sql} AND r.status = 'running' AND r.parent_run_id IS NULL
    LIMIT 1)"""


# The first round trip of a turn, one statement: lock the user's session (FOR UPDATE OF s
# serialises turns of a session) and read everything the turn decides on: its agent or team, the
# USD/ZAR rate of the (UTC) day, a stored turn with the same client_turn_id, a running turn, the
# budget (the user's own, else their plan's) and the month's spend, the plan and what its rate
# limits count (``chatcore.money.plans``), the history: the messages of the last completed turns, what
# the session recalls of the user (its snapshot, or the user's memories when it must be rendered), and
# whether the user has a device to push to (none: the turn's pushes read nothing, ``chatcore.notify.pushes``).
BEGIN_TURN_READ = f"""
SELECT s.id, s.user_id, a.name AS agent_name, t.name AS team_name,
       fx.id AS fx_rate_id, fx.rate AS fx_rate, fx.effective_date AS fx_rate_date,
       prior.id AS prior_id, prior.status AS prior_status, prior.error_code AS prior_error_code,
       prior.error_message AS prior_error_message, prior.input_tokens AS prior_input_tokens,
       prior.output_tokens AS prior_output_tokens, prior.cache_read_tokens AS prior_cache_read_tokens,
       prior.cache_write_tokens AS prior_cache_write_tokens, prior.cost_usd AS prior_cost_usd,
       prior.cost_in_rands AS prior_cost_in_rands,
       (SELECT jsonb_build_array(ce.message_parts->>'content', jsonb_array_length(coalesce(ce.message_parts->'images', '[]')),
                                 jsonb_array_length(coalesce(ce.message_parts->'files', '[]')))
        FROM chat_events ce WHERE ce.run_id = prior.id AND ce.role = 'user' ORDER BY ce.id LIMIT 1) AS prior_request,
       running.id AS running_id, running.stale AS running_stale,
       paused.id AS paused_id, paused.expired AS paused_expired,
       coalesce(u.monthly_budget_zar, p.monthly_budget_zar) AS monthly_budget_zar,
       CASE WHEN coalesce(u.monthly_budget_zar, p.monthly_budget_zar) IS NULL THEN NULL ELSE {MONTH_SPEND_OF_U} END AS month_spent,
       CASE WHEN coalesce(u.monthly_budget_zar, p.monthly_budget_zar) IS NULL THEN NULL ELSE {RESERVED_OF_U} END AS month_reserved,
       p.name AS plan_name, p.turns_per_minute, p.turns_per_day, p.tokens_per_day, p.concurrent_turns,
       p.agents AS plan_agents, p.models AS plan_models, p.thinking_allowed, p.web_search_allowed,
       lim.minute_turns, lim.minute_first, lim.day_turns, lim.running_turns, lim.reserved_tokens, lim.day_tokens,
       now() AS db_now,
       history.messages AS history, recent.outcomes AS recent_outcomes,
       ss.summary, ss.through_message_id AS summary_through, ss.turns AS summary_turns,
       ss.updated_at AS summary_updated_at,
       u.memory_enabled, u.memory_version, s.memory_snapshot, s.memory_version AS snapshot_version,
       recall.memories AS memories_to_recall,
       EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id) AS has_devices
FROM sessions s
JOIN users u ON u.id = s.user_id AND u.sub = %(sub)s
LEFT JOIN {PLAN_OF_U} p ON true
LEFT JOIN {LIMIT_COUNTS} lim ON true
LEFT JOIN agents a ON a.id = s.agent_id
LEFT JOIN teams t ON t.id = s.team_id
LEFT JOIN session_summaries ss ON ss.session_id = s.id
LEFT JOIN {rate_in_effect("(now() AT TIME ZONE 'UTC')::date")} fx ON true
LEFT JOIN LATERAL (
    SELECT * FROM runs r
    WHERE r.session_id = s.id AND r.client_turn_id = %(client_turn_id)s AND r.parent_run_id IS NULL
) prior ON true
LEFT JOIN {running_turn("s.id")} running ON true
LEFT JOIN LATERAL (
    -- a turn paused for the user's approval (chatcore.turns.approvals): past APPROVAL_TTL it is expired
    SELECT r.id, r.paused_at < now() - make_interval(secs => %(approval_ttl)s) AS expired FROM runs r
    WHERE r.session_id = s.id AND r.status = 'paused' AND r.parent_run_id IS NULL LIMIT 1
) paused ON true
LEFT JOIN {MEMORIES_TO_RECALL} recall ON true
LEFT JOIN {history_of('s.id', 'ss.through_message_id')} history ON true
LEFT JOIN LATERAL (
    -- how the last finished turns ended, newest first: a run of refusals for the request's size
    -- makes the next request smaller (chatcore.turns.context)
    SELECT jsonb_agg(jsonb_build_array(r.status, r.error_message) ORDER BY r.id DESC) AS outcomes
    FROM (SELECT id, status, error_message FROM runs r
          WHERE r.session_id = s.id AND r.parent_run_id IS NULL AND r.status NOT IN ('running', 'paused')
          ORDER BY r.id DESC LIMIT 4) r
) recent ON true
WHERE s.id = %(session_id)s
FOR UPDATE OF s
"""

# The turns ESTIMATE_CALLS averages an agent's calls per turn over.
RECENT_TURNS = 20
# The session's own last turns that say how long its next answer is and how many calls its next turn
# makes (once it has one), and how much of each one's message is read to see whether it asked to
# remember something.
OWN_TURNS, OWN_MESSAGE_CHARS = 5, 2_000

# A turn's estimate (``turns.estimate``): BEGIN_TURN_READ without its locks (it decides nothing and
# stores nothing), and what the session's recent model calls used: the last call's tokens and whether
# the prompt cache still holds its prefix (its age under ``cache_ttl`` seconds), and the answers of its
# last completed turns (each turn's last top-level call's output tokens: tool calls are counted apart).
# And the calls per turn of the agent or team (``%(conversation)s``, the runs' agent_name): over its
# last RECENT_TURNS completed top-level turns, anyone's (token counts only; runs_agent_recent, 0021),
# the top-level calls past the first (tool loops: a tool call, its result, the next call), what each
# adds to the prompt and answers (the tool call), the members' calls (a team's) and their tokens, and
# the web searches per turn; and whether its last turn ended within the cache's TTL (the instructions
# and tools, the same in every session of it, are then likely still cached).
ESTIMATE_READ = BEGIN_TURN_READ.removesuffix("FOR UPDATE OF s\n")

ESTIMATE_CALLS = """
SELECT last.input_tokens + last.cache_read_tokens + last.cache_write_tokens AS last_prompt_tokens,
       last.output_tokens AS last_output_tokens, last.cache_read_tokens + last.cache_write_tokens AS last_cached_tokens,
       last.created_at > now() - make_interval(secs => %(cache_ttl)s) AS cache_warm,
       own.outputs AS recent_outputs, own.loops AS own_loops, own.messages AS own_messages, agent.*
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT ce.input_tokens, ce.cache_read_tokens, ce.cache_write_tokens, ce.output_tokens, ce.created_at
    FROM chat_events ce JOIN runs r ON r.id = ce.run_id
    WHERE ce.session_id = %(session_id)s AND ce.role = 'assistant' AND r.parent_run_id IS NULL
      AND ce.input_tokens + ce.cache_read_tokens + ce.cache_write_tokens > 0
    ORDER BY ce.id DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (
    -- the session's own last completed turns: each one's answer (its last top-level call's output
    -- tokens: tool calls are counted apart; NULL without a priced call), its top-level calls past the
    -- first, and the start of its message (a request to remember explains one of them:
    -- ``turns.estimate.recent_calls``)
    SELECT array_agg(o.answer ORDER BY o.id DESC) AS outputs, array_agg(o.loops ORDER BY o.id DESC) AS loops,
           array_agg(o.message ORDER BY o.id DESC) AS messages
    FROM (SELECT r.id, calls.answer, calls.loops,
                 (SELECT left(u.message_parts->>'content', %(message_chars)s) FROM chat_events u
                  WHERE u.run_id = r.id AND u.role = 'user' ORDER BY u.id LIMIT 1) AS message
          FROM runs r
          CROSS JOIN LATERAL (
              SELECT (array_agg(ce.output_tokens ORDER BY ce.id DESC))[1] AS answer, count(*) - 1 AS loops
              FROM chat_events ce
              WHERE ce.run_id = r.id AND ce.role = 'assistant'
                AND ce.input_tokens + ce.cache_read_tokens + ce.cache_write_tokens > 0) calls
          WHERE r.session_id = %(session_id)s AND r.parent_run_id IS NULL AND r.status = 'completed'
          ORDER BY r.id DESC LIMIT %(own_turns)s) o) own ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS agent_turns, max(t.finished_at) > now() - make_interval(secs => %(cache_ttl)s) AS agent_warm,
           avg(c.top_calls - 1) AS loops, avg(c.member_calls) AS member_calls,
           avg(c.searches) AS searches,
           sum(c.growth) / nullif(sum(c.top_calls - 1), 0) AS loop_growth,
           sum(c.loop_output) / nullif(sum(c.top_calls - 1), 0) AS loop_output,
           sum(c.member_input) / nullif(sum(c.member_calls), 0) AS member_input,
           sum(c.member_read) / nullif(sum(c.member_calls), 0) AS member_read,
           sum(c.member_write) / nullif(sum(c.member_calls), 0) AS member_write,
           sum(c.member_output) / nullif(sum(c.member_calls), 0) AS member_output
    FROM (SELECT r.id, r.finished_at FROM runs r
          WHERE r.agent_name = %(conversation)s AND r.parent_run_id IS NULL AND r.status = 'completed'
          ORDER BY r.id DESC LIMIT %(recent_turns)s) t
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE NOT m.member) AS top_calls, count(*) FILTER (WHERE m.member) AS member_calls,
               coalesce(sum(m.web_searches), 0) AS searches,
               coalesce(max(m.prompt) FILTER (WHERE NOT m.member) - min(m.prompt) FILTER (WHERE NOT m.member), 0) AS growth,
               coalesce(sum(m.output_tokens) FILTER (WHERE NOT m.member)
                        - (array_agg(m.output_tokens ORDER BY m.id DESC) FILTER (WHERE NOT m.member))[1], 0) AS loop_output,
               coalesce(sum(m.input_tokens) FILTER (WHERE m.member), 0) AS member_input,
               coalesce(sum(m.cache_read_tokens) FILTER (WHERE m.member), 0) AS member_read,
               coalesce(sum(m.cache_write_tokens) FILTER (WHERE m.member), 0) AS member_write,
               coalesce(sum(m.output_tokens) FILTER (WHERE m.member), 0) AS member_output
        FROM (SELECT ce.id, ce.run_id <> t.id AS member, ce.input_tokens, ce.cache_read_tokens, ce.cache_write_tokens,
                     ce.output_tokens, ce.web_searches,
                     ce.input_tokens + ce.cache_read_tokens + ce.cache_write_tokens AS prompt
              FROM chat_events ce
              WHERE ce.run_id IN (SELECT t.id UNION ALL SELECT m.id FROM runs m WHERE m.parent_run_id = t.id)
                AND ce.role = 'assistant' AND ce.input_tokens + ce.cache_read_tokens + ce.cache_write_tokens > 0) m
    ) c) agent ON true
"""

# A session's first estimate has no call of its own to go by: the first call of the newest first turn of
# another session of the same agent or team (anyone's: token counts alone; ``%(conversation)s``, the
# runs' agent_name) -- its prompt (the instructions and tools, that session's first message, whose
# characters are returned to take it out, and its recall of its user's memories: its snapshot) and its
# turn's answer (its last call's output tokens). The agent's completed turns are walked newest first by
# runs_agent_recent (0021) to the first that is its session's first: a session's turns at most.
FIRST_CALL_OF_AGENT = """
SELECT ce.input_tokens + ce.cache_read_tokens + ce.cache_write_tokens AS prompt_tokens,
       (SELECT a.output_tokens FROM chat_events a  -- the turn's answer: its last call's
        WHERE a.run_id = r.id AND a.role = 'assistant' AND a.input_tokens + a.cache_read_tokens + a.cache_write_tokens > 0
        ORDER BY a.id DESC LIMIT 1) AS output_tokens,
       (SELECT length(coalesce(u.message_parts->>'content', '')) FROM chat_events u
        WHERE u.run_id = r.id AND u.role = 'user' ORDER BY u.id LIMIT 1) AS message_chars,
       s2.memory_snapshot AS snapshot
FROM (SELECT r.id, r.session_id FROM runs r
      WHERE r.agent_name = %(conversation)s AND r.parent_run_id IS NULL AND r.status = 'completed'
        AND r.session_id <> %(session_id)s
        AND NOT EXISTS (SELECT 1 FROM runs e WHERE e.session_id = r.session_id AND e.parent_run_id IS NULL
                          AND e.status = 'completed' AND e.id < r.id)
      ORDER BY r.id DESC LIMIT 1) r
JOIN sessions s2 ON s2.id = r.session_id
JOIN LATERAL (
    SELECT ce.* FROM chat_events ce
    WHERE ce.run_id = r.id AND ce.role = 'assistant' AND ce.input_tokens + ce.cache_read_tokens + ce.cache_write_tokens > 0
    ORDER BY ce.id LIMIT 1) ce ON true
"""

FIND_RUNNING_TURN = f"SELECT running.* FROM {running_turn('%(session_id)s')} running"

ABANDON_TURN = """
UPDATE runs SET status = 'failed', error_code = 'abandoned',
       error_message = 'the turn stopped without finishing (its process ended)', reserved_zar = 0, reserved_tokens = 0,
       finished_at = now()
WHERE id = %(id)s AND status = 'running'
"""

INSERT_RUN = """
INSERT INTO runs (id, session_id, parent_run_id, client_turn_id, agent_name, status, reserved_zar, reserved_tokens)
VALUES (%(id)s, %(session_id)s, %(parent_run_id)s, %(client_turn_id)s, %(agent_name)s, %(status)s, %(reserved_zar)s,
        %(reserved_tokens)s)
"""

INSERT_MESSAGE = """
INSERT INTO chat_events (
    id, session_id, run_id, role, agent_name, model_provider_slug, model_id, message_parts,
    input_tokens, output_tokens, reasoning_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens,
    cost_usd, cost_in_rands, price_id, fx_rate_id, fx_rate, fx_rate_date, usage_estimated,
    web_searches, web_search_cost_usd, web_search_cost_in_rands)
VALUES (
    %(id)s, %(session_id)s, %(run_id)s, %(role)s, %(agent_name)s, %(model_provider_slug)s,
    %(model_id)s, %(message_parts)s, %(input_tokens)s, %(output_tokens)s, %(reasoning_tokens)s, %(cache_read_tokens)s,
    %(cache_write_tokens)s, %(cache_write_1h_tokens)s, %(cost_usd)s, %(cost_in_rands)s, %(price_id)s, %(fx_rate_id)s,
    %(fx_rate)s, %(fx_rate_date)s, %(usage_estimated)s,
    %(web_searches)s, %(web_search_cost_usd)s, %(web_search_cost_in_rands)s)
"""

FINISH_RUN = f"""
UPDATE runs SET status = %(status)s, error_code = %(error_code)s, error_message = %(error_message)s,
       client_disconnected = %(client_disconnected)s,
       input_tokens = %(input_tokens)s, output_tokens = %(output_tokens)s,
       cache_read_tokens = %(cache_read_tokens)s, cache_write_tokens = %(cache_write_tokens)s,
       cost_usd = %(cost_usd)s, cost_in_rands = %(cost_in_rands)s, reserved_zar = 0, reserved_tokens = 0,
       -- a turn paused for the user's approval has not finished: APPROVAL_TTL counts from paused_at
       finished_at = CASE WHEN %(status)s = 'paused' THEN NULL ELSE now() END,
       paused_at = CASE WHEN %(status)s = 'paused' THEN now() ELSE paused_at END,
       history_tokens = {RUN_HISTORY_TOKENS}
WHERE id = %(id)s AND status = 'running'  -- a run closed meanwhile (abandoned) keeps its status
"""

TOUCH_SESSION = "UPDATE sessions SET updated_at = now() WHERE id = %(session_id)s"

# A summary covers the session's rows before the first message it leaves out (a user message, whose id
# is its row's; a model's message keeps agno's own random id in message_parts, so never that): it is
# stored as the last of those rows, which every row and run of a later turn comes after (UUIDv7).
# A summary only moves forward: a turn that compacted an older point than the stored one changes nothing.
SAVE_SUMMARY = """
INSERT INTO session_summaries (session_id, summary, through_message_id, turns, run_id)
SELECT %(session_id)s, %(summary)s, covered.id, %(turns)s, %(run_id)s
FROM (SELECT ce.id FROM chat_events ce WHERE ce.session_id = %(session_id)s AND ce.id < %(covers_before)s
      ORDER BY ce.id DESC LIMIT 1) covered
ON CONFLICT (session_id) DO UPDATE SET summary = EXCLUDED.summary,
    through_message_id = EXCLUDED.through_message_id, turns = EXCLUDED.turns, run_id = EXCLUDED.run_id,
    updated_at = now()
WHERE session_summaries.through_message_id < EXCLUDED.through_message_id
"""


def read_turn_start(conn: psycopg.Connection, *, sub: str, session_id: UUID, client_turn_id: str | None,
                    stale_seconds: int, history_turns: int, month_start: datetime,
                    month_end: datetime, approval_ttl: int = 86_400,
                    history_tokens: int = UNBOUNDED_TOKENS) -> dict[str, Any] | None:
    """The first statement of a turn (BEGIN_TURN_READ); None when the session is not the user's. The
    history: at most ``history_turns`` turns, read while the newer ones hold at most ``history_tokens``
    (``chatcore.store.history``)."""
    conn.execute(LOCK_USER, {"sub": sub})  # pipelined with what follows: no extra round trip
    return conn.execute(BEGIN_TURN_READ, {
        "sub": sub, "session_id": session_id, "client_turn_id": client_turn_id, "stale_seconds": stale_seconds,
        "history_turns": history_turns, "history_tokens": history_tokens, "month_start": month_start,
        "month_end": month_end, "approval_ttl": approval_ttl,
    }).fetchone()


def read_estimate(conn: psycopg.Connection, *, sub: str, session_id: UUID, stale_seconds: int, history_turns: int,
                  month_start: datetime, month_end: datetime, cache_ttl: int,
                  history_tokens: int = UNBOUNDED_TOKENS) -> dict[str, Any] | None:
    """What a turn's estimate reads (ESTIMATE_READ, then ESTIMATE_CALLS, and for a session without a call
    FIRST_CALL_OF_AGENT as ``first_call``), no lock taken; None when the session is not the user's."""
    row = conn.execute(ESTIMATE_READ, {
        "sub": sub, "session_id": session_id, "client_turn_id": None, "stale_seconds": stale_seconds,
        "history_turns": history_turns, "history_tokens": history_tokens, "month_start": month_start,
        "month_end": month_end, "approval_ttl": 86_400,
    }).fetchone()
    if row is None:
        return None
    row = {**row, **conn.execute(ESTIMATE_CALLS, {
        "session_id": session_id, "cache_ttl": cache_ttl, "conversation": row["agent_name"] or row["team_name"],
        "recent_turns": RECENT_TURNS, "own_turns": OWN_TURNS, "message_chars": OWN_MESSAGE_CHARS}).fetchone()}
    first = None if row["last_prompt_tokens"] is not None else conn.execute(
        FIRST_CALL_OF_AGENT, {"session_id": session_id, "conversation": row["agent_name"] or row["team_name"]}).fetchone()
    return {**row, "first_call": first}


def find_running_turn(conn: psycopg.Connection, session_id: UUID, stale_seconds: int) -> dict[str, Any] | None:
    """The session's running turn (``id``, ``stale``), or None."""
    return conn.execute(FIND_RUNNING_TURN, {"session_id": session_id, "stale_seconds": stale_seconds}).fetchone()


def abandon_turn(conn: psycopg.Connection, run_id: UUID) -> None:
    """Close a stale running turn (its process ended) as failed, ``abandoned``; the budget warnings it
    claimed but never stored are released (``store.usage.RELEASE_ABANDONED_WARNINGS``)."""
    conn.execute(RELEASE_ABANDONED_WARNINGS, {"run_id": run_id})
    conn.execute(ABANDON_TURN, {"id": run_id})


def insert_run(conn: psycopg.Connection, *, run_id: UUID, session_id: UUID, agent_name: str | None,
               client_turn_id: str | None = None, parent_run_id: UUID | None = None,
               status: str = "running", reserved_zar: Decimal = Decimal(0), reserved_tokens: int = 0) -> None:
    conn.execute(INSERT_RUN, {
        "id": run_id, "session_id": session_id, "parent_run_id": parent_run_id,
        "client_turn_id": client_turn_id, "agent_name": agent_name, "status": status,
        "reserved_zar": reserved_zar, "reserved_tokens": reserved_tokens,
    })


def message_params(**row: Any) -> dict[str, Any]:
    """Parameters of INSERT_MESSAGE with defaults for the fields a row may not have."""
    params = {
        "id": uuid7(), "agent_name": None, "model_provider_slug": None, "model_id": None,
        "input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0, "cost_usd": Decimal(0), "cost_in_rands": Decimal(0), "price_id": None,
        "fx_rate_id": None, "fx_rate": None, "fx_rate_date": None, "usage_estimated": False,
        "web_searches": 0, "web_search_cost_usd": Decimal(0), "web_search_cost_in_rands": Decimal(0),
    }
    params.update(row)
    params["message_parts"] = Jsonb(params["message_parts"])
    return params


def insert_messages(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        with conn.cursor() as cur:
            cur.executemany(INSERT_MESSAGE, [message_params(**r) for r in rows])


def finish_run(conn: psycopg.Connection, **values: Any) -> None:
    """Record a run's outcome: status, error, tokens and cost (FINISH_RUN's parameters)."""
    conn.execute(FINISH_RUN, values)


def touch_session(conn: psycopg.Connection, session_id: UUID) -> None:
    conn.execute(TOUCH_SESSION, {"session_id": session_id})


def save_summary(conn: psycopg.Connection, *, session_id: UUID, summary: str, covers_before: UUID,
                 turns: int, run_id: UUID) -> None:
    """Store the session's summary (it only ever moves forward)."""
    conn.execute(SAVE_SUMMARY, {"session_id": session_id, "summary": summary,
                                "covers_before": covers_before, "turns": turns, "run_id": run_id})


def write_finished_turn(conn: psycopg.Connection, finished: dict[str, Any]) -> None:
    """The rows of a finished turn, as ``chatcore.turns.finish`` gathers them (and the spool keeps
    them, ``chatcore.spool``): its last events, its member runs, its messages with their cost, its run's
    outcome, the approvals it waits on, the session's summary. Every row has a fixed id, so a second
    write of the same turn fails on a duplicate key and changes nothing (the caller runs it in one
    transaction)."""
    run_id, session_id = finished["run_id"], finished["session_id"]
    turn_events.insert_events(conn, run_id, [tuple(e) for e in finished["events"]])
    for member in finished["members"]:
        if member["insert"] is not None:  # a resumed member's row exists (running again)
            insert_run(conn, **member["insert"])
        finish_run(conn, **member["finish"])
    insert_messages(conn, finished["messages"])
    finish_run(conn, **finished["run"])
    approval_rows.insert_approvals(conn, finished["approvals"])
    touch_session(conn, session_id)
    if finished["summary"] is not None:
        save_summary(conn, **finished["summary"])
